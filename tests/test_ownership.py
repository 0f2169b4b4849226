"""Who owns which file, and the one way the rendered code reads its environment."""

import re

import pytest
import yaml

from harness.answers import ROOT, VARIANTS, answers_for


def skip_if_exists():
    """copier.yml's project-owned files, with <package> for the package name."""
    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    return {path.replace("{{ package_name }}", "<package>") for path in config["_skip_if_exists"]}


def readme_project_owned():
    """The files in the first column of the README's table of project-owned files."""
    section = (ROOT / "README.md").read_text().split("## File ownership", 1)[1].split("\n## ", 1)[0]
    table = section.split("| File |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    return {path for row in rows for path in re.findall(r"`([^`]+)`", row.split("|")[1])}


def test_the_readme_lists_exactly_the_project_owned_files():
    assert readme_project_owned() == skip_if_exists()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_project_owned_file_is_rendered(render, variant):
    service = render(variant)
    package = answers_for(variant).get("package_name", "obc_management_system")
    missing = [path for path in skip_if_exists() if not (service / path.replace("<package>", package)).is_file()]
    assert missing == []


def test_the_templates_tests_live_apart_from_the_services(render):
    service = render("defaults")
    tests = {path.relative_to(service / "tests").as_posix() for path in (service / "tests").rglob("*.py")}
    assert {"__init__.py", "conftest.py", "template/__init__.py"} <= tests
    # Outside tests/template/, only the service's own files (conftest.py, the
    # tests of its user model).
    assert all(path.startswith("template/") or f"tests/{path}" in skip_if_exists() for path in tests - {"__init__.py"})
    assert "tests/conftest.py" in skip_if_exists()


# Reading the environment other than through servicekit.env.
DIRECT_READS = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[|in os\.environ")


@pytest.mark.parametrize("variant", ["defaults", "s3-no-proxy-no-beat-sentry"])
def test_one_module_reads_the_environment(render, variant):
    service = render(variant)
    readers = sorted(
        str(path.relative_to(service))
        for path in [*service.glob("src/**/*.py"), service / "gunicorn.conf.py"]
        if DIRECT_READS.search(path.read_text())
    )
    assert readers == []
    assert "os.environ" in (service / "src/servicekit/env.py").read_text()


def test_the_package_is_named_for_the_template(render):
    service = render("defaults")
    assert (service / "src/servicekit/__init__.py").is_file()
    assert not (service / "src/common").exists()
    base = (service / "src/obc_management_system/settings/base.py").read_text()
    assert '"servicekit"' in base
    # Only Django's own django.middleware.common remains.
    assert re.findall(r"[\w.]*\bcommon\b[\w.]*", base) == ["django.middleware.common.CommonMiddleware"]


def test_base_settings_are_in_headed_sections(render):
    base = (render("defaults") / "src/obc_management_system/settings/base.py").read_text()
    headings = re.findall(r"^# --- (.+?) -+$", base, re.M)
    assert headings == [
        "Applications",
        "Security",
        "Passwords, logins and sessions",
        "Database",
        "Internationalisation",
        "Static and media files",
        "E-mail",
        "Logging",
        "Celery",
    ]
    celery = base.split("# --- Celery", 1)[1]
    assert [line for line in base.split("# --- Celery", 1)[0].splitlines() if line.startswith("CELERY_")] == []
    assert "CELERY_WORKER_CONCURRENCY" in celery and "CELERY_TASK_TIME_LIMIT" in celery
    assert "vars()" not in base
    production = (render("defaults") / "src/obc_management_system/settings/production.py").read_text()
    assert "vars()" not in production and "EMAIL_HOST = " in production


def test_the_content_security_policy_has_django_6s_name_and_shape(render):
    service = render("defaults")
    base = (service / "src/obc_management_system/settings/base.py").read_text()
    # Annotated for the type checker: directive -> list of sources.
    assert re.search(r'^SECURE_CSP: dict\[str, list\[str\]\] = \{\n    "default-src": \[CSP\.SELF\],', base, re.M)
    assert "CONTENT_SECURITY_POLICY" not in "".join(path.read_text() for path in service.rglob("*.py"))
