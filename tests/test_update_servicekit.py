"""A real `copier update` from the template as it was before its package was
renamed (src/common) to the template as it is now (src/servicekit).

Left alone, copier 9 deletes every file that the new version stops
rendering, even one the service changed, and leaves the service's own files
in src/common/ behind without their package. The _migrations entry in
copier.yml must prevent both.
"""

import subprocess

import pytest

from harness.answers import PACKAGE, PYTHON_VERSION, ROOT
from harness.service import Service, service_venv
from harness.template_repo import CONFLICT_MARKER, ServiceRepo, copy_template, git

OLD_TESTS = ["tests/test_health.py", "tests/test_production_settings.py", "tests/test_resources.py"]


def last_commit_with_common():
    """The newest commit of this repository whose template still had src/common/."""
    removed = git("rev-list", "-1", "HEAD", "--", "template/src/common/health.py", cwd=ROOT).strip()
    return git("rev-parse", f"{removed}^", cwd=ROOT).strip()


@pytest.fixture
def template(tmp_path):
    """The template before the rename tagged v0.1.0, and as it is now tagged v0.2.0."""
    repo = tmp_path / "template"
    # Without the repository's own release tags: this clone makes its own.
    git("clone", "--quiet", "--no-checkout", "--no-tags", str(ROOT), str(repo), cwd=tmp_path)
    git("checkout", "--quiet", "-B", "main", last_commit_with_common(), cwd=repo)
    assert (repo / "template/src/common/health.py").is_file()
    git("tag", "v0.1.0", cwd=repo)
    copy_template(repo)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "-m", "Now", cwd=repo)
    git("tag", "v0.2.0", cwd=repo)
    return repo


def service_with_own_app(template, path):
    service = ServiceRepo(template, path, version="v0.1.0")
    service.write("src/inventory/__init__.py", "")
    service.write(
        "src/inventory/views.py",
        "from common import health\nfrom common.tasks import add\n\n"
        'TASK = "common.tasks.add"\nOTHER = "uncommon.tasks"\n',
    )
    project = f"src/{PACKAGE}/settings/project.py"
    service.write(
        project,
        service.read(project).replace(
            "PERIODIC_TASKS = {}",
            'PERIODIC_TASKS = {"add": {"task": "common.tasks.add", "schedule": 60.0, "args": (1, 2)}}',
        ),
    )
    service.commit("Our inventory app")
    return service


def test_update_moves_the_service_to_servicekit(template, tmp_path):
    service = service_with_own_app(template, tmp_path / "service")
    assert (service.path / "src/common/health.py").is_file()

    result = service.update("v0.2.0")

    assert result.returncode == 0, result.stderr
    assert not (service.path / "src/common").exists()
    assert (service.path / "src/servicekit/health.py").is_file()
    for old in OLD_TESTS:
        assert not (service.path / old).exists(), old
    assert (service.path / "tests/template/test_health.py").is_file()
    # The service's own code follows the rename; other names are left alone.
    assert service.read("src/inventory/views.py") == (
        "from servicekit import health\nfrom servicekit.tasks import add\n\n"
        'TASK = "servicekit.tasks.add"\nOTHER = "uncommon.tasks"\n'
    )
    assert '"task": "servicekit.tasks.add"' in service.read(f"src/{PACKAGE}/settings/project.py")
    assert "src/inventory/views.py: imports of common now import servicekit" in result.stdout + result.stderr
    assert not [
        path
        for path in service.path.rglob("*")
        if path.is_file() and ".git" not in path.parts and CONFLICT_MARKER.search(path.read_text(errors="ignore"))
    ]
    assert not list(service.path.rglob("*.rej"))
    for path in (service.path / "src").rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_update_stops_on_the_services_own_files_in_common(template, tmp_path):
    service = service_with_own_app(template, tmp_path / "service")
    service.write("src/common/money.py", "def cents(amount):\n    return round(amount * 100)\n")
    service.write("src/common/health.py", service.read("src/common/health.py") + "\n# Our tweak.\n")
    service.commit("Our helpers in common")
    before = git("rev-parse", "HEAD", cwd=service.path)

    result = service.update("v0.2.0")

    assert result.returncode != 0
    assert "src/common/money.py  (not the template's)" in result.stderr
    assert "src/common/health.py  (changed since the template rendered it)" in result.stderr
    assert "Nothing was changed." in result.stderr
    # Nothing was changed: the working tree is the commit, the answers still name the old version.
    assert service.changed_files() == []
    assert git("rev-parse", "HEAD", cwd=service.path) == before
    assert "_commit: v0.1.0" in service.read(".copier-answers.yml")
    assert service.read("src/common/health.py").endswith("# Our tweak.\n")

    # Once the owners moved their helper into their app and undid their tweak, the update goes through.
    git("mv", "src/common/money.py", "src/inventory/money.py", cwd=service.path)
    git("checkout", "HEAD~1", "--", "src/common/health.py", cwd=service.path)
    service.commit("Our helpers in our app")
    result = service.update("v0.2.0")
    assert result.returncode == 0, result.stderr
    assert not (service.path / "src/common").exists()
    assert (service.path / "src/inventory/money.py").is_file()


@pytest.mark.service
def test_the_updated_service_passes_its_checks_and_suite(template, tmp_path):
    service = service_with_own_app(template, tmp_path / "service")
    service.write(
        f"src/{PACKAGE}/settings/project.py",
        service.read(f"src/{PACKAGE}/settings/project.py").replace("PROJECT_APPS = []", 'PROJECT_APPS = ["inventory"]'),
    )
    service.commit("Install the inventory app")
    assert service.update("v0.2.0").returncode == 0

    runner = Service(service.path, service_venv(service.path, PYTHON_VERSION), PACKAGE)
    check = runner.manage("check")
    assert "System check identified no issues" in check.stdout
    suite = runner.run(runner.bin / "pytest", "-q", "-p", "no:cacheprovider")
    assert " passed" in suite.stdout and "failed" not in suite.stdout
    assert (
        "tests/template/test_health.py"
        in runner.run(runner.bin / "pytest", "--collect-only", "-q", "-p", "no:cacheprovider").stdout
    )
    development = runner.env(DJANGO_SETTINGS_MODULE=f"{PACKAGE}.settings.development")
    views = runner.python(
        "import django; django.setup(); import inventory.views as v; print(v.add.name)", env=development
    )
    assert views.stdout.strip() == "servicekit.tasks.add"
    assert subprocess.run(["git", "diff", "--check"], cwd=service.path, capture_output=True).returncode == 0
