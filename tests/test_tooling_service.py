"""The rendered service's development tooling run for real in its
virtualenv: mypy on every variant, `make app`, `make format` on Django's
generated code, `make lint` failing on a type error, `make deploy-check`,
and an app made with `make app` in the production image."""

import os
import shutil
import subprocess

import pytest

from harness.answers import VARIANTS, answers_for, package_of, python_version_of
from harness.docker import docker
from harness.policy import require
from harness.service import SECRET_KEY, find_python, make, service_venv
from harness.stack import base_image_for, build

# One virtualenv and one service for the module's tests (the image test
# excepted: it runs with the other image builds, one at a time).
pytestmark = [pytest.mark.service, pytest.mark.xdist_group("tooling")]


def run(*command, cwd, env=None, timeout=900):
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_mypy_passes_on_every_variant(render, variant, tmp_path):
    service = tmp_path / "service"
    shutil.copytree(render(variant), service)
    bin_dir = service_venv(service, python_version_of(answers_for(variant)))

    result = run(bin_dir / "mypy", cwd=service)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found")


APP = "inventory"
MODEL = """\
from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=200, unique=True)
    quantity = models.PositiveIntegerField(default=0)
    group = models.ForeignKey("auth.Group", on_delete=models.PROTECT, null=True, blank=True, related_name="items")

    def __str__(self):
        return self.name
"""
APP_TEST = f"""\
import pytest

from {APP}.models import Item


@pytest.mark.django_db
def test_an_item_is_saved():
    Item.objects.create(name="bolt", quantity=3)

    assert Item.objects.get().quantity == 3
"""


@pytest.fixture(scope="module")
def tooled(render, tmp_path_factory):
    """The explicit-workers variant (its package sorts before servicekit), its
    .venv made by `make install`, with an app added by `make app`."""
    require(shutil.which("make"), "make is not installed")
    answers = answers_for("explicit-workers")
    service = tmp_path_factory.mktemp("tooling") / "service"
    shutil.copytree(render("explicit-workers"), service)
    version = python_version_of(answers)
    installed = make(service, "install", python_version=version)
    assert installed.returncode == 0, installed.stderr
    added = make(service, "app", f"name={APP}", python_version=version)
    assert added.returncode == 0, added.stderr
    return service, answers


def test_make_app_creates_it_in_src_and_registers_it(tooled):
    service, answers = tooled
    settings = service / f"src/{package_of(answers)}/settings/project.py"

    assert (service / f"src/{APP}/apps.py").is_file()
    assert (service / f"src/{APP}/migrations/__init__.py").is_file()
    assert not (service / APP).exists()
    # pytest collects tests/ only: the app's tests go there.
    assert not (service / f"src/{APP}/tests.py").exists()
    assert (service / f"tests/{APP}/__init__.py").is_file()
    assert f'PROJECT_APPS = ["{APP}"]' in settings.read_text()
    installed = run(
        service / ".venv/bin/python", "src/manage.py", "shell", "-c",
        f"from django.apps import apps; print(apps.get_app_config('{APP}').path)",
        cwd=service,
    )  # fmt: skip
    assert installed.stdout.strip().splitlines()[-1] == str(service / "src" / APP)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "make app: name the app: make app name=inventory"),
        ("Bad-Name", "make app: 'Bad-Name' is not an app name: lower-case letters, digits and underscores"),
        ("class", "make app: 'class' is a Python keyword"),
        (APP, f"make app: src/{APP} already exists."),
        ("tests", "make app: ./tests already exists here"),
        ("json", "make app: 'json' conflicts with the name of an existing Python module"),
        ("celery", "make app: 'celery' conflicts with the name of an existing Python module"),
    ],
)
def test_make_app_refuses_a_bad_or_taken_name_and_changes_nothing(tooled, name, message):
    service, answers = tooled
    settings = service / f"src/{package_of(answers)}/settings/project.py"
    before = settings.read_text(), sorted(path.name for path in (service / "src").iterdir())

    result = make(service, "app", f"name={name}", python_version=python_version_of(answers))

    assert result.returncode != 0
    assert message in result.stderr
    assert (settings.read_text(), sorted(path.name for path in (service / "src").iterdir())) == before


def test_make_app_extends_an_existing_list_of_apps(tooled, tmp_path):
    service, answers = tooled
    copy = tmp_path / "service"
    shutil.copytree(service, copy, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".mypy_cache"))
    (copy / ".venv").symlink_to(service / ".venv")
    settings = copy / f"src/{package_of(answers)}/settings/project.py"
    # As an owner might have written it, with a comment on an entry.
    text = settings.read_text().replace(
        f'PROJECT_APPS = ["{APP}"]', f'PROJECT_APPS = [\n    "{APP}",  # stock levels\n    "django.contrib.humanize"\n]'
    )
    settings.write_text(text)

    result = run(copy / ".venv/bin/python", "scripts/add_app.py", "orders", cwd=copy)

    assert result.returncode == 0, result.stderr
    assert (
        f'PROJECT_APPS = [\n    "{APP}",  # stock levels\n    "django.contrib.humanize",\n    "orders",\n]'
        in settings.read_text()
    )
    assert (copy / "src/orders/apps.py").is_file()


