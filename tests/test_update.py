"""Real `copier update` runs between tagged versions of the template."""

import re
import shutil
import subprocess
import time

import pytest
import yaml

from harness.answers import PACKAGE, PYTHON_VERSION, REQUIRED_ANSWERS, ROOT, answers_for, package_of, python_version_of
from harness.policy import require
from harness.service import Service, make, service_venv
from harness.template_repo import (
    CONFLICT_MARKER,
    ServiceRepo,
    TemplateRepo,
    copier,
    copy_template,
    git,
    template_only_change,
)


@pytest.fixture
def template(tmp_path):
    return TemplateRepo(tmp_path / "template")


# How owners change a service: each only in files the service owns.
OWNER_CHANGES = {
    f"src/{PACKAGE}/settings/project.py": lambda text: text.replace(
        "PROJECT_APPS = []", 'PROJECT_APPS = ["inventory"]'
    ).replace(
        "PERIODIC_TASKS = {}",
        'PERIODIC_TASKS = {\n    "restock": {"task": "inventory.tasks.restock", "schedule": 3600.0},\n}',
    ),
    f"src/{PACKAGE}/urls.py": lambda text: text.replace(
        "urlpatterns = [\n", 'urlpatterns = [\n    path("inventory/", include("inventory.urls")),\n'
    ).replace("from django.urls import path", "from django.urls import include, path"),
    "requirements/project.in": lambda text: text + "django-filter==25.2\n",
    "src/inventory/__init__.py": lambda text: "",
    "src/inventory/models.py": lambda text: (
        "from django.db import models\n\n\nclass Item(models.Model):\n    name = models.CharField(max_length=100)\n"
    ),
    "src/inventory/urls.py": lambda text: "urlpatterns = []\n",
    "README.md": lambda text: text + "\n## Inventory\n\nOur own notes.\n",
}


def make_owner_changes(service):
    for relative, change in OWNER_CHANGES.items():
        path = service.path / relative
        service.write(relative, change(path.read_text() if path.exists() else ""))
    service.commit("Our inventory app")
    # .env is the owner's and never committed.
    service.write(".env", service.read(".env.example").replace("SECRET_KEY=\n", "SECRET_KEY=ours\n"))
    return {relative: service.read(relative) for relative in [*OWNER_CHANGES, ".env"]}


def test_an_invalid_answer_to_an_update_changes_nothing(template, tmp_path):
    service = ServiceRepo(template.path, tmp_path / "service")
    template_only_change(template)

    result = copier(
        "update", "--trust", "--defaults", "--data", "web_threads=0", "--vcs-ref", "v1.1.0", cwd=service.path
    )

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "web_threads" in line] == [
        "Validation error for question 'web_threads': web_threads must be a whole number from 1 to 32, got '0'."
    ]
    assert service.changed_files() == []


def test_template_change_updates_a_customised_service_without_conflicts(template, tmp_path, figure):
    service = ServiceRepo(template.path, tmp_path / "service")
    owned = make_owner_changes(service)
    template_only_change(template)

    started = time.perf_counter()
    result = service.update("v1.1.0")
    elapsed = time.perf_counter() - started
    figure("copier update across one version, no conflicts", f"{elapsed:.2f} s")

    assert result.returncode == 0, result.stderr
    for relative, text in owned.items():
        assert service.read(relative) == text, f"{relative} was changed by the update"
    assert service.changed_files() == sorted(
        [".copier-answers.yml", "Makefile", "gunicorn.conf.py", f"src/{PACKAGE}/settings/base.py"]
    )
    assert 'env.int("GUNICORN_KEEPALIVE", default=10' in service.read("gunicorn.conf.py")
    assert "lint: install  # ruff" in service.read("Makefile")
    assert not [
        path
        for path in service.path.rglob("*")
        if CONFLICT_MARKER.search(path.read_text(errors="ignore") if path.is_file() else "")
    ]
    assert not list(service.path.rglob("*.rej"))
    assert yaml.safe_load(service.read(".copier-answers.yml"))["_commit"] == "v1.1.0"


