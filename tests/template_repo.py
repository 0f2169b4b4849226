"""The template as a git repository of its own, tagged like a release: what
`copier copy --vcs-ref` and `copier update` run against in the update tests
and the benchmarks."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What copier reads of this repository.
TEMPLATE_PATHS = ["copier.yml", "extensions", "template"]


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


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
    """A git repository of the template (the work tree as it is now), tagged v1.0.0."""

    def __init__(self, path):
        self.path = path
        path.mkdir()
        copy_template(path)
        git("init", "--quiet", "--initial-branch=main", cwd=path)
        self.release("1.0.0", "The template as it is")

    def edit(self, relative, old, new):
        path = self.path / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new))

    def release(self, version, message):
        git("add", "--all", cwd=self.path)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.path)
        git("tag", f"v{version}", cwd=self.path)
