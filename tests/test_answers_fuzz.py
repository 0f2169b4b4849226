"""Any answer is either refused with a clear message, writing nothing, or renders a
service whose every file parses, which reads free text back exactly as it was
typed, and which passes Django's deployment checks."""

import ast
import html
import json
import re
import shutil
import subprocess
import tomllib
from email.policy import default as email_policy

import pytest
import yaml
from copier import run_copy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from harness.answers import DOMAIN, PYTHON_VERSION, REQUIRED_ANSWERS
from harness.docker import load_compose
from harness.policy import require
from harness.service import Service, service_venv

# One worker runs the whole module, in order, so the last test can report the
# counts of all of them.
pytestmark = [pytest.mark.service, pytest.mark.xdist_group("answers-fuzz")]

TEXT_QUESTIONS = [
    "project_name",
    "project_slug",
    "package_name",
    "description",
    "author_name",
    "author_email",
    "domain",
]
INT_QUESTIONS = ["web_workers", "web_threads", "celery_concurrency"]
# Hand-picked nasty values for every text question, besides the generated ones.
NASTY = [
    "",
    " ",
    "\t\n",
    "Ünïcödé 服务",
    "$(rm -rf /)",
    "`id`",
    "a; echo pwned",
    "../../etc/passwd",
    "..",
    "name\x00null",
    f"https://{DOMAIN}:8443/path",
    "class",
    "django",
    "x" * 300,
    "{{ 7 * 7 }}",
    "{% raw %}",
    "'single' quotes",
    "O'Brien & Co.",
    "Women's Health Registry",
    'The "Orders" service',
    """It's "both" kinds""",
    "C:\\path\\",
    "Cost $HOME ${PATH} $$",
    "<script>alert(1)</script>",
    "&amp; &#42; entities",
    "# not a heading #",
    "- not a list",
    "1. not a list",
    "*not* _emphasis_ [not](a link) `code`",
    "Acme, Inc. (Europe); team@example.org",
    "Line\u2028separator",
    "ESC\x1b[31m",
]

outcomes = {"tried": 0, "rejected": 0, "rendered": 0}


@pytest.fixture(scope="module")
def checker(render, tmp_path_factory):
    """A service venv to run `check --deploy` in rendered examples (same requirements as the defaults)."""
    return service_venv(render("defaults"), PYTHON_VERSION)


def render_or_reject(template, tmp_path_factory, answers):
    dst = tmp_path_factory.mktemp("fuzz") / "service"
    outcomes["tried"] += 1
    try:
        run_copy(str(template), dst, data=answers, defaults=True, unsafe=True, quiet=True)
    except ValueError as error:
        outcomes["rejected"] += 1
        message = str(error)
        # A refused answer, or a question left without a default because none
        # could be derived from it (a name with no letters or digits gives no
        # slug), which --defaults cannot answer.
        assert (
            message.startswith("Validation error for question")
            or message.startswith("Invalid choice")
            or re.fullmatch(r'Question "\w+" is required', message)
        ), message
        assert not dst.exists(), "a refused answer left files behind"
        return None
    outcomes["rendered"] += 1
    return dst


@pytest.fixture(scope="module")
def compose():
    """docker compose, which reads .env (no engine needed)."""
    found = shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode
    require(found == 0, "`docker compose` is needed to read the rendered .env.example as Compose does")


def read_env_file(env_file, tmp_path):
    """The variables of an env file as Docker Compose passes them to a container."""
    compose_file = tmp_path / "compose.yml"
    compose_file.write_text(f"services:\n  app:\n    image: app\n    env_file: {json.dumps(str(env_file))}\n")
    result = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    environment = json.loads(result.stdout)["services"]["app"]["environment"]
    # `config` writes a literal $ as $$, as a compose file must.
    return {name: value.replace("$$", "$") for name, value in environment.items()}


