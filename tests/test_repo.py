"""The template repository itself: its quick start is true, its code is clean."""

import itertools
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from harness.answers import REQUIRED_ANSWERS, ROOT

BIN = Path(sys.executable).parent
WORKFLOW = ROOT / ".github/workflows/ci.yml"


def quick_start_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_two_commands_and_ci_runs_the_second():
    render_command, test_command = quick_start_commands()
    assert "copier copy --trust" in render_command
    assert test_command == "python3 scripts/run_tests.py"
    # The same command, which passes on the arguments .ci/run is given.
    ci_commands = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.startswith("python3 ")]
    assert ci_commands == [f'{test_command} "$@"']


def test_the_workflow_runs_every_test_once_through_ci_run():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    steps = [step.get("run", "") for job in jobs.values() for step in job["steps"]]
    assert [run for run in steps if ".ci/run" in run] == ['.ci/run -m "${{ matrix.markers }}"']
    assert not [run for run in steps if "run_tests.py" in run or "pytest" in run]
    selections = [tier["markers"] for tier in jobs["test"]["strategy"]["matrix"]["include"]]
    markers = sorted(set(re.findall(r"\w+", " ".join(selections))) - {"and", "or", "not"})
    # Whatever markers a test has, exactly one tier selects it. A marker
    # expression is Python's boolean syntax over marker names.
    for values in itertools.product([False, True], repeat=len(markers)):
        test_markers = dict(zip(markers, values, strict=True))
        chosen = [selection for selection in selections if eval(selection, {"__builtins__": {}}, test_markers)]
        assert len(chosen) == 1, (test_markers, chosen)


@pytest.mark.parametrize(
    ("path", "schema"),
    [(".github/workflows/ci.yml", "vendor.github-workflows"), (".github/dependabot.yml", "vendor.dependabot")],
)
def test_repository_github_files_match_their_schemas(path, schema):
    command = [str(BIN / "check-jsonschema"), "--builtin-schema", schema, path]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# The package each hook repository installs.
HOOK_PACKAGES = {
    "https://github.com/astral-sh/ruff-pre-commit": "ruff",
    "https://github.com/python-jsonschema/check-jsonschema": "check-jsonschema",
}


def test_commit_hooks_run_the_versions_the_suite_pins():
    test_group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["test"]
    pins = dict(requirement.split("==") for requirement in test_group if isinstance(requirement, str))
    hooks = {}
    for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]:
        if repo["repo"] == "local":
            # Dependabot leaves local hooks alone: their pins are bumped by hand.
            for hook in repo["hooks"]:
                hooks.update(requirement.split("==") for requirement in hook.get("additional_dependencies", []))
        else:
            hooks[HOOK_PACKAGES[repo["repo"]]] = repo["rev"].removeprefix("v")
    assert hooks == {name: pins[name] for name in hooks}


def test_quick_start_renders_a_service(copier_template, tmp_path, figure):
    render_command = quick_start_commands()[0]
    install, copy = (shlex.split(part) for part in render_command.split("&&"))
    # The install step asks for exactly what the template needs beside copier.
    test_group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["test"]
    pinned = {requirement.split("==")[0] for requirement in test_group if isinstance(requirement, str)}
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
