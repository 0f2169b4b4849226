"""The template repository itself: its quick start is true, its code is clean."""

import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import yaml
from harness.answers import REQUIRED_ANSWERS, ROOT

BIN = Path(sys.executable).parent


def quick_start_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_two_commands_and_ci_runs_the_second():
    render_command, test_command = quick_start_commands()
    assert "copier copy --trust" in render_command
    assert test_command == "python3 scripts/test.py"
    ci_commands = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.startswith("python3 ")]
    assert ci_commands == [test_command]


def test_quick_start_renders_a_service(copier_template, tmp_path, figure):
    render_command = quick_start_commands()[0]
    install, copy = (shlex.split(part) for part in render_command.split("&&"))
    # The install step asks for exactly what the template needs beside copier.
    test_requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = {requirement.split("==")[0] for requirement in test_requirements["test"]}
    assert install[:4] == ["python3", "-m", "pip", "install"] and set(install[4:]) <= pinned
    # The copy step, run as written, with the template snapshot instead of its URL.
    assert copy[:3] == ["copier", "copy", "--trust"] and copy[3].startswith("https://")
    data = [arg for key, value in REQUIRED_ANSWERS.items() for arg in ("--data", f"{key}={value}")]
    command = [str(BIN / "copier"), *copy[1:3], "--defaults", *data, str(copier_template), copy[4]]

    started = time.perf_counter()
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    figure("copier copy --defaults (the quick start's command)", f"{time.perf_counter() - started:.2f} s")

    assert result.returncode == 0, result.stderr
    service = tmp_path / copy[4]
    assert yaml.safe_load((service / ".copier-answers.yml").read_text())["domain"] == REQUIRED_ANSWERS["domain"]
    assert "make run" in result.stdout + result.stderr


def test_repository_code_is_ruff_clean():
    for command in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        result = subprocess.run([str(BIN / "ruff"), *command], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
