"""scripts/release.py, run on temporary repositories (never on this one): the
release commit and its tag, and every refusal leaving the repository as it was."""

import datetime
import shutil
import subprocess
import sys

import pytest

from harness.answers import ROOT
from harness.template_repo import git

CHANGELOG = """\
# Changelog

What each release changes.

## Unreleased

### Fixed
- A fix.

## 0.1.0 (2026-11-28)

First version.
"""


def make_repo(path, changelog=CHANGELOG, tags=("v0.1.0",)):
    """A repository with the release script and changelog, its first commit tagged with tags."""
    (path / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts/release.py", path / "scripts/release.py")
    (path / "CHANGELOG.md").write_text(changelog)
    git("init", "--quiet", "--initial-branch=main", cwd=path)
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "-m", "First", cwd=path)
    for tag in tags:
        git("tag", "--annotate", tag, "-m", tag, cwd=path)
    return path


def release(repo, *args):
    return subprocess.run(
        [sys.executable, "scripts/release.py", *args], cwd=repo, capture_output=True, text=True, timeout=60
    )


def state(repo):
    """What a refused release must leave as it was."""
    return (
        git("rev-parse", "HEAD", cwd=repo),
        git("tag", "--list", cwd=repo),
        git("status", "--porcelain", "--untracked-files=all", cwd=repo),
        (repo / "CHANGELOG.md").read_text(),
    )


def test_a_release_dates_the_changelog_commits_and_tags(tmp_path):
    repo = make_repo(tmp_path / "repo")
    before = datetime.datetime.now(datetime.UTC).date()

    result = release(repo, "0.2.0")

    after = datetime.datetime.now(datetime.UTC).date()
    assert result.returncode == 0, result.stderr
    assert "git push origin HEAD v0.2.0" in result.stdout
    assert git("log", "-1", "--format=%s", cwd=repo).strip() == "Release v0.2.0"
    assert git("show", "--name-only", "--format=", "HEAD", cwd=repo).split() == ["CHANGELOG.md"]
    # An annotated tag on the release commit: what copier reads as the version.
    assert git("cat-file", "-t", "v0.2.0", cwd=repo).strip() == "tag"
    assert git("describe", "--exact-match", "HEAD", cwd=repo).strip() == "v0.2.0"
    changelog = (repo / "CHANGELOG.md").read_text()
    assert "## Unreleased" not in changelog
    assert any(
        changelog == CHANGELOG.replace("## Unreleased", f"## 0.2.0 ({day.isoformat()})") for day in {before, after}
    )
    assert git("status", "--porcelain", cwd=repo) == ""


def test_the_first_release_of_a_repository_without_tags(tmp_path):
    repo = make_repo(tmp_path / "repo", changelog=CHANGELOG.split("## 0.1.0")[0], tags=())
    result = release(repo, "0.1.0")
    assert result.returncode == 0, result.stderr
    assert git("describe", "--exact-match", "HEAD", cwd=repo).strip() == "v0.1.0"


@pytest.mark.parametrize(
    ("version", "setup", "message"),
    [
        ("v0.2.0", None, "'v0.2.0' is not a release version: give it as X.Y.Z"),
        ("0.2", None, "'0.2' is not a release version"),
        ("0.2.0rc1", None, "'0.2.0rc1' is not a release version"),
        ("0.02.0", None, "'0.02.0' is not a release version"),
        ("0.2.0", "changed", "The work tree has changes"),
        ("0.2.0", "untracked", "The work tree has changes"),
        ("0.2.0", "staged", "The work tree has changes"),
        ("0.1.0", None, "The tag v0.1.0 exists already."),
        ("0.0.9", None, "0.0.9 is not above the last release, 0.1.0."),
        ("0.2.0", "tag 0.3.0", "0.2.0 is not above the last release, 0.3.0."),
        ("0.1.0", "no tags", "0.1.0 is not above the last release, 0.1.0."),
        ("0.2.0", "no unreleased section", 'CHANGELOG.md has no "## Unreleased" section'),
        ("0.2.0", "empty unreleased section", 'CHANGELOG.md\'s "## Unreleased" section is empty'),
    ],
)
def test_a_refused_release_changes_nothing(tmp_path, version, setup, message):
    changelog, tags = CHANGELOG, ("v0.1.0",)
    if setup == "no tags":
        tags = ()
    elif setup == "no unreleased section":
        changelog = CHANGELOG.replace("## Unreleased\n\n### Fixed\n- A fix.\n\n", "")
    elif setup == "empty unreleased section":
        changelog = CHANGELOG.replace("### Fixed\n- A fix.\n\n", "\n")
    repo = make_repo(tmp_path / "repo", changelog=changelog, tags=tags)
    if setup == "changed":
        (repo / "CHANGELOG.md").write_text(changelog + "\nMore.\n")
    elif setup == "untracked":
        (repo / "notes.txt").write_text("not committed\n")
    elif setup == "staged":
        (repo / "notes.txt").write_text("not committed\n")
        git("add", "notes.txt", cwd=repo)
    elif setup == "tag 0.3.0":
        git("tag", "--annotate", "v0.3.0", "-m", "v0.3.0", cwd=repo)
    before = state(repo)

    result = release(repo, version)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert state(repo) == before


def test_a_release_without_a_version_says_how_to_call_it(tmp_path):
    repo = make_repo(tmp_path / "repo")
    before = state(repo)
    result = release(repo)
    assert result.returncode == 2
    assert "scripts/release.py X.Y.Z" in result.stderr
    assert state(repo) == before
