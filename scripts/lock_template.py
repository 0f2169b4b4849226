#!/usr/bin/env python3
"""Re-locks the template: python3 scripts/lock_template.py [--upgrade [NAME...]]

A rendered service's hashed locks (requirements/build.txt, production.txt,
dev.txt) depend on its answers: S3 media and Sentry add packages, and the
Python version is part of the resolution. This renders the template once
for every combination of those answers, runs the service's own
scripts/lock.py in each (with the current locks as preferences, so pins
move only when an .in file or --upgrade asks), and merges the results into
template/requirements/*.txt.jinja: every package block appears once, under
the condition of the answers whose lock has it. A service rendered with any
answers thus gets the lock its own `make lock` would write, which the tests
check (`make lock-check`).

Run it after changing template/requirements/*.in*, then commit the result.
"""

import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from harness.template_repo import copy_template  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ["build", "production", "dev"]
# The answers a lock depends on, each with every value it can take, as Jinja
# writes the test of one value.
AXES = {
    "media_backend": {"local": 'media_backend == "local"', "s3": 'media_backend == "s3"'},
    "use_sentry": {False: "not use_sentry", True: "use_sentry"},
    "use_opentelemetry": {False: "not use_opentelemetry", True: "use_opentelemetry"},
    "python_version": {"3.12": 'python_version == "3.12"', "3.13": 'python_version == "3.13"'},
}
REQUIRED = {"project_name": "Lock", "domain": "lock.example.org"}


def render(answers, template, destination):
    from copier import run_copy

    run_copy(str(template), destination, data={**REQUIRED, **answers}, defaults=True, unsafe=True, quiet=True)


def blocks(text):
    """The lock's header (comment lines) and its blocks: a requirement line and its indented lines."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    result = []
    for line in lines[start:]:
        if line[0].isspace():
            result[-1][1].append(line)
        else:
            result.append((line, [line]))
    return lines[:start], {first: "".join(block) for first, block in result}, [first for first, _ in result]


def condition(combos, everything):
    """A short Jinja test that is true for exactly the answer combinations in combos."""
    combos = set(combos)
    if combos == set(everything):
        return None
    axes = list(AXES)
    # Terms: each axis either fixed to one value or free; smallest cover first.
    terms = []
    for choice in itertools.product(*[[None, *AXES[axis]] for axis in axes]):
        covered = {combo for combo in everything if all(v is None or combo[i] == v for i, v in enumerate(choice))}
        if covered and covered <= combos:
            terms.append((choice, covered))
    for size in range(1, len(terms) + 1):
        for chosen in itertools.combinations(terms, size):
            if set().union(*(covered for _, covered in chosen)) == combos:
                parts = []
                for choice, _ in chosen:
                    tests = [AXES[axes[i]][v] for i, v in enumerate(choice) if v is not None]
                    parts.append(" and ".join(tests))
                if len(parts) > 1:
                    parts = [f"({part})" if " and " in part else part for part in parts]
                return " or ".join(parts)
    raise AssertionError("unreachable: single combinations always cover")


def merge(outputs):
    """One Jinja template from {combo: lock text}."""
    everything = list(outputs)
    parsed = {combo: blocks(text) for combo, text in outputs.items()}
    headers = {"".join(header) for header, _, _ in parsed.values()}
    header = parsed[everything[-1]][0]
    if len(headers) > 1:
        # Only the Python version differs (it is in the uv command line).
        header = [line.replace("--python-version=3.13", "--python-version={{ python_version }}") for line in header]
    # Every package, in the order the locks list them (by name).
    order = []
    for _, _, names in parsed.values():
        for name in names:
            if name not in order:
                order.append(name)
    order.sort(key=lambda line: (re.split(r"[=; ]", line, maxsplit=1)[0].lower(), line))
    out = list(header)
    for first in order:
        variants = {}
        for combo in everything:
            block = parsed[combo][1].get(first)
            if block is not None:
                variants.setdefault(block, []).append(combo)
        present = condition([c for combos in variants.values() for c in combos], everything)
        if len(variants) == 1:
            (block,) = variants
            out += [f"{{% if {present} %}}\n", block, "{% endif %}\n"] if present else [block]
            continue
        # The same pin under different answers, with different "# via" lines:
        # the requirement and hashes once, the annotations per answers.
        head = {block.split("    # via")[0] for block in variants}
        assert len(head) == 1, f"{first.strip()}: different versions or hashes across answers"
        if present:
            out.append(f"{{% if {present} %}}\n")
        out.append(head.pop())
        keyword = "if"
        for block, combos in sorted(variants.items(), key=lambda item: -len(item[1])):
            out.append(f"{{% {keyword} {condition(combos, everything)} %}}\n")
            out.append("    # via" + block.split("    # via", 1)[1])
            keyword = "elif"
        out.append("{% endif %}\n")
        if present:
            out.append("{% endif %}\n")
    return "".join(out)


def main():
    upgrade = None
    if sys.argv[1:2] == ["--upgrade"]:
        upgrade = sys.argv[2:]
    combos = list(itertools.product(*[list(values) for values in AXES.values()]))
    results = {name: {} for name in LOCKS}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with tempfile.TemporaryDirectory() as work:
        # The work tree as it is, uncommitted edits included.
        template = Path(work) / "template"
        template.mkdir()
        copy_template(template)
        for combo in combos:
            answers = dict(zip(AXES, combo, strict=True))
            service = Path(work) / "-".join(str(value) for value in combo)
            render(answers, template, service)
            command = [sys.executable, "scripts/lock.py"]
            if upgrade is not None:
                command += ["--upgrade", *upgrade]
            subprocess.run(command, cwd=service, env=env, check=True)
            for name in LOCKS:
                results[name][combo] = (service / "requirements" / f"{name}.txt").read_text()
    for name in LOCKS:
        target = ROOT / "template" / "requirements" / f"{name}.txt"
        texts = set(results[name].values())
        if len(texts) == 1:
            target.with_suffix(".txt.jinja").unlink(missing_ok=True)
            target.write_text(texts.pop())
        else:
            target.unlink(missing_ok=True)
            target.with_suffix(".txt.jinja").write_text(merge(results[name]))
        print(f"template/requirements/{target.name}{'' if len(texts) == 1 else '.jinja'}")
    shutil.rmtree(ROOT / "template" / "requirements" / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