def test_both_sides_changing_the_same_lines_is_a_visible_conflict(template, tmp_path):
    service = ServiceRepo(template.path, tmp_path / "service")
    service.write(
        "gunicorn.conf.py",
        service.read("gunicorn.conf.py").replace('"GUNICORN_TIMEOUT", default=30', '"GUNICORN_TIMEOUT", default=60'),
    )
    service.commit("Longer timeout for our slow reports")
    template.edit("template/gunicorn.conf.py.jinja", '"GUNICORN_TIMEOUT", default=30', '"GUNICORN_TIMEOUT", default=45')
    template.release("1.1.0", "Timeout 45 s")

    result = service.update("v1.1.0")

    text = service.read("gunicorn.conf.py")
    assert CONFLICT_MARKER.search(text)
    assert '"GUNICORN_TIMEOUT", default=60' in text and '"GUNICORN_TIMEOUT", default=45' in text
    # copier 9 exits 0 after an update with conflicts: git is what shows them.
    # The file is unmerged in the index (as after a conflicting git merge), and
    # `git diff --check` fails on the markers.
    assert result.returncode == 0, result.stderr
    assert "UU gunicorn.conf.py" in git("status", "--porcelain", cwd=service.path).splitlines()
    check = subprocess.run(["git", "diff", "--check"], cwd=service.path, capture_output=True, text=True)
    assert check.returncode != 0 and "leftover conflict marker" in check.stdout


def test_renamed_question_keeps_the_old_answer_without_prompting(template, tmp_path):
    service = ServiceRepo(template.path, tmp_path / "service", web_threads=4)
    for relative in [
        "copier.yml",
        "template/gunicorn.conf.py.jinja",
        "template/.env.example.jinja",
        "template/deploy/kubernetes/base/app.env.jinja",
    ]:
        path = template.path / relative
        path.write_text(path.read_text().replace("web_threads", "gunicorn_threads"))
    with (template.path / "copier.yml").open("a") as copier_yml:
        copier_yml.write(
            "\n_migrations:\n"
            '  - version: "1.1.0"\n'
            "    when: \"{{ _stage == 'before' }}\"\n"
            "    command:\n"
            '      - "{{ _copier_python }}"\n'
            '      - "{{ _copier_conf.src_path }}/extensions/migrations.py"\n'
            "      - rename-answer\n"
            "      - web_threads\n"
            "      - gunicorn_threads\n"
        )
    template.release("1.1.0", "web_threads is now gunicorn_threads")

    result = service.update("v1.1.0")

    assert result.returncode == 0, result.stderr
    answers = yaml.safe_load(service.read(".copier-answers.yml"))
    assert "web_threads" not in answers
    # Counts are recorded as text (the question is a string, so that a wrong
    # answer gets a message of the template's).
    assert answers["gunicorn_threads"] == "4"
    assert 'env.int("GUNICORN_THREADS", default=4, minimum=1)' in service.read("gunicorn.conf.py")
    assert service.changed_files() == [".copier-answers.yml"]


def test_a_file_the_owner_deleted_stays_deleted(template, tmp_path):
    service = ServiceRepo(template.path, tmp_path / "service")
    (service.path / ".pre-commit-config.yaml").unlink()
    (service.path / "docker-compose.yml").unlink()
    service.commit("We use neither pre-commit nor the development stack")
    template_only_change(template)

    result = service.update("v1.1.0")

    assert result.returncode == 0, result.stderr
    assert not (service.path / ".pre-commit-config.yaml").exists()
    assert not (service.path / "docker-compose.yml").exists()
    assert "lint: install  # ruff" in service.read("Makefile")


