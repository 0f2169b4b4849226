"""scripts/template_files.txt lists exactly what the template renders, with
each file's owner, and scripts/adoption_check.py names the files in the
template's folders that are not on it (test_adopt.py runs the whole check,
probe routes included, on an adopted service)."""

import importlib.util
import shutil
import subprocess

import pytest
import yaml

from harness.answers import ROOT, VARIANTS, answers_for, package_of


def manifest(service):
    entries = {}
    for line in (service / "scripts/template_files.txt").read_text().splitlines():
        if not line.startswith("#"):
            owner, path = line.split(" ", 1)
            entries[path] = owner
    return entries


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_manifest_lists_every_rendered_file_and_its_owner(render, variant):
    service = render(variant)
    files = {path.relative_to(service).as_posix() for path in service.rglob("*") if path.is_file()}
    entries = manifest(service)
    assert set(entries) == files
    skip_if_exists = yaml.safe_load((ROOT / "copier.yml").read_text())["_skip_if_exists"]
    package = package_of(answers_for(variant))
    project_owned = {pattern.replace("{{ package_name }}", package) for pattern in skip_if_exists}
    assert {path for path, owner in entries.items() if owner == "project"} == project_owned
    assert set(entries.values()) == {"project", "template"}


def load_check(service):
    spec = importlib.util.spec_from_file_location("adoption_check", service / "scripts/adoption_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_leftovers_are_the_files_in_the_templates_folders_it_does_not_render(render, tmp_path):
    service = tmp_path / "service"
    shutil.copytree(render("defaults"), service)
    package = package_of(answers_for("defaults"))
    subprocess.run(["git", "init", "--quiet"], cwd=service, check=True)
    leftovers = [
        "scripts/entrypoint.sh",  # in a folder that is wholly the template's
        "src/servicekit/views/health.py",  # below such a folder too
        f"src/{package}/settings/prod.py",  # beside the template's settings
        "requirements/old.txt",
    ]
    the_services = [
        "LICENSE",
        ".github/CODEOWNERS",
        "src/inventory/models.py",  # an app of its own
        "src/inventory/migrations/0001_initial.py",
        f"src/{package}/views/home.py",  # beside its urls.py, which it owns
        "tests/test_inventory.py",
        "docs/index.md",
    ]
    for relative in [*leftovers, *the_services, "src/servicekit/__pycache__/env.cpython-313.pyc"]:
        (service / relative).parent.mkdir(parents=True, exist_ok=True)
        (service / relative).write_text("")
    (service / ".gitignore").write_text((service / ".gitignore").read_text() + "__pycache__/\n")

    assert load_check(service).leftover_files() == sorted(leftovers)

    for relative in leftovers:
        (service / relative).unlink()
    assert load_check(service).leftover_files() == []
