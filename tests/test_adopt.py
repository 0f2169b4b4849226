"""Adopting the template in a service that was not made from it (README, "Adopting an existing service")."""

import re
import shlex
import subprocess
import textwrap

import pytest
import yaml

from harness.answers import DOMAIN, PYTHON_VERSION, ROOT
from harness.service import Service, service_venv
from harness.template_repo import CONFLICT_MARKER, COPIER, TemplateRepo, copier, git, template_only_change

pytestmark = pytest.mark.service

# The existing service's own package name (not the template's default).
PACKAGE = "obc_management"
# What the README's adoption command says to put in its placeholders.
PLACEHOLDERS = {
    "<name>": "OBC Management System",
    "<old-compose-project>": "obcms",
    "<package>": PACKAGE,
    "<domain>": DOMAIN,
}

# A service shaped like the template's output, with the usual production gaps.
EXISTING_SERVICE = {
    "README.md": "# OBC Management System\n\nThe inventory of the OBC offices.\n",
    "requirements.txt": "Django==5.2.19\ngunicorn==27.0.1\n",
    ".env.example": "SECRET_KEY=\n",
    "Dockerfile": """\
        FROM python:3.13-slim
        WORKDIR /app
        COPY . .
        RUN pip install -r requirements.txt
        RUN python src/manage.py collectstatic --noinput --settings=obc_management.settings.prod
        CMD gunicorn --chdir src obc_management.wsgi
        """,
    "docker-compose.prod.yml": """\
        services:
          web:
            build: .
            command: sh -c "python src/manage.py migrate && gunicorn --chdir src obc_management.wsgi"
            ports: ["8000:8000"]
        """,
    "src/manage.py": """\
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obc_management.settings.base")
            from django.core.management import execute_from_command_line

            execute_from_command_line(sys.argv)
        """,
    "src/obc_management/__init__.py": "",
    "src/obc_management/settings/__init__.py": "",
    "src/obc_management/settings/base.py": """\
        SECRET_KEY = "not-so-secret"
        DEBUG = True
        INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "inventory"]
        ROOT_URLCONF = "obc_management.urls"
        DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
        """,
    "src/obc_management/settings/prod.py": """\
        from .base import *  # noqa: F403

        DEBUG = False
        """,
    "scripts/entrypoint.sh": """\
        #!/bin/sh
        python src/manage.py migrate && exec gunicorn --chdir src obc_management.wsgi
        """,
    "src/obc_management/urls.py": """\
        from django.contrib import admin
        from django.urls import include, path

        from common.views.health import health

        urlpatterns = [
            path("admin/", admin.site.urls),
            path("health/", health),
            path("inventory/", include("inventory.urls")),
        ]
        """,
    "src/common/__init__.py": "",
    "src/common/views/__init__.py": "",
    "src/common/views/health.py": """\
        from django.http import JsonResponse


        def health(request):
            return JsonResponse({"status": "ok"})
        """,
    "src/obc_management/wsgi.py": """\
        import os

        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obc_management.settings.base")
        application = get_wsgi_application()
        """,
    "src/inventory/__init__.py": "",
    "src/inventory/models.py": """\
        from django.db import models


        class Item(models.Model):
            name = models.CharField(max_length=100)
            quantity = models.PositiveIntegerField(default=0)
        """,
    "src/inventory/migrations/__init__.py": "",
    "src/inventory/migrations/0001_initial.py": """\
        from django.db import migrations, models


        class Migration(migrations.Migration):
            initial = True
            dependencies = []

            operations = [
                migrations.CreateModel(
                    name="Item",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("name", models.CharField(max_length=100)),
                        ("quantity", models.PositiveIntegerField(default=0)),
                    ],
                ),
            ]
        """,
    "src/inventory/views.py": """\
        from django.http import HttpResponse

        from .models import Item


        def stock(request):
            return HttpResponse(f"{Item.objects.count()} items in stock")
        """,
    "src/inventory/urls.py": """\
        from django.urls import path

        from . import views

        urlpatterns = [path("", views.stock)]
        """,
}
THEIR_OWN = [name for name in EXISTING_SERVICE if name.startswith(("src/inventory/", "src/obc_management/urls.py"))]
# Left over from before the template: an old settings module and an old
# start script in the template's folders, and a health view that the probe
# middleware shadows (it answers /health/ before URL routing).
LEFTOVER_FILES = ["scripts/entrypoint.sh", f"src/{PACKAGE}/settings/prod.py"]
SHADOWED_ROUTE = "/health/ -> common.views.health.health"


