"""The rendered service's hashed locks: every variant's lock is what its own
`make lock` writes, and a dependency added to requirements/project.in
reaches the locks (and leaves them again) through `make lock`.

These resolve against PyPI with uv, as the service's owners do.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.answers import VARIANTS, answers_for, python_version_of
from harness.service import make

pytestmark = pytest.mark.service

LOCKS = ("build.txt", "production.txt", "dev.txt")
# A small package no variant has, pinned as an owner would.
ADDED = "django-filter==25.2"


def locked(lock_text):
    """{name: version} of a lock's requirement lines."""
    return dict(re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+)", lock_text, re.M))


def lock_script(service, *args):
    """scripts/lock.py, run as `make lock` runs it, with the suite's uv."""
    return subprocess.run(
        [sys.executable, "scripts/lock.py", *args], cwd=service, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_rendered_locks_are_what_make_lock_writes(render, variant):
    service = render(variant)
    result = lock_script(service, "--check")
    assert result.returncode == 0, result.stderr
    production = locked((service / "requirements/production.txt").read_text())
    dev = locked((service / "requirements/dev.txt").read_text())
    # dev.in is constrained by production.txt: the tests run what ships.
    assert {name: dev[name] for name in production if name != "psycopg2"} == {
        name: version for name, version in production.items() if name != "psycopg2"
    }
    assert production["psycopg2"] == dev["psycopg2-binary"]


def test_a_stale_lock_is_refused_naming_it(render, tmp_path):
    service = tmp_path / "service"
    shutil.copytree(render("defaults"), service)
    (service / "requirements/project.in").write_text((service / "requirements/project.in").read_text() + f"{ADDED}\n")
    before = {name: (service / "requirements" / name).read_text() for name in LOCKS}

    result = lock_script(service, "--check")

    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Out of date with the .in files: requirements/production.txt, requirements/dev.txt. "
        "Run `make lock` and commit the result."
    )
    assert {name: (service / "requirements" / name).read_text() for name in LOCKS} == before


def test_a_dependency_the_service_adds_is_locked_then_removed(render, tmp_path):
    answers = answers_for("defaults")
    service = tmp_path / "service"
    shutil.copytree(render("defaults"), service)
    project_in = service / "requirements/project.in"
    original_in = project_in.read_text()
    original = {name: (service / "requirements" / name).read_text() for name in LOCKS}

    project_in.write_text(original_in + f"{ADDED}\n")
    added = make(service, "lock", python_version=python_version_of(answers))

    assert added.returncode == 0, added.stderr
    for name in ("production.txt", "dev.txt"):
        text = (service / "requirements" / name).read_text()
        block = re.search(r"^django-filter==25\.2 \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", text, re.M)
        assert block, f"{name} has no hashed django-filter"
        # Nothing else moved: the other packages keep their pins.
        before = locked(original[name])
        assert {k: v for k, v in locked(text).items() if k != "django-filter"} == before
    assert (service / "requirements/build.txt").read_text() == original["build.txt"]
    assert make(service, "lock-check", python_version=python_version_of(answers)).returncode == 0

    project_in.write_text(original_in)
    removed = make(service, "lock", python_version=python_version_of(answers))

    assert removed.returncode == 0, removed.stderr
    assert {name: (service / "requirements" / name).read_text() for name in LOCKS} == original


def test_make_lock_upgrade_moves_only_the_named_package(render, tmp_path):
    """An old pin of a package no .in file names moves with lock-upgrade
    PACKAGE=..., and nothing else does."""
    answers = answers_for("defaults")
    service = tmp_path / "service"
    shutil.copytree(render("defaults"), service)
    production = service / "requirements/production.txt"
    current = locked(production.read_text())
    # sqlparse comes with Django; an owner's lock from before its last release.
    production.write_text(re.sub(r"^sqlparse==\S+ ", "sqlparse==0.5.0 ", production.read_text(), flags=re.M))

    kept = make(service, "lock", python_version=python_version_of(answers))
    assert kept.returncode == 0, kept.stderr
    assert locked(production.read_text())["sqlparse"] == "0.5.0", "make lock moved a pin nothing asked to move"

    upgraded = make(service, "lock-upgrade", "PACKAGE=sqlparse", python_version=python_version_of(answers))
    assert upgraded.returncode == 0, upgraded.stderr
    assert locked(production.read_text()) == current


def test_the_lock_is_independent_of_the_machine(render):
    """--universal: one lock for every platform, with the hashes of every file."""
    text = (Path(render("defaults")) / "requirements/production.txt").read_text()
    argon2 = re.search(r"^argon2-cffi-bindings==\S+ \\\n((?:    --hash=\S+(?: \\)?\n)+)", text, re.M)
    # Wheels for Linux, macOS and Windows, and the source distribution.
    assert len(argon2.group(1).splitlines()) > 10
    assert re.search(r"^tzdata==\S+ ; sys_platform == 'win32'", text, re.M), "Windows-only packages are in the lock"
