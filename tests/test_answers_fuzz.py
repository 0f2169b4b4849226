"""Any answer is either refused with a clear message, writing nothing, or renders a
service that compiles and passes Django's deployment checks."""

import shutil
import tomllib

import pytest
import yaml
from copier import run_copy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.answers import DOMAIN, PYTHON_VERSION, REQUIRED_ANSWERS
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
        assert message.startswith("Validation error for question") or message.startswith("Invalid choice")
        assert not dst.exists(), "a refused answer left files behind"
        return None
    outcomes["rendered"] += 1
    return dst


def assert_service_is_sound(service_path, bin_dir, answers):
    for path in service_path.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    for path in [*service_path.rglob("*.yml"), *service_path.rglob("*.yaml")]:
        yaml.safe_load(path.read_text())
    tomllib.loads((service_path / "pyproject.toml").read_text())
    package = yaml.safe_load((service_path / ".copier-answers.yml").read_text())["package_name"]
    service = Service(service_path, bin_dir, package)
    env = service.production_env("postgres://app:password@db:5432/app", "redis://redis:6379/0")
    result = service.manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert "no issues" in result.stdout
    shutil.rmtree(service_path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.sampled_from(TEXT_QUESTIONS), value=st.one_of(st.sampled_from(NASTY), st.text(max_size=60)))
def test_any_text_answer(copier_template, tmp_path_factory, checker, question, value):
    answers = {**REQUIRED_ANSWERS, question: value}
    service = render_or_reject(copier_template, tmp_path_factory, answers)
    if service is not None:
        assert_service_is_sound(service, checker, answers)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.sampled_from(INT_QUESTIONS), value=st.integers(min_value=-(10**9), max_value=10**9))
def test_any_count(copier_template, tmp_path_factory, checker, question, value):
    answers = {**REQUIRED_ANSWERS, question: value}
    service = render_or_reject(copier_template, tmp_path_factory, answers)
    if service is not None:
        assert 0 <= value <= 64
        assert_service_is_sound(service, checker, answers)


def test_every_nasty_value_for_every_question(copier_template, tmp_path_factory, checker, figure):
    for question in TEXT_QUESTIONS:
        for value in NASTY:
            answers = {**REQUIRED_ANSWERS, question: value}
            service = render_or_reject(copier_template, tmp_path_factory, answers)
            if service is not None:
                assert_service_is_sound(service, checker, answers)
    figure("copier answers tried / rejected / rendered", "{tried} / {rejected} / {rendered}".format(**outcomes))
