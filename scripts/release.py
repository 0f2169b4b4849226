#!/usr/bin/env python3
"""Release the template: python3 scripts/release.py X.Y.Z

Turns CHANGELOG.md's "## Unreleased" section into "## X.Y.Z (YYYY-MM-DD)",
commits it as "Release vX.Y.Z" and tags that commit vX.Y.Z (an annotated
tag). copier renders a template repository at its newest PEP 440 tag and
records the tag in each service's .copier-answers.yml; without tags it falls
back to the checked-out commit and a 0.0.0 version, and `copier update`
runs no migration in the right order. So the tag is made with the release
commit, never later by hand.

Refuses, changing nothing: a version that is not X.Y.Z, a work tree with
changes (committed or not, the release must be what is in git), a version
that is not above the last release (its tag or its CHANGELOG section), an
existing tag, and a CHANGELOG.md without an "## Unreleased" section that
says something. Pushing is left to the caller:

    git push origin HEAD vX.Y.Z
"""

import datetime
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHANGELOG = ROOT / "CHANGELOG.md"
VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
UNRELEASED = "## Unreleased"
# A released section's heading, as this script writes it.
RELEASED = re.compile(r"^## (\d+\.\d+\.\d+) \(\d{4}-\d{2}-\d{2}\)$", re.M)


class Refused(Exception):
    """Why the release cannot be made; nothing has been changed."""


def git(*args):
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)  # noqa: S607
    if result.returncode != 0:
        raise Refused(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def parse(version):
    match = VERSION.fullmatch(version)
    if not match:
        raise Refused(f"{version!r} is not a release version: give it as X.Y.Z, e.g. 1.4.0 (no v, no suffix).")
    return tuple(int(part) for part in match.groups())


def released_versions(changelog):
    """Every version released so far: the vX.Y.Z tags and CHANGELOG.md's sections."""
    tags = git("tag", "--list", "v*").split()
    versions = {tag[1:] for tag in tags if VERSION.fullmatch(tag[1:])}
    versions.update(RELEASED.findall(changelog))
    return sorted(versions, key=parse)


def unreleased_section(changelog):
    """(start, end) of the Unreleased section's text, after its heading; refuses one that says nothing."""
    heading = re.search(rf"^{re.escape(UNRELEASED)}[ \t]*$", changelog, re.M)
    if not heading:
        raise Refused(f'CHANGELOG.md has no "{UNRELEASED}" section: write what this release changes there first.')
    following = re.search(r"^## ", changelog[heading.end() :], re.M)
    end = heading.end() + following.start() if following else len(changelog)
    if not changelog[heading.end() : end].strip():
        raise Refused(f'CHANGELOG.md\'s "{UNRELEASED}" section is empty: write what this release changes there first.')
    return heading.start(), heading.end()


def release(version, today):
    wanted = parse(version)
    tag = f"v{version}"
    if git("status", "--porcelain", "--untracked-files=all").strip():
        raise Refused("The work tree has changes: commit or stash them first (`git status` lists them).")
    if git("tag", "--list", tag).strip():
        raise Refused(f"The tag {tag} exists already.")
    changelog = CHANGELOG.read_text()
    released = released_versions(changelog)
    if released and wanted <= parse(released[-1]):
        raise Refused(f"{version} is not above the last release, {released[-1]}.")
    start, end = unreleased_section(changelog)

    CHANGELOG.write_text(f"{changelog[:start]}## {version} ({today.isoformat()}){changelog[end:]}")
    try:
        git("add", "CHANGELOG.md")
        git("commit", "--quiet", "-m", f"Release {tag}")
    except Refused:
        # No commit was made (no identity, a hook refused): leave things as they were.
        subprocess.run(["git", "reset", "--quiet", "--", "CHANGELOG.md"], cwd=ROOT, check=False)  # noqa: S607
        CHANGELOG.write_text(changelog)
        raise
    git("tag", "--annotate", tag, "-m", f"Release {tag}")
    return tag


def main(argv):
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    try:
        tag = release(argv[0], datetime.datetime.now(datetime.UTC).date())
    except Refused as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 1
    print(f"Released {tag}: the commit and its tag. Publish both with: git push origin HEAD {tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
