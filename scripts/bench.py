#!/usr/bin/env python3
"""Benchmark the template and the service it renders: python3 scripts/bench.py [options]

Makes .venv with the `bench` dependency group (as scripts/run_tests.py does
with `test`), then runs the benchmarks package in it: `python -m benchmarks`
from the repository root. `--help` lists the options; benchmarks/README.md
says what is measured and how.
"""

import sys

import devenv

if __name__ == "__main__":
    devenv.exec_in_venv("bench", "-m", "benchmarks", *sys.argv[1:])
