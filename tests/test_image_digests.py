"""Base images pinned by digest: the rendered Dockerfile's PYTHON_IMAGE and
the production compose file's images accept ``name:tag@sha256:...``, and
the digest is enforced, not merely accepted.

An image built here has no digest until a registry gives it one, and no
public registry is reachable on these machines: the tests push the images
the stack runs (official ones where present, else harness.docker's
stand-ins) to a real registry of their own on a loopback port
(harness.servers.RegistryServer), then use the references it pinned. The
registry's log shows that the engine asked for each image by its digest.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from pathlib import Path

import pytest

from harness import docker as docker_env
from harness.docker import docker
from harness.policy import require
from harness.servers import REGISTRY_HINT, RegistryServer, find_registry
from harness.stack import ComposeProject, StackError, build, compose_files, env_file, stack_values

# One xdist worker runs them with the other container tests: they share the engine and the images.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]
# A digest nothing has: a pinned reference that must not be found.
NOWHERE = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def registry(engine):
    """A registry of the tests' own on 127.0.0.1, stopped at the end even on failure."""
    require(find_registry() is not None, f"no container registry to push to: {REGISTRY_HINT}")
    with RegistryServer() as server:
        yield server


@pytest.fixture(scope="module")
def service(render, tmp_path_factory) -> Path:
    """A private copy of the defaults service (Caddy included): the tests write .env into it."""
    copy = tmp_path_factory.mktemp("digests") / "service"
    shutil.copytree(render("defaults"), copy, symlinks=True)
    return copy


@pytest.fixture(scope="module")
def images(service) -> dict[str, docker_env.Image]:
    """The images the stack runs here, by variable (official, or stand-ins)."""
    try:
        return docker_env.stack_images(service / "docker-compose.prod.yml")
    except docker_env.ImageError as error:
        require(False, str(error))


def diff_ids(image: str) -> list[str]:
    """The image's layers, bottom first, by the digests of their contents."""
    return json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout)


def image_id(image: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


def asked_by_digest(registry: RegistryServer, pinned: str) -> bool:
    """Whether the registry was asked for the manifest of a pinned reference
    by its digest (GET, or HEAD from an engine that has the manifest already)."""
    name = pinned.removeprefix(registry.address + "/").partition(":")[0]
    path = f"/v2/{name}/manifests/{pinned.partition('@')[2]}"
    return bool({("GET", path), ("HEAD", path)} & set(registry.requests()))


def test_the_image_builds_from_a_base_pinned_by_digest_and_not_from_another(registry, service, images):
    base = images["PYTHON_IMAGE"].name
    default = docker_env.compose_images(service / "docker-compose.prod.yml")["PYTHON_IMAGE"]
    pinned = docker_env.push(base, f"{registry.address}/{default}")
    assert re.fullmatch(rf"{re.escape(registry.address)}/python:[\w.-]+@sha256:[0-9a-f]{{64}}", pinned)

    tag = f"digesttest-app-{secrets.token_hex(3)}:latest"
    try:
        build(service, tag, pinned)
        # BuildKit asked the registry for exactly that manifest, and the
        # image stands on the base's layers.
        assert asked_by_digest(registry, pinned), registry.log_tail()
        base_layers = diff_ids(base)
        assert diff_ids(tag)[: len(base_layers)] == base_layers

        # Another digest under the same name and tag is refused, by name.
        wrong = f"{pinned.partition('@')[0]}@{NOWHERE}"
        with pytest.raises(StackError) as refused:
            build(service, f"digesttest-wrong-{secrets.token_hex(3)}:latest", wrong)
        assert wrong in str(refused.value)
        assert "not found" in str(refused.value)
    finally:
        docker("rmi", tag, pinned, check=False)


def test_the_stack_runs_and_builds_the_images_pinned_by_digest(registry, service, images):
    compose_file = service / "docker-compose.prod.yml"
    defaults = docker_env.compose_images(compose_file)
    variables = ["POSTGRES_IMAGE", "REDIS_IMAGE", "CADDY_IMAGE"]
    assert set(variables) <= set(defaults), "the defaults service has Caddy"
    pinned = {
        variable: docker_env.push(images[variable].name, f"{registry.address}/{defaults[variable]}")
        for variable in variables
    }

    # The tag moves on after the digest was taken: an image that is not
    # the one pinned is pushed under the same name and tag.
    redis_tag = pinned["REDIS_IMAGE"].partition("@")[0]
    moved = docker(
        "build", "--quiet", "--label=moved=yes", "-", input=f"FROM {images['REDIS_IMAGE'].name}\n"
    ).stdout.strip()
    try:
        docker_env.push(moved, redis_tag)
    finally:
        docker("rmi", moved, check=False)
    repository, _, tag = redis_tag.removeprefix(registry.address + "/").partition(":")
    assert registry.digest(repository, tag) != pinned["REDIS_IMAGE"].partition("@")[2]

    db_tag = f"digesttest-db-{secrets.token_hex(3)}:latest"
    env_file(
        service,
        stack_values(
            "digesttest-app-unused:latest", DB_IMAGE=db_tag, PYTHON_IMAGE=images["PYTHON_IMAGE"].name, **pinned
        ),
    )
    project = ComposeProject(service, "digests", compose_files(service))
    try:
        # Compose keeps each reference whole, digest included.
        config = json.loads(project.compose("config", "--format=json").stdout)["services"]
        assert config["db"]["build"]["args"]["POSTGRES_IMAGE"] == pinned["POSTGRES_IMAGE"]
        assert config["redis"]["image"] == config["cache"]["image"] == pinned["REDIS_IMAGE"]
        assert config["proxy"]["image"] == pinned["CADDY_IMAGE"]
        # So does the development stack, from the same .env.
        development = docker("compose", "--file=docker-compose.yml", "config", "--format=json", cwd=service)
        development_services = json.loads(development.stdout)["services"]
        assert development_services["db"]["image"] == pinned["POSTGRES_IMAGE"]
        assert development_services["redis"]["image"] == pinned["REDIS_IMAGE"]

        # db's image is built from the pinned PostgreSQL image.
        project.compose("build", "db", timeout=1800)
        assert asked_by_digest(registry, pinned["POSTGRES_IMAGE"]), registry.log_tail()
        postgres_layers = diff_ids(images["POSTGRES_IMAGE"].name)
        assert diff_ids(db_tag)[: len(postgres_layers)] == postgres_layers

        # redis, cache and proxy are created from exactly the pinned images,
        # pulled by digest: not from what the tag names now.
        project.compose("up", "--no-start", "--no-deps", "redis", "cache", "proxy", timeout=900)
        containers = project.by_service()
        expected = {"redis": "REDIS_IMAGE", "cache": "REDIS_IMAGE", "proxy": "CADDY_IMAGE"}
        for name, variable in expected.items():
            (container,) = containers[name]
            assert container["Image"] == image_id(images[variable].name), name
            assert container["Config"]["Image"] == pinned[variable], name
            assert asked_by_digest(registry, pinned[variable]), name
    finally:
        project.down()
        docker("rmi", db_tag, *pinned.values(), check=False)
