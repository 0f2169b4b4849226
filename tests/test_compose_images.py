"""Every image the rendered compose files run or build from is chosen in
.env: a registry mirror, a digest or a local base image is one line there,
never an edit of a template-owned file."""

import re

import pytest

from harness.answers import PYTHON_VERSION, VARIANTS
from harness.docker import load_compose

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml", "docker-compose.local.yml")
# How the compose files name an image: ${VARIABLE:-default}.
VARIABLE = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-([^}]+)\}")


def image_references(path):
    """(where, reference) of every image: a service's `image:` and each of its build arguments."""
    services = load_compose(path).get("services", {})
    for name, spec in services.items():
        if "image" in spec:
            yield f"{path.name}: {name}.image", spec["image"]
        build = spec.get("build")
        if isinstance(build, dict):
            for argument, value in build.get("args", {}).items():
                yield f"{path.name}: {name}.build.args.{argument}", value


def listed_in_env_example(service):
    """NAME -> value of every variable .env.example sets or shows commented out."""
    text = (service / ".env.example").read_text()
    return dict(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_image_and_base_image_is_a_variable_of_env_example_with_the_same_default(render, variant):
    service = render(variant)
    listed = listed_in_env_example(service)
    files = [service / name for name in COMPOSE_FILES if (service / name).exists()]
    references = [reference for path in files for reference in image_references(path)]
    # The scan sees the images of both stacks and the bases of both builds.
    seen = {where.partition(": ")[2] for where, _ in references}
    assert {"db.image", "redis.image", "web.build.args.PYTHON_IMAGE", "db.build.args.POSTGRES_IMAGE"} <= seen
    problems = []
    for where, reference in references:
        match = VARIABLE.fullmatch(str(reference))
        if not match:
            problems.append(f"{where}: {reference!r} is not ${{VARIABLE:-default}}")
        elif listed.get(match.group(1)) != match.group(2):
            problems.append(
                f"{where}: .env.example has {match.group(1)}={listed.get(match.group(1))!r}, "
                f"the compose file defaults to {match.group(2)!r}"
            )
    assert problems == []


def test_the_app_image_is_built_from_python_image_in_both_compose_files(render):
    service = render("defaults")
    for name in ("docker-compose.yml", "docker-compose.prod.yml"):
        spec = load_compose(service / name)["services"]["web"]
        assert spec["build"]["args"]["PYTHON_IMAGE"] == f"${{PYTHON_IMAGE:-python:{PYTHON_VERSION}-slim-trixie}}", name
