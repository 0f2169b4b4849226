"""What the production image installs, on a real Docker engine: exactly the
hashed lock, the same files in every build of one commit, nothing when a
hash is wrong, and an SBOM that lists it.

Each cold build runs with --no-cache after the engine's build cache mounts
(uv's and pip's download caches) are pruned, so every file is downloaded
again and checked against the lock.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.answers import answers_for, python_version_of
from harness.docker import docker
from harness.service import make
from harness.stack import StackError, base_image_for, build, copy_service

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

ADDED = "django-filter==25.2"

# Run in the image: every installed distribution of /opt/venv with its
# version and the sha256 of its RECORD (which lists every installed file
# with its own hash), and the environment the lock's markers are read in.
INSTALLED = """
import hashlib, importlib.metadata, json, os, platform, sys
dists = {}
for dist in importlib.metadata.distributions(path=[p for p in sys.path if p.startswith("/opt/venv")]):
    record = dist.read_text("RECORD") or ""
    dists[dist.metadata["Name"].lower().replace("_", "-")] = [dist.version, hashlib.sha256(record.encode()).hexdigest()]
environment = {
    "implementation_name": sys.implementation.name,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_system": platform.system(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
print(json.dumps({"dists": dists, "environment": environment}))
"""


# Run in the image: what psycopg2's C extension holds. The C library's
# assertion handler is linked only when NDEBUG, one of the interpreter's
# release flags, was missing; a debug section only without -g0.
DRIVER = """
import json, pathlib, psycopg2._psycopg as extension
data = pathlib.Path(extension.__file__).read_bytes()
print(json.dumps({"asserts": b"__assert_fail" in data, "debug": b".debug_info" in data}))
"""


def prune_download_caches() -> None:
    """Empties the cache mounts (uv's and pip's) of every build on the engine."""
    docker("builder", "prune", "--force", "--filter", "type=exec.cachemount")


def run_python(image: str, code: str) -> dict:
    """What code, run by the image's Python, prints as JSON."""
    return json.loads(docker("run", "--rm", "--entrypoint=python", image, "-c", code).stdout)


def installed(image: str) -> dict:
    return run_python(image, INSTALLED)


def sbom(image: str) -> dict:
    return json.loads(docker("run", "--rm", "--entrypoint=cat", image, "/app/sbom.cdx.json").stdout)


def lock_entries(lock: str, environment: dict) -> dict[str, str]:
    """{name: version} of the lock's requirements whose marker holds in environment."""
    from packaging.markers import Marker

    entries = {}
    for name, version, marker in re.findall(r"^([A-Za-z0-9][\w.-]*)==([^\s;\\]+)(?: ; ([^\\\n]+?))? \\$", lock, re.M):
        if not marker or Marker(marker).evaluate(environment):
            entries[name.lower().replace("_", "-")] = version
    return entries


@pytest.fixture(scope="module")
def cold_builds(engine, render, tmp_path_factory):
    """The s3 and Sentry variant (the most packages) built twice from the same
    files, each cold; yields (service, first image, second image, seconds)."""
    service = copy_service(render("s3-no-proxy-no-beat-sentry"), tmp_path_factory, "cold")
    base = base_image_for(service)
    tags = ["supplytest-first:latest", "supplytest-second:latest"]
    seconds = []
    try:
        for tag in tags:
            prune_download_caches()
            elapsed, _ = build(service, tag, base, "--no-cache")
            seconds.append(elapsed)
        yield service, *tags, seconds
    finally:
        for tag in tags:
            docker("rmi", tag, check=False)


def test_two_cold_builds_install_exactly_the_locked_files(cold_builds, figure):
    service, first, second, seconds = cold_builds
    figure(
        "cold builds of the production image (--no-cache, caches pruned)",
        " s, ".join(f"{s:.0f}" for s in seconds) + " s",
    )
    one, two = installed(first), installed(second)

    assert one["dists"] == two["dists"]
    # Exactly the lock's packages for the image's platform, at the lock's versions.
    lock = (service / "requirements/production.txt").read_text()
    expected = lock_entries(lock, one["environment"])
    assert {name: version for name, (version, _) in one["dists"].items()} == expected
    assert "pip" not in one["dists"] and "uv" not in one["dists"]


def test_the_sbom_lists_exactly_the_production_lock(cold_builds):
    service, first, _, _ = cold_builds
    document = sbom(first)

    assert document["bomFormat"] == "CycloneDX"
    assert re.fullmatch(r"1\.[4-9]", document["specVersion"])
    components = {c["name"].lower().replace("_", "-"): c["version"] for c in document["components"]}
    assert all(
        c["purl"] == f"pkg:pypi/{c['name'].lower().replace('_', '-')}@{c['version']}" for c in document["components"]
    )
    environment = installed(first)["environment"]
    assert components == lock_entries((service / "requirements/production.txt").read_text(), environment)
    # Built twice from one commit, the same document: no timestamp or random serial.
    assert sbom(cold_builds[2]) == document


def test_the_driver_is_compiled_with_the_interpreters_flags_without_debug_information(cold_builds):
    _, first, _, _ = cold_builds
    assert run_python(first, DRIVER) == {"asserts": False, "debug": False}


def test_a_tampered_hash_fails_the_build_naming_the_package(engine, render, tmp_path_factory):
    service = copy_service(render("defaults"), tmp_path_factory, "tampered")
    lock = service / "requirements/production.txt"
    text = lock.read_text()
    # As if the release had been replaced on the index: no file matches.
    block = re.search(r"^whitenoise==\S+ \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", text, re.M)
    tampered = re.sub(r"[0-9a-f]{64}", "0" * 64, block.group(0))
    lock.write_text(text.replace(block.group(0), tampered))

    tag = "supplytest-tampered:latest"
    docker("rmi", tag, check=False)  # left by an earlier run
    with pytest.raises(StackError) as failure:
        build(service, tag, base_image_for(service), "--no-cache")

    message = str(failure.value)
    assert re.search(r"[Hh]ash mismatch for `whitenoise==", message), message[-2000:]
    assert docker("image", "inspect", tag, check=False).returncode != 0


def locked(service: Path, python_version: str) -> None:
    result = make(service, "lock", python_version=python_version)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_dependency_added_then_removed_reaches_the_image_and_leaves_it(engine, render, tmp_path_factory, figure):
    answers = answers_for("defaults")
    service = copy_service(render("defaults"), tmp_path_factory, "added")
    base = base_image_for(service)
    tag = "supplytest-added:latest"
    project_in = service / "requirements/project.in"
    original = project_in.read_text()
    try:
        build(service, tag, base)
        project_in.write_text(original + f"{ADDED}\n")
        locked(service, python_version_of(answers))
        build(service, tag, base)
        assert installed(tag)["dists"]["django-filter"][0] == "25.2"
        assert any(c["name"] == "django-filter" for c in sbom(tag)["components"])
        docker("run", "--rm", "--entrypoint=python", tag, "-c", "import django_filters")

        project_in.write_text(original)
        locked(service, python_version_of(answers))
        build(service, tag, base)
        assert "django-filter" not in installed(tag)["dists"]
        assert not any(c["name"] == "django-filter" for c in sbom(tag)["components"])
    finally:
        docker("rmi", tag, check=False)
