"""Figures 1-2: `copier copy` and `copier update`, by the command users run."""

import shutil
import sys
from pathlib import Path

from benchmarks.measure import alternate, log, median, timed
from benchmarks.results import Figure, bounded
from harness.template_repo import TemplateRepo, git

# What an update to the template-only change of v1.1.0 may change in a service.
UPDATED_FILES = [".copier-answers.yml", "gunicorn.conf.py"]


def template_repo(path):
    """The template as it is now in a git repo of its own, tagged v1.0.0, then a
    template-only change (one comment in gunicorn.conf.py) tagged v1.1.0."""
    repo = TemplateRepo(path)
    conf = path / "template" / "gunicorn.conf.py.jinja"
    conf.write_text(conf.read_text() + "\n# A template-only change released in v1.1.0.\n")
    repo.release("1.1.0", "A template-only change")
    return path


def floor_repo(path):
    """copier's floor: a one-question, one-file template (plus the answers file that
    `copier update` needs), tagged like the real one, with a one-line change in v1.1.0."""
    path.mkdir()
    (path / "copier.yml").write_text("project_name:\n  type: str\n")
    (path / "README.md.jinja").write_text("# {{ project_name }}\n")
    (path / "{{_copier_conf.answers_file}}.jinja").write_text("{{ _copier_answers|to_nice_yaml -}}\n")
    git("init", "--quiet", "--initial-branch=main", cwd=path)
    release(path, "1.0.0")
    (path / "README.md.jinja").write_text("# {{ project_name }}\n\nA change released in v1.1.0.\n")
    release(path, "1.1.0")
    return path


def release(path, version):
    git("add", "--all", cwd=path)
    git("commit", "--quiet", "-m", version, cwd=path)
    git("tag", f"v{version}", cwd=path)


def run(work, rounds, answers):
    copier = str(Path(sys.executable).parent / "copier")
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    template = template_repo(work / "template")
    floor = floor_repo(work / "floor")
    counter = iter(range(10**6))

    def copier_copy(source, ref, answers, destination):
        """`copier copy` as a user runs it; returns the seconds it took."""
        command = [copier, "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", ref, *answers]
        return timed([*command, str(source), str(destination)], cwd=work)

    def copy(source, ref, answers):
        return lambda: copier_copy(source, ref, answers, work / f"copy-{next(counter)}")

    def rendered_at_v1(source, name, answers):
        """A service rendered at v1.0.0 and committed; copied once per update, outside the timing."""
        base = work / name
        copier_copy(source, "v1.0.0", answers, base)
        git("init", "--quiet", "--initial-branch=main", cwd=base)
        git("add", "--all", cwd=base)
        git("commit", "--quiet", "-m", "v1", cwd=base)
        return base

    bases = {
        "template": rendered_at_v1(template, "service-v1.0.0", data),
        "floor": rendered_at_v1(floor, "floor-v1.0.0", ["--data", "project_name=Floor"]),
    }
    changed = []  # the files each update of the template changed

    def update(which):
        def run():
            service = work / f"update-{next(counter)}"
            shutil.copytree(bases[which], service, symlinks=True)
            elapsed = timed(
                [copier, "update", "--trust", "--defaults", "--quiet", "--conflict", "inline", "--vcs-ref", "v1.1.0"],
                cwd=service,
            )
            if which == "template":
                changed.append(sorted(line[3:] for line in git("status", "--porcelain", cwd=service).splitlines()))
            return elapsed

        return run

    log(f"copier: {rounds} rounds of floor copy / template copy / template update / floor update")
    runs = alternate(
        rounds,
        floor=copy(floor, "v1.1.0", ["--data", "project_name=Floor"]),
        copy=copy(template, "v1.1.0", data),
        update=update("template"),
        floor_update=update("floor"),
    )
    floor_s, copy_s, update_s, floor_update_s = (
        median(runs[name]) for name in ("floor", "copy", "update", "floor_update")
    )
    return [
        Figure(
            key="copy",
            title="`copier copy --defaults` of the template",
            compared_with="`copier copy` of a one-file template (copier's floor)",
            value=f"{copy_s:.2f} s vs {floor_s:.2f} s",
            **bounded(copy_s / floor_s, at_most=1.5),
            samples={"template_s": runs["copy"], "floor_s": runs["floor"]},
        ),
        Figure(
            key="update",
            title="`copier update` across one version, no conflicts",
            compared_with="the template's `copier copy`",
            value=f"{update_s:.2f} s vs {copy_s:.2f} s (copier's floor: its update is "
            f"{floor_update_s / floor_s:.2f}× its copy)",
            **bounded(update_s / copy_s, at_most=2),
            samples={
                "update_s": runs["update"],
                "copy_s": runs["copy"],
                "floor_update_s": runs["floor_update"],
                "floor_copy_s": runs["floor"],
                "floor_ratio": floor_update_s / floor_s,
                "changed_files": changed[0],
                "clean": all(files == UPDATED_FILES for files in changed),
            },
        ),
    ]
