#!/usr/bin/env python3
"""Run the template's test suite: python3 scripts/run_tests.py [pytest arguments]

Creates .venv with the `test` dependency group of pyproject.toml on first
use, and updates it whenever the group changes, then runs pytest in it from
the repository root. Needs only Python 3.11+ and git.
"""

import sys

import devenv

if __name__ == "__main__":
    devenv.exec_in_venv("test", "-m", "pytest", *sys.argv[1:])
