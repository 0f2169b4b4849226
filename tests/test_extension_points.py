"""A service extends the template in its own files only: settings for every
environment or for one, and its own readiness checks."""

import json
import time

import pytest

from harness.answers import PACKAGE, answers_for
from harness.service import prepare_service

pytestmark = pytest.mark.service

SETTINGS = f"src/{PACKAGE}/settings"

# Prints what the settings say, and what the Celery app was configured with.
SHOW_SETTINGS = """
import json
import django
from django.conf import settings

django.setup()
from celery import current_app

print(json.dumps({
    "time_zone": settings.TIME_ZONE,
    "celery_timezone": current_app.conf.timezone,
    "conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"],
    "task_time_limit": current_app.conf.task_time_limit,
    "visibility_timeout": current_app.conf.broker_transport_options["visibility_timeout"],
    "email_backend": settings.EMAIL_BACKEND,
    "apps": settings.INSTALLED_APPS[-1],
}))
"""

CHECKS = """\
import time


def payments_api():
    raise ConnectionError("payments API refused the connection")


def object_store():
    time.sleep(30)


def search():
    pass
"""


@pytest.fixture(scope="module")
def service(render, tmp_path_factory):
    path = tmp_path_factory.mktemp("extended") / "service"
    service = prepare_service(render("defaults"), path, answers_for("defaults"))
    (path / "src/inventory").mkdir()
    (path / "src/inventory/__init__.py").write_text("")
    (path / "src/inventory/checks.py").write_text(CHECKS)
    with (path / SETTINGS / "project.py").open("a") as project:
        project.write('\nPROJECT_APPS = ["inventory"]\nTIME_ZONE = "Europe/Berlin"\nCONN_MAX_AGE = 600\n')
    with (path / SETTINGS / "project_production.py").open("a") as production:
        production.write("\nCELERY_TASK_TIME_LIMIT = 1800\n")
    with (path / SETTINGS / "project_development.py").open("a") as development:
        development.write('\nEMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"\n')
    yield service
    service.close()


def settings_in(service, environment, env=None):
    env = env or service.env()
    env["DJANGO_SETTINGS_MODULE"] = f"{PACKAGE}.settings.{environment}"
    return json.loads(service.python(SHOW_SETTINGS, env=env).stdout)


def test_the_services_settings_win_in_every_environment_and_derived_values_follow(service):
    production_env = service.production_env("postgres://app:secret@db:5432/app", "redis://redis:6379/0")
    # Even when the environment says otherwise: the service chose in its own file.
    production_env["CONN_MAX_AGE"] = "60"

    seen = {
        "development": settings_in(service, "development"),
        "production": settings_in(service, "production", production_env),
        "test": settings_in(service, "test"),
    }

    for environment, settings in seen.items():
        assert settings["time_zone"] == "Europe/Berlin", environment
        assert settings["celery_timezone"] == "Europe/Berlin", environment
        assert settings["conn_max_age"] == 600, environment
        assert settings["apps"] == "inventory", environment
    # Settings for one environment stay in that environment, and what derives from them follows.
    assert (seen["production"]["task_time_limit"], seen["production"]["visibility_timeout"]) == (1800, 3600)
    assert (seen["development"]["task_time_limit"], seen["development"]["visibility_timeout"]) == (300, 600)
    assert seen["development"]["email_backend"] == "django.core.mail.backends.dummy.EmailBackend"
    assert seen["test"]["email_backend"] == "django.core.mail.backends.locmem.EmailBackend"


READY = """
import json, os, sys, time
import django
django.setup()
from django.test import Client

started = time.monotonic()
response = Client().get("/ready/", HTTP_HOST="localhost")
print(json.dumps({"status": response.status_code, "body": response.json(), "seconds": time.monotonic() - started}))
sys.stdout.flush()
os._exit(0)  # without waiting for a check that still hangs in its thread
"""


def ready_with(service, checks):
    project = service.path / SETTINGS / "project_development.py"
    original = project.read_text()
    project.write_text(original + f"\nPROJECT_READY_CHECKS = {checks!r}\n")
    try:
        service.manage("migrate", "--noinput", "--verbosity=0")
        env = service.env(DJANGO_SETTINGS_MODULE=f"{PACKAGE}.settings.development")
        return json.loads(service.python(READY, env=env, timeout=60).stdout)
    finally:
        project.write_text(original)


def test_ready_runs_the_services_own_checks_within_its_deadline(service):
    passing = ready_with(service, {"search": "inventory.checks.search"})
    assert passing["status"] == 200
    assert passing["body"] == {"status": "ok", "checks": ["database", "cache", "broker", "search"]}

    started = time.monotonic()
    failing = ready_with(
        service,
        {
            "payments-api": "inventory.checks.payments_api",
            "object-store": "inventory.checks.object_store",
            "search": "inventory.checks.search",
        },
    )
    assert failing["status"] == 503
    assert failing["body"] == {"status": "unavailable", "failed": ["payments-api", "object-store"]}
    # A check that hangs costs the probe its deadline (4 s), not the check's 30 s.
    assert 3.5 < failing["seconds"] < 6
    assert time.monotonic() - started < 30


def test_a_check_that_does_not_import_is_reported_by_manage_py_check(service):
    project = service.path / SETTINGS / "project.py"
    original = project.read_text()
    project.write_text(original + '\nPROJECT_READY_CHECKS = {"s3": "inventory.checks.missing"}\n')
    try:
        result = service.manage("check", check=False)
    finally:
        project.write_text(original)
    assert result.returncode != 0
    assert "servicekit.E001" in result.stderr
    assert "PROJECT_READY_CHECKS['s3'] cannot be imported" in result.stderr


def test_the_services_settings_cannot_switch_off_productions_safeguards(service):
    project = service.path / SETTINGS / "project.py"
    original = project.read_text()
    production_env = service.production_env("postgres://app:secret@db:5432/app", "redis://redis:6379/0")
    try:
        for unsafe, variable in [("DEBUG = True", "DEBUG"), ('ALLOWED_HOSTS = ["*"]', "ALLOWED_HOSTS")]:
            project.write_text(f"{original}\n{unsafe}\n")
            result = service.python("import django; django.setup()", env=production_env, check=False)
            assert result.returncode != 0, unsafe
            assert "ImproperlyConfigured" in result.stderr and variable in result.stderr.strip().splitlines()[-1]
    finally:
        project.write_text(original)
