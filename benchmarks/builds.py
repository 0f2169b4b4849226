"""Figures 14-15: installing the locked dependencies in the production image.

Uses the engine and images of the container tests (harness.docker). A cold
build is `--no-cache` after the engine's build cache mounts (uv's and pip's
download and wheel caches) are pruned: every file is downloaded and every
package installed again.

1. uv against pip: the rendered Dockerfile (uv, from requirements/build.txt,
   installs requirements/production.txt and cyclonedx-py writes the SBOM)
   against the same Dockerfile with the install as the previous release
   made it, `python -m venv /opt/venv && pip install -r` of the same lock
   (pip checks its hashes too). The figure is the install step's time, as
   BuildKit reports it (for uv with the SBOM); the build tools' stage, which
   BuildKit runs beside the compiler's installation, and the whole build are
   reported beside it. Both compile psycopg2 from source, which takes most
   of the step: the same pair without it in the lock is measured too.
2. A rebuild after a one-line dependency addition: a package added to
   requirements/project.in and locked (`scripts/lock.py`, not timed), then
   `docker build` with the build cache and uv's cache that a build of the
   previous lock left, against the cold build. Each round
   adds another package, so that no round finds its layer in the cache.
"""

import re
import secrets
import shutil
import subprocess
import sys
import time

from copier import run_copy

from benchmarks.measure import alternate, log, median
from benchmarks.results import Figure, bounded
from harness.answers import ROOT
from harness.docker import docker, image_values, stack_images
from harness.stack import build

# Small pure-Python packages none of the locks has: one per round.
ADDITIONS = ["django-filter", "humanize", "python-slugify", "django-cors-headers", "tablib", "markdown"]

# What the previous release's build stage did with the same lock.
PIP_STEP = "pip install -r requirements/production.txt"
PIP_INSTALL = (
    "RUN --mount=type=cache,target=/root/.cache/pip \\\n"
    "    python -m venv /opt/venv \\\n"
    "    && pip install -r requirements/production.txt\n"
)


def pip_dockerfile(dockerfile):
    """The rendered Dockerfile with pip in place of uv, and no tools stage or SBOM."""
    tools = re.compile(r"# The build tools .*?\n\n\n", re.S)
    install = re.compile(r"RUN --mount=type=cache,target=/root/\.cache/uv .*?/sbom\.cdx\.json .+?\n", re.S)
    text, tools_found = tools.subn("", dockerfile, count=1)
    text, install_found = install.subn(PIP_INSTALL, text, count=1)
    text, sbom_found = re.subn(r"COPY --from=build /sbom\.cdx\.json \./\n", "", text)
    text, copies = re.subn(r"COPY --from=tools /opt/build-tools /opt/build-tools\n", "", text)
    assert tools_found == install_found == sbom_found == 1 and copies, "the Dockerfile's install steps have changed"
    return text


def without_source_builds(lock):
    """The lock without psycopg2, the one package built from source."""
    return re.sub(r"^psycopg2==\S+ \\\n(    .*\n)+", "", lock, flags=re.M)


def step_seconds(progress, *needles):
    """The seconds of the build steps whose instruction contains one of needles."""
    steps = re.findall(r"^#(\d+) \[[^\]]*\] (.*)$", progress, re.M)
    numbers = {number for number, instruction in steps if any(needle in instruction for needle in needles)}
    assert numbers, f"no build step runs any of {needles}"
    done = re.findall(r"^#(\d+) DONE ([\d.]+)s$", progress, re.M)
    return sum(float(seconds) for number, seconds in done if number in numbers)


def prune_download_caches():
    docker("builder", "prune", "--force", "--filter", "type=exec.cachemount")


def lock(service):
    subprocess.run([sys.executable, "scripts/lock.py"], cwd=service, check=True, capture_output=True, timeout=600)


