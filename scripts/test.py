#!/usr/bin/env python3
"""Run the template's test suite: python3 scripts/test.py [pytest arguments]

Creates .venv with the test dependencies from pyproject.toml on first use,
and again whenever they change, then runs pytest in it. Needs only Python
3.11+ and git.
"""

import hashlib
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("TEMPLATE_TEST_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def test_requirements():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["project"]["optional-dependencies"]["test"]


def ensure_venv():
    requirements = test_requirements()
    stamp = VENV / "requirements.sha256"
    digest = hashlib.sha256("\n".join([sys.version, *requirements]).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"Installing the test dependencies into {VENV} ...", flush=True)
    venv.create(VENV, with_pip=True, clear=True)
    subprocess.run(
        [BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        check=True,
    )
    stamp.write_text(digest)


def main():
    ensure_venv()
    os.chdir(ROOT)
    command = [str(BIN / "python"), "-m", "pytest", *sys.argv[1:]]
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