def test_generated_migrations_pass_lint_after_make_format(tooled, tmp_path):
    service, answers = tooled
    version = python_version_of(answers)
    (service / f"src/{APP}/models.py").write_text(MODEL)
    (service / f"tests/{APP}/test_items.py").write_text(APP_TEST)
    migrated = run(service / ".venv/bin/python", "src/manage.py", "makemigrations", APP, cwd=service)
    assert migrated.returncode == 0, migrated.stderr
    migration = service / f"src/{APP}/migrations/0001_initial.py"

    # Django writes its own style (quotes, long lines): lint refuses it...
    before = make(service, "lint", python_version=version)
    assert before.returncode != 0
    assert f"src/{APP}/migrations/0001_initial.py" in before.stdout + before.stderr

    formatted = make(service, "format", python_version=version)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr

    # ...and takes it once formatted; the migration still describes the models.
    after = make(service, "lint", python_version=version)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "Success: no issues found" in after.stdout
    assert "'" not in migration.read_text().split("class Migration")[1]
    check = run(service / ".venv/bin/python", "src/manage.py", "makemigrations", "--check", "--dry-run", cwd=service)
    assert check.returncode == 0 and "No changes detected" in check.stdout, check.stdout + check.stderr
    tests = run(service / ".venv/bin/pytest", "-q", "-p", "no:cacheprovider", cwd=service)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "test_items.py" in run(service / ".venv/bin/pytest", "--collect-only", "-q", cwd=service).stdout


def test_a_type_error_fails_make_lint(tooled):
    service, answers = tooled
    module = service / f"src/{APP}/labels.py"
    # Unannotated, as most Django code is: checked all the same, with the
    # model's field types from the Django plugin.
    module.write_text(
        "from django.contrib.auth.models import Group\n\n\n"
        "def group_label(pk):\n"
        '    return "group " + Group.objects.get(pk=pk).id\n'
    )
    try:
        result = make(service, "lint", python_version=python_version_of(answers))
    finally:
        module.unlink()

    assert result.returncode != 0
    assert f'src/{APP}/labels.py:5: error: Unsupported operand types for + ("str" and "int")' in result.stdout


def deploy_check(service, answers, **variables):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "SECURE_", "EMAIL_"))
        and key not in ("SECRET_KEY", "DEBUG", "ALLOWED_HOSTS")
    }
    env.update(
        SECRET_KEY=SECRET_KEY,
        DATABASE_URL="postgres://app:password@db.internal:5432/app",
        REDIS_URL="redis://redis.internal:6379/0",
        EMAIL_URL="consolemail://",
    )
    env.update({key: value for key, value in variables.items() if value is not None})
    for key, value in variables.items():
        if value is None:
            env.pop(key, None)
    python = find_python(python_version_of(answers))
    return run("make", "deploy-check", f"PYTHON={python}", cwd=service, env=env)


def test_deploy_check_passes_on_a_production_environment(tooled):
    service, answers = tooled

    result = deploy_check(service, answers)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"SECURE_SSL_REDIRECT": "false"}, "security.W008"),
        ({"SECURE_HSTS_SECONDS": "0"}, "security.W004"),
        ({"SECRET_KEY": None}, "Set the SECRET_KEY environment variable"),
    ],
)
def test_deploy_check_fails_on_an_insecure_or_missing_setting(tooled, variables, named):
    service, answers = tooled

    result = deploy_check(service, answers, **variables)

    assert result.returncode != 0
    assert named in result.stderr


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_an_app_made_with_make_app_is_in_the_production_image(engine, tooled):
    service, answers = tooled
    tag = f"{answers['project_slug']}-tooling-test:latest"
    code = f"import django; django.setup(); from django.apps import apps; print(apps.get_app_config('{APP}').path)"
    build(service, tag, base_image_for(service))
    try:
        result = docker(
            "run", "--rm", f"--env=SECRET_KEY={SECRET_KEY}", "--env=DATABASE_URL=postgres://app@db/app",
            "--env=REDIS_URL=redis://redis:6379/0", "--env=EMAIL_URL=consolemail://", tag, "python", "-c", code,
            check=False,
        )  # fmt: skip
    finally:
        docker("rmi", tag, check=False)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"/app/src/{APP}"
