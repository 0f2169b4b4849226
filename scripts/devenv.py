"""The repository's own virtualenv, .venv, for the test runner and the benchmarks.

Standard library only: it runs under the system Python, before .venv exists.
Scripts in this directory import it as a sibling module (a script's own
directory is first on sys.path).

The requirements are the PEP 735 dependency groups of pyproject.toml, read
here rather than with `pip install --group`, which needs pip 25.1 or later
while the pip a venv is created with is the one bundled with the interpreter.
"""

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("TEMPLATE_TEST_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
# What the venv holds, so that a run installs only what a group adds or changes.
STAMP = VENV / "requirements.json"
# Puts tests/ on the venv's sys.path: the test helpers (`import harness`) are
# importable by the benchmarks as well as by the tests.
PTH = "django_service_template_tests.pth"


def group_requirements(name, groups=None):
    """The requirements of a dependency group, with the groups it includes."""
    if groups is None:
        groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    requirements = []
    for item in groups[name]:
        if isinstance(item, str):
            requirements.append(item)
        else:
            requirements += group_requirements(item["include-group"], groups)
    return list(dict.fromkeys(requirements))


def installed_requirements():
    """What the venv was given, or None when it must be made again (none yet, another Python)."""
    try:
        recorded = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return None
    return recorded["requirements"] if recorded.get("python") == sys.version else None


def ensure_venv(group):
    """Makes .venv hold a dependency group: created on first use, topped up when
    the group gains or changes a pin. The test and benchmark groups share it."""
    requirements = group_requirements(group)
    installed = installed_requirements()
    if installed is None:
        print(f"Creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True, clear=True)
        installed = []
    missing = [requirement for requirement in requirements if requirement not in installed]
    if missing:
        print(f"Installing the {group} dependencies into {VENV} ...", flush=True)
        subprocess.run(
            [BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *missing],
            check=True,
        )
        STAMP.write_text(json.dumps({"python": sys.version, "requirements": sorted({*installed, *missing})}))
    # The venv has the Python version of this interpreter, hence its layout.
    site_packages = Path(sysconfig.get_path("purelib", "venv", vars={"base": str(VENV), "platbase": str(VENV)}))
    (site_packages / PTH).write_text(f"{ROOT / 'tests'}\n")


def exec_in_venv(group, *args):
    """Replaces this process with .venv's Python, run from the repository root with args."""
    ensure_venv(group)
    os.chdir(ROOT)
    python = str(BIN / "python")
    os.execv(python, [python, *args])