def adoption_command(template):
    """The README's non-interactive adoption command, its placeholders filled in."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Adopting an existing service", 1)[1].split("\n## ", 1)[0]
    [line] = [line.strip() for line in re.findall(r"```sh\n(.+?)\n\s*```", section, re.S) if "copier copy" in line]
    for placeholder, value in PLACEHOLDERS.items():
        assert placeholder in line, f"{placeholder} is not in the README's adoption command"
        line = line.replace(placeholder, value)
    command = shlex.split(line)
    assert command[:2] == ["copier", "copy"] and command[-1] == "."
    assert command[-2].startswith("https://"), command
    # Nothing left to ask: every answer without a default is given, or --defaults takes it.
    assert "--defaults" in command and "--overwrite" in command
    return [COPIER, *command[1:-2], str(template.path), "."]


def adoption_check(service):
    """What `make adoption-check` runs (scripts/adoption_check.py); the CompletedProcess."""
    dry_run = subprocess.run(["make", "-n", "adoption-check"], cwd=service.path, capture_output=True, text=True)
    assert "scripts/adoption_check.py" in dry_run.stdout, dry_run.stdout + dry_run.stderr
    return service.run(service.bin / "python", "scripts/adoption_check.py", check=False)


def build_existing_service(path):
    for relative, text in EXISTING_SERVICE.items():
        target = path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
    git("init", "--quiet", "--initial-branch=main", cwd=path)
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "-m", "Our service", cwd=path)


def test_adopting_fixes_the_gaps_keeps_the_service_and_updates_later(tmp_path):
    template = TemplateRepo(tmp_path / "template")
    path = tmp_path / "obcms"
    path.mkdir()
    build_existing_service(path)

    # 1. Render the template over the repository, with the service's own
    #    names: the README's command, as written, with no terminal to ask on.
    command = adoption_command(template)
    result = subprocess.run(command, cwd=path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    answers = yaml.safe_load((path / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v1.0.0"
    assert (answers["project_slug"], answers["package_name"]) == ("obcms", PACKAGE)

    # 2. Review with git: the service's own files are untouched.
    changed = git("status", "--porcelain", cwd=path)
    for relative in THEIR_OWN:
        assert relative not in changed
        assert (path / relative).read_text() == textwrap.dedent(EXISTING_SERVICE[relative])
    assert (path / "README.md").read_text() == EXISTING_SERVICE["README.md"]  # project-owned: kept

    # 3. Keep what is the service's own: its app goes to settings/project.py,
    #    its old settings and requirements are replaced by the template's.
    project_settings = path / f"src/{PACKAGE}/settings/project.py"
    project_settings.write_text(
        project_settings.read_text().replace("PROJECT_APPS = []", 'PROJECT_APPS = ["inventory"]')
    )
    git("rm", "--quiet", "requirements.txt", cwd=path)
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "-m", "Adopt the template", cwd=path)

    # `make adoption-check` names what is left over from before, and only that.
    service = Service(path, service_venv(path, PYTHON_VERSION), PACKAGE)
    check = adoption_check(service)
    assert check.returncode == 1, check.stdout + check.stderr
    listed = [line.strip() for line in check.stdout.splitlines() if line.startswith("  ")]
    assert listed == [*LEFTOVER_FILES, SHADOWED_ROUTE], check.stdout
    # Removed (the route and its view with it), nothing is left over.
    git("rm", "--quiet", "-r", *LEFTOVER_FILES, "src/common", cwd=path)
    urls = path / f"src/{PACKAGE}/urls.py"
    urls.write_text(
        urls.read_text()
        .replace("from common.views.health import health\n\n", "")
        .replace('    path("health/", health),\n', "")
    )
    check = adoption_check(service)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "Nothing left over" in check.stdout
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "-m", "Remove what the template replaced", cwd=path)
    own = {relative: (path / relative).read_text() for relative in THEIR_OWN}

    # Every gap is closed.
    dockerfile = (path / "Dockerfile").read_text()
    assert f"ENV DJANGO_SETTINGS_MODULE={PACKAGE}.settings.production" in dockerfile
    assert (path / f"src/{PACKAGE}/settings/production.py").is_file()
    assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py"]' in dockerfile
    compose = yaml.safe_load((path / "docker-compose.prod.yml").read_text())["services"]
    assert compose["migrate"]["command"] == ["python", "src/manage.py", "migrate_locked", "--noinput"]
    assert all("healthcheck" in compose[name] for name in ("db", "redis", "web", "worker", "beat", "proxy"))
    env_example = (path / ".env.example").read_text()
    for variable in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "GUNICORN_WORKERS"):
        assert f"{variable}=" in env_example

    # The service works: its app, models, migrations and URLs, with the Celery app.
    service.python(f"from {PACKAGE} import celery_app; print(celery_app)")
    assert "No changes detected" in service.manage("makemigrations", "--check", "--dry-run").stdout
    service.manage("migrate", "--noinput")
    stock = service.python(
        "import django; django.setup(); from django.test import Client;"
        "response = Client().get('/inventory/', HTTP_HOST='localhost');"
        "print(response.status_code, response.content.decode())",
        env=service.env(DJANGO_SETTINGS_MODULE=f"{PACKAGE}.settings.development"),
    )
    assert stock.stdout.strip() == "200 0 items in stock"
    assert " passed" in service.run(service.bin / "pytest", "-q", "-p", "no:cacheprovider").stdout
    git("clean", "--quiet", "-fdX", cwd=path)  # db.sqlite3, caches

    # 4. A later template release updates it cleanly.
    template_only_change(template)
    result = copier("update", "--trust", "--defaults", "--conflict", "inline", "--vcs-ref", "v1.1.0", cwd=path)
    assert result.returncode == 0, result.stderr
    assert not CONFLICT_MARKER.search((path / "gunicorn.conf.py").read_text())
    assert 'env.int("GUNICORN_KEEPALIVE", default=10' in (path / "gunicorn.conf.py").read_text()
    for relative, text in own.items():
        assert (path / relative).read_text() == text
    assert 'PROJECT_APPS = ["inventory"]' in project_settings.read_text()
