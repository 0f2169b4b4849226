"""Every variant renders into a clean, lint-free, valid repository."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.answers import VARIANTS, answers_for
from harness.policy import require

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.parametrize("variant", list(VARIANTS))


def tool(name):
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name)


def run(*command, cwd):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True)


def rendered_files(root):
    return sorted(path for path in root.rglob("*") if path.is_file() and ".git" not in path.parts)


# Jinja delimiters, except GitHub Actions expressions (${{ ... }}).
RESIDUE = re.compile(r"(?<!\$)\{\{|\{%|%\}|\{#|#\}")


def test_no_template_residue(render, variant):
    service = render(variant)
    leftovers = []
    for path in rendered_files(service):
        relative = path.relative_to(service)
        if path.suffix == ".jinja" or RESIDUE.search(str(relative)):
            leftovers.append(f"{relative}: file name")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if RESIDUE.search(line):
                leftovers.append(f"{relative}:{number}: {line.strip()}")
            if line != line.rstrip():
                leftovers.append(f"{relative}:{number}: trailing white space")
    assert leftovers == []


def test_files_end_with_one_newline(render, variant):
    service = render(variant)
    bad = [
        str(path.relative_to(service))
        for path in rendered_files(service)
        if path.stat().st_size and (not path.read_text().endswith("\n") or path.read_text().endswith("\n\n"))
    ]
    assert bad == []


def test_python_is_ruff_clean(render, variant):
    service = render(variant)
    check = run(tool("ruff"), "check", "--no-cache", ".", cwd=service)
    assert check.returncode == 0, check.stdout + check.stderr
    formatted = run(tool("ruff"), "format", "--no-cache", "--check", "--diff", ".", cwd=service)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_python_compiles(render, variant):
    service = render(variant)
    for path in service.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker-compose.prod.yml"])
def test_compose_files_match_the_compose_specification(render, variant, compose_file):
    service = render(variant)
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", compose_file, cwd=service)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_hadolint_clean(render, variant):
    service = render(variant)
    for dockerfile in ("Dockerfile", "docker/postgres/Dockerfile"):
        result = run(tool("hadolint"), "--failure-threshold", "style", dockerfile, cwd=service)
        assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_parse_and_are_executable(render, variant):
    service = render(variant)
    scripts = sorted([*(service / "scripts").glob("*.sh"), *(service / "docker/postgres").glob("*.sh")])
    assert {path.name for path in scripts} >= {
        "check_migrations.sh",
        "http_probe.sh",
        "web_healthcheck.sh",
        "check_alive.sh",
        "backup.sh",
        "import-data.sh",
        "present-services.sh",
        "backup-scheduler.sh",
        "entrypoint.sh",
        "restore-check.sh",
        "media-backup.sh",
        "app-role.sh",
    }
    for script in scripts:
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
        result = run("bash", "-n", str(script), cwd=service)
        assert result.returncode == 0, result.stderr


COUNT_QUESTIONS = {"web_workers", "web_threads", "celery_concurrency"}


def test_answers_are_recorded(render, variant):
    service = render(variant)
    recorded = yaml.safe_load((service / ".copier-answers.yml").read_text())
    for key, value in answers_for(variant).items():
        # The counts are asked, and so recorded, as text.
        assert recorded[key] == (str(value) if key in COUNT_QUESTIONS else value)


def test_caddyfile_is_valid(render, variant):
    service = render(variant)
    caddyfile = service / "Caddyfile"
    if not caddyfile.exists():
        assert answers_for(variant)["reverse_proxy"] == "none"
        return
    require(tool("caddy"), "caddy is not installed (Debian: apt-get install caddy)")
    result = subprocess.run(
        [tool("caddy"), "adapt", "--config", "Caddyfile", "--adapter", "caddyfile", "--validate"],
        cwd=service,
        env={**os.environ, "DOMAIN": answers_for(variant)["domain"]},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