def run(work, rounds, answers):
    service = work / "service"
    log("builds: rendering the default service")
    run_copy(str(ROOT), service, data=answers, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    base = image_values(stack_images(service / "docker-compose.prod.yml"))["PYTHON_IMAGE"]
    uv_file, pip_file = service / "Dockerfile", service / "Dockerfile.pip"
    pip_file.write_text(pip_dockerfile(uv_file.read_text()))
    tag = f"template-bench-builds-{secrets.token_hex(3)}:latest"
    project_in = service / "requirements" / "project.in"
    original = project_in.read_text()
    steps = {"uv": [], "pip": [], "tools": [], "uv_no_source": [], "pip_no_source": []}
    # The same service and Dockerfiles, psycopg2 taken out of the lock.
    bare = work / "bare"
    shutil.copytree(service, bare, symlinks=True)
    bare_lock = bare / "requirements" / "production.txt"
    bare_lock.write_text(without_source_builds(bare_lock.read_text()))
    additions = iter(ADDITIONS * (rounds // len(ADDITIONS) + 1))

    def cold(kind, context, dockerfile, needle):
        def measure():
            prune_download_caches()
            if context == bare:
                # Up to the install: without psycopg2, the production settings do not load.
                seconds, progress = build_stage(context, dockerfile)
            else:
                seconds, progress = build(context, tag, base, "--no-cache", f"--file={dockerfile}")
            steps[kind].append(step_seconds(progress, needle))
            if kind == "uv":
                steps["tools"].append(step_seconds(progress, "requirements/build.txt"))
            return seconds

        return measure

    def build_stage(context, dockerfile):
        started = time.monotonic()
        result = docker(
            "build", "--progress=plain", "--no-cache", "--target=build", f"--build-arg=PYTHON_IMAGE={base}",
            f"--file={dockerfile}", str(context), timeout=1800,
        )  # fmt: skip
        return time.monotonic() - started, result.stderr

    def added():
        project_in.write_text(original)
        lock(service)
        # What a team's last build left, and nothing else: its layers and
        # uv's cache of the files it installed (an earlier run may have
        # built this very addition).
        docker("builder", "prune", "--all", "--force")
        build(service, tag, base, "--no-cache")
        project_in.write_text(original + f"{next(additions)}\n")
        lock(service)
        return build(service, tag, base)[0]

    try:
        log(f"builds: {rounds} rounds of cold builds with uv and with pip, and a rebuild after a dependency addition")
        builds = alternate(
            rounds,
            uv=cold("uv", service, uv_file, "uv pip sync"),
            pip=cold("pip", service, pip_file, PIP_STEP),
            uv_no_source=cold("uv_no_source", bare, bare / "Dockerfile", "uv pip sync"),
            pip_no_source=cold(
                "pip_no_source", bare, bare / "Dockerfile.pip", "pip install -r requirements/production.txt"
            ),
            added=added,
        )
    finally:
        project_in.write_text(original)
        docker("rmi", tag, check=False)
    uv_steps, pip_steps, tools = median(steps["uv"]), median(steps["pip"]), median(steps["tools"])
    uv_bare, pip_bare = median(steps["uv_no_source"]), median(steps["pip_no_source"])
    uv_build, pip_build, added_build = median(builds["uv"]), median(builds["pip"]), median(builds["added"])
    return [
        Figure(
            key="install",
            title="cold install of the locked dependencies in the production image (uv: with the SBOM)",
            compared_with="`pip install -r` of the same lock, as the previous release built it",
            value=f"{uv_steps:.1f} s vs {pip_steps:.1f} s; without psycopg2's compilation (the same in both) "
            f"{uv_bare:.1f} s vs {pip_bare:.1f} s ({uv_bare / pip_bare:.2f}×); the tools' stage, beside the "
            f"compiler's: {tools:.1f} s; whole cold builds: {uv_build:.0f} s vs {pip_build:.0f} s",
            **bounded(uv_steps / pip_steps, at_most=0.5),
            samples={**builds, **{f"{kind}_step_s": values for kind, values in steps.items()}},
        ),
        Figure(
            key="dependency-rebuild",
            title="rebuild of the production image after a one-line dependency addition (`make lock` not timed)",
            compared_with="the cold build (uv)",
            value=f"{added_build:.1f} s vs {uv_build:.0f} s",
            **bounded(added_build / uv_build, at_most=0.4),
            samples={"added_s": builds["added"], "cold_s": builds["uv"]},
        ),
    ]
