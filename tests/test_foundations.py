"""What a Django team expects from the first day: its own user model (and
an existing service keeping Django's), its language, e-mail it can read in
development."""

import importlib.util
import json
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from copier import run_copy

from harness import stack as stack_tools
from harness.answers import PACKAGE, REQUIRED_ANSWERS, ROOT, answers_for, python_version_of
from harness.docker import docker
from harness.service import SECRET_KEY, Service, make, prepare_service, service_venv, variant_service
from harness.template_repo import ServiceRepo, copy_template, git

SEND_MAIL = """
import django
django.setup()
from django.core.mail import send_mail

send_mail("Reset your password", "Follow https://example.org/reset/abc to choose a new one.", None, ["ada@example.org"])
"""


SHOW_USER_MODEL = """
import django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model

print(settings.AUTH_USER_MODEL, get_user_model()._meta.db_table)
"""


def recorded_answers(service_path):
    return yaml.safe_load((service_path / ".copier-answers.yml").read_text())


def test_a_new_service_has_its_own_user_model(render):
    service = render("defaults")

    assert recorded_answers(service)["use_custom_user_model"] is True
    assert 'AUTH_USER_MODEL = "users.User"' in (service / f"src/{PACKAGE}/settings/base.py").read_text()
    assert (service / "src/users/migrations/0001_initial.py").is_file()
    assert (service / "tests/test_users.py").is_file()


@pytest.mark.parametrize(
    ("existing", "data"),
    [
        # Adopting the template: the service's Django project is already there.
        ({"src/manage.py": "", "README.md": "# Ours\n"}, {}),
        ({"manage.py": ""}, {}),
        # Said explicitly, on a new copy.
        ({}, {"use_custom_user_model": False}),
    ],
)
def test_a_service_that_exists_or_says_so_keeps_djangos_user_model(copier_template, tmp_path, existing, data):
    service = tmp_path / "service"
    for relative, text in existing.items():
        (service / relative).parent.mkdir(parents=True, exist_ok=True)
        (service / relative).write_text(text)

    run_copy(
        str(copier_template),
        service,
        data={**REQUIRED_ANSWERS, **data},
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
    )

    assert recorded_answers(service)["use_custom_user_model"] is False
    assert not (service / "src/users").exists()
    assert not (service / "tests/test_users.py").exists()
    settings = (service / f"src/{PACKAGE}/settings/base.py").read_text()
    assert "AUTH_USER_MODEL" not in settings and '"users"' not in settings


def previous_release():
    """(version, commit) of the newest "Release vX.Y.Z" commit in this repository's history."""
    log = git("log", "--format=%H %s", "HEAD", cwd=ROOT)
    for line in log.splitlines():
        commit, subject = line.split(" ", 1)
        match = re.fullmatch(r"Release v(\d+\.\d+\.\d+)", subject)
        if match:
            return match.group(1), commit
    raise AssertionError("no 'Release vX.Y.Z' commit in this repository's history")


@pytest.mark.service
def test_a_service_updated_from_the_previous_release_keeps_djangos_user_model(tmp_path):
    """The previous release had no user model of its own: a service made from
    it has auth_user and migrations that depend on it, which a switch of
    AUTH_USER_MODEL would break (InconsistentMigrationHistory)."""
    version, commit = previous_release()
    repo = tmp_path / "template"
    git("clone", "--quiet", "--no-checkout", str(ROOT), str(repo), cwd=tmp_path)
    git("checkout", "--quiet", commit, cwd=repo)
    git("tag", "--force", f"v{version}", cwd=repo)
    copy_template(repo)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "--allow-empty", "-m", "Now", cwd=repo)
    git("tag", "v99.0.0", cwd=repo)
    service = ServiceRepo(repo, tmp_path / "service", version=f"v{version}")

    result = service.update("v99.0.0")

    assert result.returncode == 0, result.stderr
    assert recorded_answers(service.path)["use_custom_user_model"] is False
    assert not (service.path / "src/users").exists()
    runner = Service(service.path, service_venv(service.path, python_version_of(answers_for("defaults"))), PACKAGE)
    env = runner.env(
        DJANGO_SETTINGS_MODULE=f"{PACKAGE}.settings.development", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}"
    )
    assert runner.python(SHOW_USER_MODEL, env=env).stdout.split() == ["auth.User", "auth_user"]
    runner.manage("migrate", "--noinput", env=env)
    assert "users" not in runner.manage("showmigrations", env=env).stdout.split()


@pytest.fixture(scope="module")
def service(render, tmp_path_factory):
    yield from variant_service(render, tmp_path_factory, "defaults", prefix="foundations")


@pytest.mark.service
def test_mail_sent_in_development_is_kept_in_a_git_ignored_directory_that_make_mail_shows(service):
    python_version = python_version_of(service.answers)
    before = make(service.path, "mail", python_version=python_version)
    assert before.returncode == 0, before.stderr
    assert "No e-mail yet" in before.stdout

    service.python(SEND_MAIL, env=service.env(DJANGO_SETTINGS_MODULE=f"{service.package}.settings.development"))

    [message] = (service.path / ".mail").glob("*.log")
    assert "Subject: Reset your password" in message.read_text()
    shown = make(service.path, "mail", python_version=python_version)
    assert shown.returncode == 0, shown.stderr
    assert "To: ada@example.org" in shown.stdout
    assert "https://example.org/reset/abc" in shown.stdout
    # Never committed by accident.
    subprocess.run(["git", "init", "--quiet"], cwd=service.path, check=True)
    ignored = subprocess.run(["git", "check-ignore", "--quiet", message], cwd=service.path)
    assert ignored.returncode == 0