def previous_release():
    """(version, commit) of the newest "Release vX.Y.Z" commit in this repository's history."""
    log = subprocess.run(["git", "log", "--format=%H %s", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    for line in log.splitlines():
        commit, subject = line.split(" ", 1)
        match = re.fullmatch(r"Release v(\d+\.\d+\.\d+)", subject)
        if match:
            return match.group(1), commit
    return None


@pytest.mark.service
@pytest.mark.parametrize("variant", ["defaults", "s3-no-proxy-no-beat-sentry"])
def test_update_from_the_previous_release_to_now(tmp_path, variant):
    release = previous_release()
    require(release, "no 'Release vX.Y.Z' commit in this repository's history")
    version, commit = release
    # A clone with the release tagged, and the work tree as it is now tagged after it.
    repo = tmp_path / "template"
    # Without the repository's own release tags: this clone makes its own.
    git("clone", "--quiet", "--no-checkout", "--no-tags", str(ROOT), str(repo), cwd=tmp_path)
    git("checkout", "--quiet", commit, cwd=repo)
    git("tag", "--force", f"v{version}", cwd=repo)
    copy_template(repo)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "--allow-empty", "-m", "Now", cwd=repo)
    major, minor, patch = map(int, version.split("."))
    git("tag", f"v{major}.{minor}.{patch + 1}", cwd=repo)

    answers = answers_for(variant)
    service = ServiceRepo(
        repo,
        tmp_path / "service",
        version=f"v{version}",
        **{k: v for k, v in answers.items() if k not in REQUIRED_ANSWERS},
    )
    # The owner's own test and notes, in files the service owns.
    service.write("tests/test_ours.py", "def test_ours():\n    assert 1 + 1 == 2\n")
    service.write("README.md", service.read("README.md") + "\n## Our notes\n")
    service.commit("Our test and notes")
    result = service.update(f"v{major}.{minor}.{patch + 1}")

    assert result.returncode == 0, result.stderr
    # The release's locks replaced the old lists of pins (a migration), and
    # they are what `make lock` writes: it changes nothing.
    locks = {name: service.read(f"requirements/{name}") for name in ("build.txt", "production.txt", "dev.txt")}
    make_lock(service, python_version_of(answers))
    assert {name: service.read(f"requirements/{name}") for name in locks} == locks
    assert "## Our notes" in service.read("README.md")
    assert conflicted(service) == []
    assert yaml.safe_load(service.read(".copier-answers.yml"))["_commit"] == f"v{major}.{minor}.{patch + 1}"
    runner = Service(service.path, service_venv(service.path, python_version_of(answers)), package_of(answers))
    suite = runner.run(runner.bin / "pytest", "-q", "-p", "no:cacheprovider", "-rA")
    summary = suite.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed", summary) and "failed" not in summary, summary
    assert "PASSED tests/test_ours.py::test_ours" in suite.stdout


def test_rendering_is_deterministic(template, tmp_path):
    """Nothing random or time-dependent is rendered: two renders are identical,
    so an update's diff holds only real changes."""
    first = ServiceRepo(template.path, tmp_path / "first").path
    time.sleep(1.1)
    second = ServiceRepo(template.path, tmp_path / "second").path
    files = sorted(path.relative_to(first) for path in first.rglob("*") if path.is_file() and ".git" not in path.parts)
    assert files == sorted(
        path.relative_to(second) for path in second.rglob("*") if path.is_file() and ".git" not in path.parts
    )
    assert [name for name in files if (first / name).read_bytes() != (second / name).read_bytes()] == []


def conflicted(service):
    """The service's files (tracked, or new and not ignored: not .venv) with conflict markers."""
    listed = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=service.path)
    paths = [service.path / name for name in listed.split("\0") if name]
    return [path for path in paths if path.is_file() and CONFLICT_MARKER.search(path.read_text(errors="ignore"))]


def make_lock(service, python_version):
    """`make lock`, as the template-update workflow runs it after copier update."""
    for target in ("lock", "lock-check"):
        result = make(service.path, target, python_version=python_version)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.service
