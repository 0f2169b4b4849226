"""The template as a git repository of its own, tagged like a release: what
`copier copy --vcs-ref` and `copier update` run against in the update and
adoption tests and the benchmarks."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness.answers import REQUIRED_ANSWERS, ROOT

# The copier command of the environment running the suite.
COPIER = str(Path(sys.executable).parent / "copier")
# A line that git's (and copier's) inline conflict markers start.
CONFLICT_MARKER = re.compile(r"^(<<<<<<<|=======|>>>>>>>)( |$)", re.M)
# What copier reads of this repository.
TEMPLATE_PATHS = ["copier.yml", "extensions", "template"]


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def copier(*args, cwd):
    """Runs the copier command as a user would; returns the CompletedProcess."""
    return subprocess.run([COPIER, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def copy_template(destination):
    """Puts the template as it is in the work tree into destination, replacing what is there."""
    for name in TEMPLATE_PATHS:
        source, target = ROOT / name, destination / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)


class TemplateRepo:
    """A git repository of the template (the work tree as it is now), tagged
    v<version> (v1.0.0), or not tagged at all with version None."""

    def __init__(self, path, version="1.0.0"):
        self.path = path
        path.mkdir()
        copy_template(path)
        git("init", "--quiet", "--initial-branch=main", cwd=path)
        if version:
            self.release(version, "The template as it is")
        else:
            self.commit("The template as it is, untagged")

    def edit(self, relative, old, new):
        path = self.path / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new))

    def commit(self, message):
        git("add", "--all", cwd=self.path)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.path)

    def release(self, version, message):
        self.commit(message)
        git("tag", f"v{version}", cwd=self.path)


class ServiceRepo:
    """A service rendered from a template version (with version None, what
    copier picks: the newest tag, or the checked-out commit of an untagged
    template), committed by its owner."""

    def __init__(self, template, path, version="v1.0.0", **answers):
        self.path = path
        data = [arg for key, value in {**REQUIRED_ANSWERS, **answers}.items() for arg in ("--data", f"{key}={value}")]
        ref = ["--vcs-ref", version] if version else []
        result = copier("copy", "--trust", "--defaults", *ref, *data, str(template), str(path), cwd=path.parent)
        assert result.returncode == 0, result.stderr
        self.copy_output = result.stderr
        git("init", "--quiet", "--initial-branch=main", cwd=path)
        self.commit("Start from the template")

    def commit(self, message):
        git("add", "--all", cwd=self.path)
        git("commit", "--quiet", "-m", message, cwd=self.path)

    def read(self, relative):
        return (self.path / relative).read_text()

    def write(self, relative, text):
        path = self.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def update(self, version):
        return copier("update", "--trust", "--defaults", "--conflict", "inline", "--vcs-ref", version, cwd=self.path)

    def changed_files(self):
        return sorted(line[3:] for line in git("status", "--porcelain", cwd=self.path).splitlines())


def template_only_change(template):
    """Releases v1.1.0 of a TemplateRepo, changing template-owned files only."""
    template.edit(
        "template/gunicorn.conf.py.jinja",
        'keepalive = env.int("GUNICORN_KEEPALIVE", default=5',
        'keepalive = env.int("GUNICORN_KEEPALIVE", default=10',
    )
    template.edit(
        "template/src/{{package_name}}/settings/base.py.jinja",
        'LANGUAGE_CODE = "{{ language }}"',
        'LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="{{ language }}")',
    )
    template.edit("template/Makefile.jinja", "lint: install\n", "lint: install  # ruff: rules and formatting\n")
    template.release("1.1.0", "Longer keep-alive, LANGUAGE_CODE from the environment")
