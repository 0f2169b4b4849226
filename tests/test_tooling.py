"""The rendered service's tooling without its virtualenv: ruff on the
rendered Python for any package name, and the Python that `make` builds
.venv with (tests/test_tooling_service.py runs the tools themselves)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.answers import answers_for, python_version_of
from harness.policy import require
from harness.service import find_python

BIN = Path(sys.executable).parent

# Around the names the rendered imports are sorted against: the template's
# package (servicekit), the service's tests package, the name the template
# once used for its own package (common), and Django.
PACKAGE_NAMES = ["acme_orders", "billing", "commerce", "dashboard", "orders", "shop", "testbed", "zebra_works"]


def run(*command, cwd, env=None, timeout=900):
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def ruff(*arguments, cwd):
    return run(BIN / "ruff", *arguments, "--no-cache", cwd=cwd)


# --------------------------------------------------------------------------
# Imports in the order the service's own ruff configuration wants
# --------------------------------------------------------------------------


@pytest.mark.parametrize("use_celery_beat", [True, False])
@pytest.mark.parametrize("package_name", PACKAGE_NAMES)
def test_the_rendered_python_is_lint_clean_whatever_the_package_sorts_after(render, package_name, use_celery_beat):
    service = render(f"package-{package_name}", package_name=package_name, use_celery_beat=use_celery_beat)

    check = ruff("check", ".", cwd=service)
    assert check.returncode == 0, check.stdout + check.stderr
    formatted = ruff("format", "--check", "--diff", ".", cwd=service)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


# --------------------------------------------------------------------------
# The development Python
# --------------------------------------------------------------------------


def other_python(version):
    """An interpreter of a version other than the service's."""
    for candidate in ("3.11", "3.12", "3.13"):
        if candidate != version and (python := find_python(candidate)):
            return candidate, python
    require(False, f"no Python other than {version} is installed")
    raise AssertionError("unreachable")


@pytest.fixture
def fresh_service(render, tmp_path):
    require(shutil.which("make"), "make is not installed")
    service = tmp_path / "service"
    shutil.copytree(render("defaults"), service)
    return service


def test_a_python_of_another_version_is_refused_before_anything_is_built(fresh_service):
    wanted = python_version_of(answers_for("defaults"))
    found, python = other_python(wanted)

    result = run("make", "install", f"PYTHON={python}", cwd=fresh_service)

    assert result.returncode != 0
    assert f"PYTHON={python} is Python {found}, but this service needs Python {wanted}." in result.stderr
    assert f"PYTHON=/path/to/python{wanted}" in result.stderr
    assert not (fresh_service / ".venv").exists()


def test_a_missing_python_is_named_with_how_to_point_at_one(fresh_service, tmp_path):
    wanted = python_version_of(answers_for("defaults"))
    missing = tmp_path / "nowhere" / f"python{wanted}"

    result = run("make", "run", f"PYTHON={missing}", cwd=fresh_service)

    assert result.returncode != 0
    assert f"{missing} not found: this service needs Python {wanted}" in result.stderr
    assert f"PYTHON=/path/to/python{wanted}" in result.stderr
    assert not (fresh_service / ".venv").exists()


def test_a_venv_made_with_another_python_is_refused_and_left_alone(fresh_service):
    wanted = python_version_of(answers_for("defaults"))
    found, python = other_python(wanted)
    # As a `python3 -m venv .venv` or an editor would have made it.
    subprocess.run([python, "-m", "venv", "--without-pip", ".venv"], cwd=fresh_service, check=True)
    before = sorted(path.name for path in (fresh_service / ".venv/bin").iterdir())

    # Even with the right PYTHON: .venv is what the commands run.
    result = run("make", "test", f"PYTHON={find_python(wanted) or 'python' + wanted}", cwd=fresh_service)

    assert result.returncode != 0
    assert f".venv was made with Python {found}, but this service needs Python {wanted}." in result.stderr
    assert "rm -rf .venv" in result.stderr
    assert sorted(path.name for path in (fresh_service / ".venv/bin").iterdir()) == before


def test_the_services_python_passes_the_check(fresh_service):
    wanted = python_version_of(answers_for("defaults"))
    python = find_python(wanted)
    require(python, f"Python {wanted} is not installed (on PATH or with pyenv)")

    result = run("make", "python-version", f"PYTHON={python}", cwd=fresh_service)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_commit_hooks_run_the_ruff_that_lint_runs(render):
    service = render("defaults")
    pins = dict(line.split("==") for line in (service / "requirements/dev.in").read_text().splitlines() if "==" in line)
    repos = yaml.safe_load((service / ".pre-commit-config.yaml").read_text())["repos"]
    (ruff_hooks,) = [repo for repo in repos if repo["repo"] == "https://github.com/astral-sh/ruff-pre-commit"]

    assert ruff_hooks["rev"] == f"v{pins['ruff']}"
    assert [hook["id"] for hook in ruff_hooks["hooks"]] == ["ruff-check", "ruff-format"]
    assert "pre-commit" in pins
