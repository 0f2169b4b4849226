"""Answers: derived defaults, and invalid answers rejected before anything is written."""

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from jinja2 import Environment

from harness.answers import DOMAIN, KIT, PACKAGE, REQUIRED_ANSWERS, ROOT, VARIANTS
from harness.template_repo import CONFLICT_MARKER, ServiceRepo, TemplateRepo, template_only_change

COPIER = str(Path(sys.executable).parent / "copier")


def copier_copy(template, dst, answers):
    data = []
    for key, value in answers.items():
        data += ["--data", f"{key}={value}"]
    return subprocess.run(
        [COPIER, "copy", "--trust", "--defaults", "--quiet", *data, str(template), str(dst)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_only_the_message(stderr, question):
    # The message alone, naming the question: one line, no Python internals.
    assert "Traceback" not in stderr
    assert question in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def recorded_answers(service):
    return yaml.safe_load((service / ".copier-answers.yml").read_text())


def test_slug_and_package_derive_from_the_name(render):
    answers = recorded_answers(render("defaults"))
    assert answers["project_slug"] == "obc-management-system"
    assert answers["package_name"] == PACKAGE == "obc_management_system"
    assert (render("defaults") / f"src/{PACKAGE}/settings/production.py").is_file()


def test_unicode_name_gets_an_ascii_slug(render):
    service = render("unicode", project_name="Café Ünïcode Sërvice")
    answers = recorded_answers(service)
    assert answers["project_slug"] == "cafe-unicode-service"
    assert answers["package_name"] == "cafe_unicode_service"
    assert "# Café Ünïcode Sërvice" in (service / "README.md").read_text()


INVALID = [
    # (key, value, part of the message)
    ("project_name", "", "project_name must not be empty"),
    ("project_name", "   ", "project_name must not be empty"),
    ("project_name", "Tab\tSeparated", "project_name must be one line of text"),
    ("project_name", "Two\nLines", "project_name must be one line of text"),
    ("project_name", "Bell\x07", "project_name must be one line of text"),
    ("project_name", "x" * 101, "at most 100 characters"),
    ("project_slug", "Has Caps", "project_slug must be lower-case"),
    ("project_slug", "-leading", "project_slug must be lower-case"),
    ("project_slug", "double--hyphen", "project_slug must be lower-case"),
    ("project_slug", "../escape", "project_slug must be lower-case"),
    ("project_slug", "a" * 51, "at most 50 characters"),
    ("project_slug", "42", "project_slug '42' would be read as a number, true/false or null"),
    ("project_slug", "true", "add a word, e.g. 'true-service'"),
    ("project_slug", "0x1f", "would be read as a number"),
    ("package_name", "class", "is a Python keyword"),
    ("package_name", "match", "is a Python keyword"),
    ("package_name", "django", "would shadow"),
    ("package_name", "celery", "would shadow"),
    ("package_name", "test", "would shadow"),
    ("package_name", "common", "would shadow"),  # the template's package until 0.1.0
    ("package_name", KIT, "would shadow"),  # the template's own package
    ("package_name", "json", "would shadow"),
    ("package_name", "1service", "must be a Python identifier"),
    ("package_name", "my-service", "must be a Python identifier"),
    ("package_name", "../evil", "must be a Python identifier"),
    ("description", "Line\u2028separated", "description must be one line of text"),
    ("author_name", "Escape\x1b[31m", "author_name must be one line of text"),
    ("author_email", "not-an-email", "author_email must be an e-mail address"),
    ("domain", "", "domain is required"),
    ("domain", f"https://{DOMAIN}", "without scheme, port or path"),
    ("domain", f"{DOMAIN}:8443", "without scheme, port or path"),
    ("domain", f"{DOMAIN}/app", "without scheme, port or path"),
    ("domain", "localhost", "fully qualified host name"),
    ("domain", "OBCMS.example.org", "must be lower-case"),
    ("domain", "-bad.example.org", "fully qualified host name"),
    ("domain", "two..dots.org", "fully qualified host name"),
    ("domain", "exa mple.org", "fully qualified host name"),
    ("domain", "10.0.0.1", "not an IP address"),
    ("media_backend", "ftp", "Invalid choice"),
    ("web_workers", "-1", "web_workers must be a whole number from 0 to 64"),
    ("web_workers", "65", "web_workers must be a whole number from 0 to 64"),
    ("web_workers", "abc", "web_workers must be a whole number from 0 to 64 (0 computes it from the CPUs), got 'abc'"),
    ("web_workers", "four", "whole number from 0 to 64 (0 computes it from the CPUs), got 'four'"),
    ("web_workers", "2.5", "web_workers must be a whole number from 0 to 64"),
    ("web_workers", "05", "web_workers must be a whole number from 0 to 64"),
    ("web_threads", "two", "web_threads must be a whole number from 1 to 32, got 'two'"),
    ("celery_concurrency", "many", "celery_concurrency must be a whole number from 0 to 64"),
    ("web_threads", "0", "web_threads must be a whole number from 1 to 32"),
    ("web_threads", "1000", "web_threads must be a whole number from 1 to 32"),
    ("celery_concurrency", "-3", "celery_concurrency must be a whole number from 0 to 64"),
    ("reverse_proxy", "nginx", "Invalid choice"),
    ("python_version", "2.7", "Invalid choice"),
    ("postgres_version", "9", "Invalid choice"),
]


@pytest.mark.parametrize(("key", "value", "message"), INVALID, ids=[f"{k}={v[:20]!r}" for k, v, _ in INVALID])
def test_invalid_answer_is_rejected_and_nothing_is_written(copier_template, tmp_path, key, value, message):
    dst = tmp_path / "service"

    result = copier_copy(copier_template, dst, {**REQUIRED_ANSWERS, key: value})

    assert result.returncode != 0
    assert message in result.stderr
    assert_only_the_message(result.stderr, key)
    assert not dst.exists()


def test_local_media_without_the_proxy_is_rejected_with_a_way_out(copier_template, tmp_path):
    dst = tmp_path / "service"

    result = copier_copy(copier_template, dst, {**REQUIRED_ANSWERS, "reverse_proxy": "none"})

    assert result.returncode != 0
    assert "Invalid choice for 'reverse_proxy': local media files are served by the bundled proxy" in result.stderr
    assert "choose reverse_proxy 'caddy', or media_backend 's3'" in result.stderr
    assert_only_the_message(result.stderr, "media_backend")
    assert not dst.exists()


def test_no_proxy_is_accepted_with_s3_media(render):
    answers = recorded_answers(render("no-proxy-s3", media_backend="s3", reverse_proxy="none"))
    assert (answers["media_backend"], answers["reverse_proxy"]) == ("s3", "none")


def test_a_name_without_latin_letters_needs_an_explicit_slug(copier_template, tmp_path):
    dst = tmp_path / "service"

    result = copier_copy(copier_template, dst, {"project_name": "日本語", "domain": "example.jp"})

    assert result.returncode != 0
    assert 'Question "project_slug" is required: give it with --data project_slug=...' in result.stderr
    assert_only_the_message(result.stderr, "project_slug")
    assert not dst.exists()


def test_a_name_without_latin_letters_renders_with_an_explicit_slug(render):
    service = render("japanese", project_name="日本語", project_slug="nihongo")
    answers = recorded_answers(service)
    assert (answers["project_slug"], answers["package_name"]) == ("nihongo", "nihongo")


def test_a_leading_digit_stays_in_the_slug_and_moves_behind_in_the_package(render):
    service = render("digit", project_name="3D Print Shop")
    answers = recorded_answers(service)
    assert answers["project_slug"] == "3d-print-shop"
    assert answers["package_name"] == "print_shop_3d"
    assert tomllib.loads((service / "pyproject.toml").read_text())["project"]["name"] == "3d-print-shop"
    assert (service / "src/print_shop_3d/settings/base.py").is_file()


@pytest.mark.parametrize(
    ("project_name", "slug", "package"),
    [
        ("2024 Census", "2024-census", "census_2024"),
        ("42", "42-service", "service_42"),
        ("Yes", "yes-service", "yes_service"),
        ("Django", "django", "django_service"),
        ("Class", "class", "class_service"),
    ],
)
def test_the_derived_slug_and_package_are_always_valid(copier_template, tmp_path, project_name, slug, package):
    # copier checks a default with the question's validator: an invalid
    # derived default would end an interactive session instead of asking.
    dst = tmp_path / "service"

    result = copier_copy(copier_template, dst, {**REQUIRED_ANSWERS, "project_name": project_name})

    assert result.returncode == 0, result.stderr
    answers = recorded_answers(dst)
    assert (answers["project_slug"], answers["package_name"]) == (slug, package)


def test_a_name_with_an_apostrophe_and_quotes_reads_back_from_every_file(render):
    name = "Women's Health Registry"
    description = 'The "Orders" service: $HOME, C:\\path & <b>'
    service = render("apostrophe", project_name=name, description=description, author_name='Team "Blue"')

    project = tomllib.loads((service / "pyproject.toml").read_text())["project"]
    assert project["description"] == description
    assert project["authors"] == [{"name": 'Team "Blue"'}]
    assert recorded_answers(service)["project_slug"] == "women-s-health-registry"
    assert default_from_email(service, "women_s_health_registry") == f"{name} <noreply@{DOMAIN}>"
    readme = (service / "README.md").read_text().splitlines()
    assert readme[0] == f"# {name}"
    assert readme[2] == 'The "Orders" service: $HOME, C:\\\\path & \\<b\\>'


def default_from_email(service, package):
    """The default of DEFAULT_FROM_EMAIL in the rendered base settings, as Python reads it."""
    tree = ast.parse((service / f"src/{package}/settings/base.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and [target.id for target in node.targets] == ["DEFAULT_FROM_EMAIL"]:
            (default,) = [keyword.value for keyword in node.value.keywords if keyword.arg == "default"]
            return ast.literal_eval(default)
    raise AssertionError("DEFAULT_FROM_EMAIL is not set in base.py")


def test_an_existing_destination_is_left_untouched_on_rejection(copier_template, tmp_path):
    dst = tmp_path / "service"
    dst.mkdir()
    (dst / "notes.txt").write_text("mine\n")

    result = copier_copy(copier_template, dst, {**REQUIRED_ANSWERS, "domain": "http://bad"})

    assert result.returncode != 0
    assert [path.name for path in dst.iterdir()] == ["notes.txt"]
    assert (dst / "notes.txt").read_text() == "mine\n"


def load_answer_errors():
    spec = importlib.util.spec_from_file_location("answer_errors", ROOT / "extensions/answer_errors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def uncaught(error_factory):
    try:
        error_factory()
    except BaseException as error:  # noqa: BLE001 - handed to the hook as Python would
        return type(error), error, error.__traceback__


def test_the_answer_error_hook_leaves_other_errors_to_the_previous_hook(capsys):
    answer_errors = load_answer_errors()
    seen = []
    hook = answer_errors.answer_error_hook(lambda *exc_info: seen.append(exc_info[1]))

    def not_copier():
        int("abc")

    for factory in (not_copier, lambda: {}["key"]):
        hook(*uncaught(factory))

    assert [type(error) for error in seen] == [ValueError, KeyError]
    assert capsys.readouterr().err == ""


def test_the_answer_error_hook_is_installed_once(monkeypatch):
    answer_errors = load_answer_errors()
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)

    answer_errors.AnswerErrors(Environment())
    installed = sys.excepthook
    answer_errors.AnswerErrors(Environment())

    assert installed is not sys.__excepthook__
    assert sys.excepthook is installed


COUNTS = {"web_workers": 5, "web_threads": 4, "celery_concurrency": 3}


def test_counts_recorded_as_numbers_by_an_earlier_version_still_update(tmp_path):
    template = TemplateRepo(tmp_path / "template")
    # Versions before 0.1.1 asked the counts as numbers and recorded ints.
    for name in COUNTS:
        template.edit("copier.yml", f"{name}:\n  type: str\n", f"{name}:\n  type: int\n")
    template.release("1.0.1", "Counts asked as numbers")
    service = ServiceRepo(template.path, tmp_path / "service", version="v1.0.1", **COUNTS)
    assert {name: recorded_answers(service.path)[name] for name in COUNTS} == COUNTS
    gunicorn_before = service.read("gunicorn.conf.py")
    for name in COUNTS:
        template.edit("copier.yml", f"{name}:\n  type: int\n", f"{name}:\n  type: str\n")
    template_only_change(template)

    result = service.update("v1.1.0")

    assert result.returncode == 0, result.stderr
    assert not CONFLICT_MARKER.search(service.read("gunicorn.conf.py"))
    assert {name: recorded_answers(service.path)[name] for name in COUNTS} == {
        name: str(value) for name, value in COUNTS.items()
    }
    # The numbers render as before: only the template's own change differs.
    assert service.read("gunicorn.conf.py") == gunicorn_before.replace(
        'env.int("GUNICORN_KEEPALIVE", default=5', 'env.int("GUNICORN_KEEPALIVE", default=10'
    )
    assert "default=5, minimum=0) or 2 * available_cpus() + 1" in gunicorn_before
    assert "CELERY_CONCURRENCY=3\n" in service.read(".env.example")


def prose_lines(markdown):
    """(number, line) of a Markdown file's prose: no fenced code, tables or code spans."""
    fenced = False
    for number, line in enumerate(markdown.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.lstrip().startswith("|"):
            continue
        yield number, re.sub(r"`[^`]*`", "`code`", line)


@pytest.mark.parametrize("variant", [*VARIANTS, "no-beat-local-media"])
def test_rendered_markdown_has_no_double_space_inside_a_sentence(render, variant):
    # Catches an {% if %} at the end of a line, which trim_blocks joins to the
    # next line's indentation ("The worker and beat  touch a file").
    service = render(variant, use_celery_beat=False) if variant == "no-beat-local-media" else render(variant)
    doubled = [
        f"{path.relative_to(service)}:{number}: {line.strip()}"
        for path in sorted(service.rglob("*.md"))
        for number, line in prose_lines(path.read_text())
        if re.search(r"\S {2,}\S", line.strip())
    ]
    assert doubled == []


@pytest.mark.parametrize("beat", [True, False])
def test_the_readme_says_which_processes_touch_their_health_file(render, beat):
    readme = " ".join((render("defaults", use_celery_beat=beat) / "README.md").read_text().split())
    if beat:
        assert "The worker and beat touch a file that their healthcheck reads" in readme
    else:
        assert "The worker touches a file that its healthcheck reads" in readme
        assert "beat" not in readme.split("Healthchecks everywhere")[1].split("Graceful stops")[0]
