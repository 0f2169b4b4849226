"""Figures 9-11: the production image and the production compose stack.

Uses the engine and images of the container tests (harness.docker): the
official base image when it can be pulled, otherwise the local stand-in.
"""

import secrets

import yaml
from copier import run_copy

from benchmarks.measure import alternate, log, median
from benchmarks.results import Figure
from harness.answers import ROOT
from harness.docker import DEBIAN_SUITE, docker, image_values, is_stand_in, stack_images
from harness.stack import ComposeProject, build, compose_files, env_file, image_size, stack_values, step_cached


def megabytes(size):
    return f"{size / 1e6:.0f} MB"


def run(work, rounds, answers):
    """Cold build against a rebuild after a one-line change, image size, `up` to healthy."""
    service = work / "service"
    log("docker: rendering the default service and preparing the base and service images")
    run_copy(str(ROOT), service, data=answers, defaults=True, unsafe=True, vcs_ref="HEAD", quiet=True)
    recorded = yaml.safe_load((service / ".copier-answers.yml").read_text())
    # The official images where they can be had, else the stand-ins; the
    # stack's .env names whichever it is.
    images = image_values(stack_images(service / "docker-compose.prod.yml"))
    base = images["PYTHON_IMAGE"]
    tag = f"template-bench-{secrets.token_hex(3)}:latest"
    # Its own db image: one left under the default name may be out of date.
    db_tag = f"template-bench-db-{secrets.token_hex(3)}:latest"
    urls = service / "src" / recorded["package_name"] / "urls.py"
    reused = []

    def cold():
        return build(service, tag, base, "--no-cache")[0]

    def rebuild():
        # Unique, or the build cache may hold this very change from an earlier run.
        urls.write_text(urls.read_text() + f"# a one-line change {secrets.token_hex(8)}\n")
        seconds, progress = build(service, tag, base)
        reused.append(step_cached(progress, "uv pip sync"))
        return seconds

    ups, memory = [], []
    try:
        build(service, tag, base)  # the build cache a rebuild starts from
        log(f"docker: {rounds} rounds of cold build / rebuild after a one-line change")
        builds = alternate(rounds, cold=cold, rebuild=rebuild)
        base_size = image_size(base)
        size = image_size(tag)
        env_file(service, stack_values(tag, DB_IMAGE=db_tag, **images))
        files = compose_files(service)
        ComposeProject(service, "bench", files).compose("build", "db", timeout=1800)
        log(f"docker: {rounds} rounds of `docker compose up` to all healthy, then down")
        for _ in range(rounds):
            project = ComposeProject(service, "bench", files)
            try:
                ups.append(project.up())
                memory.append(project.memory())
            finally:
                project.down()
    finally:
        docker("rmi", tag, db_tag, check=False)
    cold_s, rebuild_s = median(builds["cold"]), median(builds["rebuild"])
    # The official image's name, whatever this machine used in its place.
    official = f"`python:{recorded['python_version']}-slim-{DEBIAN_SUITE}`"
    if is_stand_in(base):
        base_described = f"its base image, a stand-in for {official} built from Debian's packages (no registry)"
    else:
        base_described = f"its base image {official}"
    return [
        Figure(
            key="rebuild",
            title="rebuild of the production image after a one-line Python change",
            compared_with="the cold build (`--no-cache`: every layer rebuilt; uv's download cache warm)",
            value=f"{rebuild_s:.1f} s vs {cold_s:.0f} s; dependency layer reused: "
            f"{'every time' if all(reused) else 'NOT every time'}",
            ratio=rebuild_s / cold_s,
            target="≤ 0.15×",
            met=rebuild_s / cold_s <= 0.15 and all(reused),
            samples={**builds, "dependency_layer_reused": reused},
        ),
        Figure(
            key="image",
            title="production image size",
            compared_with=base_described,
            value=f"{megabytes(size)} = {megabytes(base_size)} + {megabytes(size - base_size)}",
            ratio=size / base_size,
            target="≤ 150 MB added",
            met=size - base_size <= 150e6,
            samples={"base_image": base, "base_bytes": base_size, "image_bytes": size},
        ),
        Figure(
            key="up",
            title="`docker compose up` to all healthy (images present; db, redis, migrate, web, worker, beat, Caddy)",
            compared_with="—",
            value=f"{median(ups):.1f} s (stack memory at idle {megabytes(median(memory))})",
            target="report; ≤ 30 s",
            met=median(ups) <= 30,
            samples={"up_s": ups, "memory_bytes": memory},
        ),
    ]