def settings_default(service_path, package, name):
    """The literal default of a setting read with env.<type>(NAME, default=...) in base.py."""
    tree = ast.parse((service_path / f"src/{package}/settings/base.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and [target.id for target in node.targets] == [name]:
            (value,) = [keyword.value for keyword in node.value.keywords if keyword.arg == "default"]
            return ast.literal_eval(value)
    raise AssertionError(f"{name} is not set in base.py")


def markdown_text(line, tag):
    """The text of one line of Markdown, which must render as one element <tag>."""
    rendered = MarkdownIt("commonmark").render(line)
    match = re.fullmatch(rf"<{tag}>(.*)</{tag}>\n", rendered)
    assert match, f"{line!r} renders as {rendered!r}"
    return html.unescape(match.group(1))


def assert_free_text_reads_back(service_path, package, recorded):
    """project_name, description and the authors read back from every file that shows them."""
    name = recorded["project_name"]
    project = tomllib.loads((service_path / "pyproject.toml").read_text())["project"]
    assert project["description"] == recorded["description"]
    author = {key: recorded[f"author_{key}"] for key in ("name", "email") if recorded[f"author_{key}"]}
    assert project.get("authors", []) == ([author] if author else [])
    readme = (service_path / "README.md").read_text().splitlines()
    assert markdown_text(readme[0], "h1") == name
    assert markdown_text(readme[2], "p") == recorded["description"]
    sender = settings_default(service_path, package, "DEFAULT_FROM_EMAIL")
    (mailbox,) = email_policy.header_factory("From", sender).addresses
    assert (mailbox.display_name, mailbox.addr_spec) == (name, f"noreply@{recorded['domain']}")
    env_example = read_env_file(service_path / ".env.example", service_path.parent)
    assert env_example["DEFAULT_FROM_EMAIL"] == sender


def assert_service_is_sound(service_path, bin_dir, answers):
    for path in service_path.rglob("*.py"):
        ast.parse(path.read_text(), str(path))
    for path in [*service_path.rglob("*.yml"), *service_path.rglob("*.yaml")]:
        if path.name.startswith("docker-compose"):
            load_compose(path)  # Compose's merge tags (!override) included
        else:
            yaml.safe_load(path.read_text())
    for path in service_path.rglob("*.json"):
        json.loads(path.read_text())
    for path in [*service_path.rglob("*.toml"), *service_path.rglob("*.toml.example")]:
        tomllib.loads(path.read_text())
    for path in service_path.rglob("*.sh"):
        subprocess.run(["bash", "-n", str(path)], check=True)
    recorded = yaml.safe_load((service_path / ".copier-answers.yml").read_text())
    package = recorded["package_name"]
    assert_free_text_reads_back(service_path, package, recorded)
    service = Service(service_path, bin_dir, package)
    env = service.production_env("postgres://app:password@db:5432/app", "redis://redis:6379/0")
    result = service.manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert "no issues" in result.stdout
    shutil.rmtree(service_path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.sampled_from(TEXT_QUESTIONS), value=st.one_of(st.sampled_from(NASTY), st.text(max_size=60)))
def test_any_text_answer(copier_template, tmp_path_factory, checker, compose, question, value):
    answers = {**REQUIRED_ANSWERS, question: value}
    service = render_or_reject(copier_template, tmp_path_factory, answers)
    if service is not None:
        assert_service_is_sound(service, checker, answers)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.sampled_from(INT_QUESTIONS), value=st.integers(min_value=-(10**9), max_value=10**9))
def test_any_count(copier_template, tmp_path_factory, checker, compose, question, value):
    answers = {**REQUIRED_ANSWERS, question: value}
    service = render_or_reject(copier_template, tmp_path_factory, answers)
    if service is not None:
        assert 0 <= value <= 64
        assert_service_is_sound(service, checker, answers)


def test_every_nasty_value_for_every_question(copier_template, tmp_path_factory, checker, compose, figure):
    for question in TEXT_QUESTIONS:
        for value in NASTY:
            answers = {**REQUIRED_ANSWERS, question: value}
            service = render_or_reject(copier_template, tmp_path_factory, answers)
            if service is not None:
                assert_service_is_sound(service, checker, answers)
    figure("copier answers tried / rejected / rendered", "{tried} / {rejected} / {rendered}".format(**outcomes))