COPIER = str(Path(sys.executable).parent / "copier")


def language_codes():
    """The codes the language question accepts (extensions/languages.py)."""
    spec = importlib.util.spec_from_file_location("languages", ROOT / "extensions/languages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DJANGO_LANGUAGES


def test_the_language_answer_is_the_services_language_code(render):
    service = render("portuguese", language="pt-br")

    assert recorded_answers(service)["language"] == "pt-br"
    assert 'LANGUAGE_CODE = "pt-br"' in (service / f"src/{PACKAGE}/settings/base.py").read_text()
    assert 'LANGUAGE_CODE = "en"' in (render("defaults") / f"src/{PACKAGE}/settings/base.py").read_text()


@pytest.mark.parametrize(("answer", "hint"), [("EN_gb", "Did you mean en or en-au or en-gb?"), ("klingon", "")])
def test_a_language_django_does_not_know_is_refused_and_nothing_is_written(copier_template, tmp_path, answer, hint):
    service = tmp_path / "service"
    data = [
        arg for key, value in {**REQUIRED_ANSWERS, "language": answer}.items() for arg in ("--data", f"{key}={value}")
    ]

    result = subprocess.run(
        [COPIER, "copy", "--trust", "--defaults", "--quiet", *data, str(copier_template), str(service)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "language must be a language code that Django knows, in lower case" in result.stderr
    assert f"got {answer!r}." in result.stderr
    assert hint in result.stderr
    assert not service.exists()


@pytest.mark.service
def test_the_language_question_accepts_exactly_djangos_languages(service):
    django_languages = service.python(
        "from django.conf import global_settings; print(*(code for code, _ in global_settings.LANGUAGES))"
    ).stdout.split()

    assert language_codes() == django_languages


# A translation as a service adds one: makemessages writes the .po file (in
# Git), the image build compiles it.
GERMAN = r"""msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Language: de\n"

msgid "Our inventory"
msgstr "Unser Bestand"
"""

# In the image, with its production settings (LOCALE_PATHS).
TRANSLATE = """
import django
from django.utils import translation

django.setup()
with translation.override("de"):
    print(translation.gettext("Our inventory"))
"""


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_the_image_holds_the_services_compiled_translations_and_no_gettext(engine, render, tmp_path):
    service = tmp_path / "service"
    shutil.copytree(render("defaults"), service)
    po = service / "src/locale/de/LC_MESSAGES/django.po"
    po.parent.mkdir(parents=True)
    po.write_text(GERMAN)
    tag = f"foundations-{secrets.token_hex(4)}:test"

    stack_tools.build(service, tag, stack_tools.base_image_for(service))
    try:
        production = [
            f"--env=SECRET_KEY={SECRET_KEY}",
            "--env=DATABASE_URL=postgres://app@db/app",
            "--env=REDIS_URL=redis://redis:6379/0",
            "--env=EMAIL_URL=consolemail://",
        ]
        assert docker("run", "--rm", *production, tag, "python", "-c", TRANSLATE).stdout.strip() == "Unser Bestand"
        # msgfmt stayed in the build.
        assert docker("run", "--rm", tag, "sh", "-c", "command -v msgfmt", check=False).returncode != 0
    finally:
        docker("rmi", tag, check=False)


# Settings as an adopting team often writes them: its old settings module,
# which started from the template's base, became settings/project.py.
STAR_IMPORTING_PROJECT = """
from .base import *  # noqa: F403

TIME_ZONE = "Asia/Manila"
"""

SHOW_DERIVED = """
import json
import django
from django.conf import settings

django.setup()
from celery import current_app

print(json.dumps({
    "conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"],
    "celery_timezone": current_app.conf.timezone,
    "password_hasher": settings.PASSWORD_HASHERS[0],
}))
"""


@pytest.mark.service
@pytest.mark.parametrize(
    ("explicit", "production_conn_max_age"),
    [
        # What the file does not set keeps the environment module's value.
        ("", 60),
        # What it sets wins, even the very value base.py has.
        ("CONN_MAX_AGE = 0\n", 0),
    ],
)
def test_a_project_file_that_star_imports_base_changes_only_what_it_sets(
    render, tmp_path, explicit, production_conn_max_age
):
    service = prepare_service(render("defaults"), tmp_path / "service", answers_for("defaults"))
    settings = service.path / f"src/{PACKAGE}/settings"
    (settings / "project.py").write_text((settings / "project.py").read_text() + STAR_IMPORTING_PROJECT + explicit)
    production_env = service.production_env("postgres://app:secret@db:5432/app", "redis://redis:6379/0")

    production = json.loads(service.python(SHOW_DERIVED, env=production_env).stdout)
    test = json.loads(
        service.python(SHOW_DERIVED, env=service.env(DJANGO_SETTINGS_MODULE=f"{PACKAGE}.settings.test")).stdout
    )

    assert production == {
        "conn_max_age": production_conn_max_age,
        "celery_timezone": "Asia/Manila",
        "password_hasher": "servicekit.hashers.BoundedArgon2PasswordHasher",
    }
    assert test["celery_timezone"] == "Asia/Manila"
    # The test settings' fast hasher, not base.py's.
    assert test["password_hasher"] == "django.contrib.auth.hashers.MD5PasswordHasher"
