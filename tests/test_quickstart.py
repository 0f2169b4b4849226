"""The README's commands that render a service without prompts, from the
template's URL or from a clone, run as written; and a service copied from a
clone by a relative path updates from its own directory."""

import importlib.util
import re
import shlex
import subprocess

import pytest
import yaml

from harness.answers import ROOT
from harness.template_repo import CONFLICT_MARKER, COPIER, TemplateRepo, git, template_only_change


def readme_blocks():
    """The README's sh code blocks, each a list of its lines."""
    readme = (ROOT / "README.md").read_text()
    return [block.strip().splitlines() for block in re.findall(r"```sh\n(.+?)```", readme, re.S)]


def copy_commands():
    """(git clone line or None, copier copy line) for each README command that renders a new service without prompts."""
    commands = []
    for block in readme_blocks():
        for index, line in enumerate(block):
            line = line.strip()
            if line.startswith("copier copy ") and "--defaults" in line and "--overwrite" not in line:
                clone = next(
                    (earlier.strip() for earlier in block[:index] if earlier.strip().startswith("git clone ")), None
                )
                commands.append((clone, line))
    return commands


def update_command():
    [line] = {line.strip() for block in readme_blocks() for line in block if line.strip().startswith("copier update ")}
    return shlex.split(line)


def data_of(command):
    values = [command[index + 1] for index, arg in enumerate(command) if arg == "--data"]
    return dict(value.split("=", 1) for value in values)


def run(command, cwd):
    return subprocess.run(
        [COPIER, *command[1:]], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300
    )


def test_the_readme_renders_without_prompts_from_the_url_and_from_a_clone():
    commands = copy_commands()
    assert [clone is None for clone, _ in commands] == [True, False], commands


@pytest.mark.parametrize("from_clone", [False, True], ids=["url", "clone"])
def test_the_readme_copy_command_runs_as_written(tmp_path, from_clone):
    [(clone, line)] = [(clone, line) for clone, line in copy_commands() if (clone is not None) == from_clone]
    command = shlex.split(line)
    assert command[:4] == ["copier", "copy", "--trust", "--defaults"], command
    source, destination = command[-2:]
    data = data_of(command)
    assert set(data) == {"project_name", "domain"}, data  # the questions without a default
    if from_clone:
        # The clone is where `git clone URL` puts it, and the copy names it so.
        url = shlex.split(clone)[-1]
        assert source == url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1], (clone, line)
    else:
        assert source.startswith("https://")
        source = str(tmp_path / "django-service-template")
    template = TemplateRepo(tmp_path / "django-service-template")

    # --defaults alone is not enough: copier stops before writing anything.
    without_data = [arg for index, arg in enumerate(command) if "--data" not in command[index - 1 : index + 1]]
    refused = run([*without_data[:-2], source, destination], cwd=tmp_path)
    assert refused.returncode != 0
    assert 'Question "project_name" is required' in refused.stderr
    assert not (tmp_path / destination).exists()

    result = run([*command[:-2], source, destination], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    service = tmp_path / destination
    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert {key: answers[key] for key in data} == data
    assert answers["_commit"] == "v1.0.0"
    # The template's path is recorded absolute, whatever was typed.
    assert answers["_src_path"] == str(template.path)

    # From the service's own directory, the README's update command finds the template.
    git("init", "--quiet", "--initial-branch=main", cwd=service)
    git("add", "--all", cwd=service)
    git("commit", "--quiet", "-m", "Start from the template", cwd=service)
    template_only_change(template)
    result = run(update_command(), cwd=service)
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load((service / ".copier-answers.yml").read_text())["_commit"] == "v1.1.0"
    gunicorn = (service / "gunicorn.conf.py").read_text()
    assert 'env.int("GUNICORN_KEEPALIVE", default=10' in gunicorn and not CONFLICT_MARKER.search(gunicorn)


def test_a_relative_template_path_is_recorded_absolute_and_other_sources_as_given(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("records", ROOT / "extensions/records.py")
    records = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(records)
    monkeypatch.chdir(tmp_path)
    for typed, recorded in {
        "template": tmp_path / "template",
        "./template": tmp_path / "template",
        "../template": tmp_path.parent / "template",
        str(tmp_path / "template"): tmp_path / "template",
    }.items():
        assert records.absolute_source({"_src_path": typed, "a": 1}) == {"_src_path": str(recorded), "a": 1}
    for remote in (
        "https://github.com/platform-templates/django-service-template",
        "git+https://example.org/template",
        "file:///srv/template",
        "git@github.com:platform-templates/django-service-template.git",
        "gh:platform-templates/django-service-template",
        "~/templates/django-service-template",
    ):
        assert records.absolute_source({"_src_path": remote}) == {"_src_path": remote}
