"""Commands that copier.yml's _migrations run when a service is updated.

    python extensions/migrations.py rename-answer OLD NEW [ANSWERS_FILE]
    python extensions/migrations.py retire-package OLD_DIR NEW_PACKAGE [RETIRED_PATH...]
    python extensions/migrations.py replace-generated PATH...

Copier runs "before" migrations in the service's directory, after it has
re-rendered the old version and before it loads the answers for the new one:
renaming the key there makes the old answer the new question's answer,
without prompting. A migration entry looks like:

    - version: "2.0.0"
      when: "{{ _stage == 'before' }}"
      command:
        - "{{ _copier_python }}"
        - "{{ _copier_conf.src_path }}/extensions/migrations.py"
        - rename-answer
        - old_key
        - new_key
"""

import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml


def rename_answer(old, new, answers_file=".copier-answers.yml"):
    path = Path(answers_file)
    answers = yaml.safe_load(path.read_text()) or {}
    if old not in answers:
        return
    # Keep the answers' order, with the new key where the old one was.
    renamed = {(new if key == old else key): value for key, value in answers.items()}
    header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    path.write_text(header + yaml.safe_dump(renamed, sort_keys=False, allow_unicode=True))


def tracked_files(paths):
    """The files git tracks under paths (relative to the service), as Paths."""
    listed = subprocess.run(["git", "ls-files", "-z", "--", *paths], capture_output=True, text=True, check=True)
    return [Path(name) for name in listed.stdout.split("\0") if name]


def render_previous_version(destination, answers_file=".copier-answers.yml"):
    """Renders the template version the service was last updated to, with its answers."""
    from copier import run_copy

    answers = yaml.safe_load(Path(answers_file).read_text())
    run_copy(
        answers["_src_path"],
        destination,
        vcs_ref=answers["_commit"],
        data={key: value for key, value in answers.items() if not key.startswith("_")},
        defaults=True,
        unsafe=True,
        quiet=True,
    )


def as_rendered(path, previous):
    """Whether the service's file is exactly as the previous version rendered it."""
    return (previous / path).is_file() and filecmp.cmp(path, previous / path, shallow=False)


def retire_package(old_dir, new_package, *retired):
    """Moves a service off the template package in old_dir, now named new_package.

    The new template version renders neither old_dir nor the retired paths
    (files it moved elsewhere), and copier update leaves behind every file a
    template version stops rendering. This removes them, if and only if each
    is exactly as the previous version rendered it. If the service has files
    of its own there, or changed one, nothing is touched: the update stops
    with a message naming them. Otherwise, imports of the old package's
    modules in the service's own Python files (those the template did not
    render as they are) are rewritten to the new package.
    """
    old_dir = Path(old_dir)
    candidates = tracked_files([old_dir, *retired])
    if not candidates:
        return
    with tempfile.TemporaryDirectory() as previous:
        previous = Path(previous)
        render_previous_version(previous)
        theirs = [path for path in candidates if not (previous / path).is_file()]
        changed = [path for path in candidates if path not in theirs and not as_rendered(path, previous)]
        if theirs or changed:
            lines = [f"  {path}  (not the template's)" for path in theirs]
            lines += [f"  {path}  (changed since the template rendered it)" for path in changed]
            sys.exit(
                f"This update moves the template's package {old_dir}/ to {old_dir.parent}/{new_package}/ "
                "and its tests to tests/template/. These files would be left behind or lost:\n"
                + "\n".join(lines)
                + f"\nNothing was changed. Move your own code out of {old_dir}/ into one of your apps; "
                "undo your changes to the template's files, keeping them to apply again after the update. "
                "Commit, then run copier update again."
            )
        modules = sorted(
            {path.relative_to(old_dir).parts[0].removesuffix(".py") for path in candidates if old_dir in path.parents}
            - {"__init__"}
        )
        own_python = [
            path for path in tracked_files(["*.py"]) if path not in candidates and not as_rendered(path, previous)
        ]
    for path in candidates:
        path.unlink()
    # Byte code that Python left beside the removed modules.
    for cache in list(old_dir.rglob("__pycache__")):
        shutil.rmtree(cache)
    for directory in sorted({parent for path in candidates for parent in path.parents}, reverse=True):
        if directory != Path(".") and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    rewrite_imports(own_python, old_dir.name, new_package, modules)


def rewrite_imports(paths, old, new, modules):
    """old.<module> -> new.<module> and "from old import <module>", for the given modules only."""
    names = "|".join(re.escape(module) for module in modules)
    dotted = re.compile(rf"(?<![\w.]){re.escape(old)}(?=\.(?:{names})\b)")
    from_import = re.compile(rf"^(\s*from\s+){re.escape(old)}(\s+import\s+(?:{names})\b)", re.M)
    for path in paths:
        text = path.read_text()
        rewritten = from_import.sub(rf"\g<1>{new}\g<2>", dotted.sub(new, text))
        if rewritten != text:
            path.write_text(rewritten)
            print(f"{path}: imports of {old} now import {new}")


def replace_generated(*paths):
    """Removes each of paths that is exactly as the previous version rendered it.

    For template files that become generated ones which the service owns
    (listed in _skip_if_exists): copier update keeps such a file when it
    exists, so without this the service would keep the old template's
    content. Removed, the new version renders it afresh. A changed file is
    kept, and the update says what to do with it.
    """
    present = [Path(path) for path in paths if Path(path).is_file()]
    if not present:
        return
    with tempfile.TemporaryDirectory() as previous:
        previous = Path(previous)
        render_previous_version(previous)
        for path in present:
            if as_rendered(path, previous):
                path.unlink()
            else:
                print(f"{path}: changed since the template rendered it, so kept; run `make lock` to replace it.")


COMMANDS = {"rename-answer": rename_answer, "retire-package": retire_package, "replace-generated": replace_generated}


def main(argv):
    if len(argv) < 2 or argv[0] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[argv[0]](*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