def test_a_django_bump_reaches_a_service_with_its_own_dependency(template, tmp_path):
    """The template's pin and the service's addition both end up in the lock,
    which `make lock` writes: the update itself merges no lock."""
    base_in = "template/requirements/base.in.jinja"
    template.edit(base_in, "Django==5.2.19\n", "Django==5.2.18\n")
    template.release("1.0.1", "Django 5.2.18")
    service = ServiceRepo(template.path, tmp_path / "service", version="v1.0.1")
    make_owner_changes(service)
    make_lock(service, PYTHON_VERSION)
    assert "\ndjango==5.2.18 \\\n" in service.read("requirements/production.txt")
    service.commit("Our dependency, locked")
    template.edit(base_in, "Django==5.2.18\n", "Django==5.2.19\n")
    template.release("1.1.0", "Django 5.2.19")

    result = service.update("v1.1.0")

    assert result.returncode == 0, result.stderr
    assert service.changed_files() == [".copier-answers.yml", "requirements/base.in"]
    make_lock(service, PYTHON_VERSION)
    for lock in ("production.txt", "dev.txt"):
        text = service.read(f"requirements/{lock}")
        assert "\ndjango==5.2.19 \\\n" in text and "\ndjango-filter==25.2 \\\n" in text
    assert conflicted(service) == []
    runner = Service(service.path, service_venv(service.path, PYTHON_VERSION), PACKAGE)
    suite = runner.run(runner.bin / "python", "-c", "import django, django_filters; print(django.__version__)")
    assert suite.stdout.strip() == "5.2.19"
    tests = runner.run(runner.bin / "pytest", "-q", "-p", "no:cacheprovider")
    assert " passed" in tests.stdout and "failed" not in tests.stdout


def test_a_service_copied_from_an_untagged_checkout_updates_to_the_next_release(tmp_path):
    """A checkout without tags renders its commit as version 0.0.0.postN; the
    next release, made with scripts/release.py, is tagged, and the service
    updates to it cleanly (copier runs every migration up to that version)."""
    template = TemplateRepo(tmp_path / "template", version=None)
    for relative in ("CHANGELOG.md", "scripts/release.py"):
        (template.path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, template.path / relative)
    template.commit("The release procedure")
    service = ServiceRepo(template.path, tmp_path / "service", version=None)
    assert "No git tags found in template; using HEAD as ref" in service.copy_output
    copied_from = yaml.safe_load(service.read(".copier-answers.yml"))["_commit"]
    assert copied_from == git("rev-parse", "--short", "HEAD", cwd=template.path).strip()
    owned = make_owner_changes(service)

    # The next release: a template-owned change, its changelog entry, the script.
    template.edit(
        "template/gunicorn.conf.py.jinja",
        'keepalive = env.int("GUNICORN_KEEPALIVE", default=5',
        'keepalive = env.int("GUNICORN_KEEPALIVE", default=10',
    )
    changelog = (template.path / "CHANGELOG.md").read_text()
    note = "- gunicorn keeps idle connections open for 10 seconds.\n"
    if "\n## Unreleased\n" in changelog:
        changelog = changelog.replace("\n## Unreleased\n", f"\n## Unreleased\n\n{note}", 1)
    else:
        changelog = changelog.replace("\n## ", f"\n## Unreleased\n\n{note}\n## ", 1)
    (template.path / "CHANGELOG.md").write_text(changelog)
    template.commit("Longer keep-alive")
    last = max(tuple(map(int, found)) for found in re.findall(r"^## (\d+)\.(\d+)\.(\d+) \(", changelog, re.M))
    version = f"{last[0]}.{last[1] + 1}.0"
    result = subprocess.run(
        ["python3", "scripts/release.py", version], cwd=template.path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert git("describe", "--exact-match", "HEAD", cwd=template.path).strip() == f"v{version}"

    # The README's update command: copier takes the newest tag by itself.
    result = copier("update", "--trust", "--defaults", "--conflict", "inline", cwd=service.path)

    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(service.read(".copier-answers.yml"))["_commit"] == f"v{version}"
    for relative, text in owned.items():
        assert service.read(relative) == text, f"{relative} was changed by the update"
    assert service.changed_files() == [".copier-answers.yml", "gunicorn.conf.py"]
    assert 'env.int("GUNICORN_KEEPALIVE", default=10' in service.read("gunicorn.conf.py")
    assert conflicted(service) == []
    assert not list(service.path.rglob("*.rej"))
