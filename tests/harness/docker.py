"""The Docker engine and the images the container tests need.

* ``engine_problem()`` says why the engine cannot be used (none running,
  Engine older than 25, no Compose v2), or returns None.
* ``compose_images(compose_file)`` reads the images a rendered compose file
  names, each through its variable: ``${POSTGRES_IMAGE:-postgres:17}``.
* ``stack_images(compose_file)`` makes each of them present and returns the
  values to put in the service's .env: the official image when it is
  present or can be pulled, otherwise a stand-in. The compose file under
  test is the rendered one; only .env says which image runs.
* ``push(image, reference)`` pushes a local image to a registry (a test's
  own, harness.servers.RegistryServer) and returns the reference pinned by
  its digest: ``127.0.0.1:PORT/redis:7.4@sha256:...``.

A default may itself be pinned (``postgres:17@sha256:...``): its stand-in,
which cannot have that digest, is tagged and chosen without it.

Stand-ins, for machines that reach no container registry, are made from
tests/offline/ and tagged under a namespace of their own
(``localhost/template-standin/postgres:17``), never under an official name:
a developer's engine keeps its real ``postgres:17``. The Python base image
is a Debian 13 root filesystem (``make-base-image.sh``: debootstrap, root
only); postgres, redis, caddy and prom/prometheus are built on it from
Debian's packages (``standins/<name>/Dockerfile``; prom/prometheus's is
``standins/prometheus/``). ``server_image("postgres:15")`` gives a server of
an older PostgreSQL, as a service being adopted may run: its stand-in is
built on Debian 12, whose PostgreSQL that is.

Images are kept between runs; a stand-in is rebuilt only when it is missing
(``docker rmi`` it after changing its Dockerfile). A file lock serialises
preparation between concurrent test sessions on one machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OFFLINE = Path(__file__).resolve().parent.parent / "offline"
MIN_ENGINE_MAJOR = 25
# The tests' compose override replaces the proxy's ports with `!override`.
MIN_COMPOSE = (2, 24, 4)
# Debian 13 (trixie), the release the official slim images are built on.
DEBIAN_SUITE = "trixie"
DEBIAN_PYTHON = "3.13"
DEBIAN_POSTGRES = "17"
# The Debian releases stand-ins are built on: release -> (its Python, its PostgreSQL).
DEBIAN_RELEASES = {DEBIAN_SUITE: (DEBIAN_PYTHON, DEBIAN_POSTGRES), "bookworm": ("3.11", "15")}
# Where stand-ins are tagged: a registry host that does not exist, so that
# nothing is ever pulled or pushed under these names.
STAND_IN_NAMESPACE = "localhost/template-standin"
# Stand-ins also carry this label: an image under an official name that has
# it was made by an earlier version of these tests, and is not the real one.
STAND_IN_LABEL = "org.opencontainers.image.description=stand-in built by the template's tests"
# And this one, the digest of the files they were built from.
SOURCE_LABEL = "org.template-standin.source"
STAND_IN_BASE = STAND_IN_NAMESPACE + "/python:{version}-slim-{release}"
# The digest that may end an image reference: name:tag@sha256:...
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# ${NAME:-default}, as the rendered compose files name their images.
IMAGE_VARIABLE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*_IMAGE):-([^}]+)\}$")


class ImageError(RuntimeError):
    """An image could neither be found, pulled nor built here."""


class DockerError(subprocess.CalledProcessError):
    """A failed docker command; its message ends with the command's error output."""

    def __init__(self, result: subprocess.CompletedProcess[str]):
        super().__init__(result.returncode, result.args, result.stdout, result.stderr)

    def __str__(self):
        return f"{super().__str__()}\n{(self.stderr or '')[-3000:]}"


@dataclass(frozen=True)
class Engine:
    server_version: str
    compose_version: str

    @property
    def major(self) -> int:
        return int(re.match(r"\d+", self.server_version).group())


def docker(*args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; on failure the error carries its output."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise DockerError(result)
    return result


def engine() -> Engine | None:
    """The running engine and Compose plugin, or None when either is missing."""
    if not shutil.which("docker"):
        return None
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
        compose = docker("compose", "version", "--short", timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return None
    if info.returncode != 0 or compose.returncode != 0:
        return None
    return Engine(info.stdout.strip(), compose.stdout.strip().removeprefix("v"))


def engine_problem() -> str | None:
    """Why the container tests cannot run here, or None."""
    found = engine()
    if found is None:
        return (
            "no working Docker engine with the Compose v2 plugin "
            "(`docker info` and `docker compose version` must work; tests/offline/install-docker.sh installs one)"
        )
    if found.major < MIN_ENGINE_MAJOR:
        return f"Docker Engine {found.server_version} is too old: the compose file needs {MIN_ENGINE_MAJOR} or later"
    compose = tuple(int(part) for part in re.findall(r"\d+", found.compose_version)[:3])
    if compose[:1] != (2,) or compose < MIN_COMPOSE:
        wanted = ".".join(map(str, MIN_COMPOSE))
        return f"Docker Compose {found.compose_version}: the tests need Compose v2, {wanted} or later (!override)"
    return None


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, timeout=60, check=False).returncode == 0


def is_stand_in(name: str) -> bool:
    """Whether these tests made the image: the server stand-ins carry
    STAND_IN_LABEL, the imported base image says so in its comment."""
    found = docker("image", "inspect", "--format", "{{json .Config.Labels}} {{.Comment}}", name, check=False).stdout
    return "stand-in" in (found or "")


def without_digest(reference: str) -> str:
    """The name and tag of an image reference: postgres:17@sha256:... -> postgres:17."""
    return DIGEST.sub("", reference)


def stand_in_name(official: str) -> str:
    """The stand-in's tag for an official image: postgres:17 -> localhost/template-standin/postgres:17
    (a stand-in has an official image's tag, never its digest)."""
    return f"{STAND_IN_NAMESPACE}/{without_digest(official).removeprefix('library/')}"


def pull(name: str) -> bool:
    """Pull from a registry; False when none answers (no network, no registry)."""
    try:
        return docker("pull", "--quiet", name, timeout=600, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """One test session at a time prepares images on this machine."""
    path = Path(tempfile.gettempdir()) / "template-tests-docker-images.lock"
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (one-line or deb822 sources)."""
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.sources")]
    sources += Path("/etc/apt/sources.list.d").glob("*.list")
    for source in sources:
        with contextlib.suppress(OSError):
            match = re.search(r"^(?:URIs:\s*|deb\s+)(https?://\S+/debian)/?\s", source.read_text(), re.MULTILINE)
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Image:
    """The image a stack runs for one of its image variables, and where it came from."""

    name: str
    source: str  # "present", "pulled" or "stand-in"


def _official(name: str) -> Image | None:
    """The official image when it is here (and real) or can be pulled."""
    if image_exists(name) and not is_stand_in(name):
        return Image(name, "present")
    if pull(name):
        return Image(name, "pulled")
    return None


def _python_base(version: str, release: str = DEBIAN_SUITE) -> Image:
    official = f"python:{version}-slim-{release}"
    if found := _official(official):
        return found
    stand_in = STAND_IN_BASE.format(version=version, release=release)
    if image_exists(stand_in):
        return Image(stand_in, "stand-in")
    debian_python = DEBIAN_RELEASES[release][0]
    if version != debian_python:
        raise ImageError(f"{official} cannot be pulled, and Debian {release} has Python {debian_python}, not {version}")
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        raise ImageError(f"{official} cannot be pulled, and making a stand-in needs root and debootstrap")
    started = time.monotonic()
    result = subprocess.run(
        [OFFLINE / "make-base-image.sh", stand_in, debian_mirror(), release],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ImageError(f"making the stand-in base image {stand_in} failed:\n{result.stderr[-3000:]}")
    print(f"built stand-in base image {stand_in} in {time.monotonic() - started:.0f} s")
    return Image(stand_in, "stand-in")


def python_base_image(version: str) -> str:
    """The image for the Dockerfile's PYTHON_IMAGE build argument."""
    with machine_lock():
        return _python_base(version).name


def _stand_in_build(name: str) -> tuple[str, dict[str, str], str]:
    """The stand-in's build directory, build arguments and Debian release for an official image name."""
    repository, _, tag = without_digest(name).removeprefix("library/").partition(":")
    if repository == "postgres":
        major = tag.split(".")[0].split("-")[0]
        releases = [release for release, (_, postgres) in DEBIAN_RELEASES.items() if postgres == major]
        if not releases:
            available = ", ".join(f"{postgres} ({release})" for release, (_, postgres) in DEBIAN_RELEASES.items())
            raise ImageError(f"{name} cannot be pulled, and Debian has PostgreSQL {available}, not {major}")
        pgdata = "/var/lib/postgresql/data" if int(major) < 18 else f"/var/lib/postgresql/{major}/docker"
        return "postgres", {"PG_MAJOR": major, "PGDATA": pgdata}, releases[0]
    if repository in ("redis", "caddy"):
        return repository, {}, DEBIAN_SUITE
    if repository == "prom/prometheus":
        return "prometheus", {}, DEBIAN_SUITE
    raise ImageError(f"{name} cannot be pulled, and there is no stand-in for it")


def _stand_in_source(directory: Path, args: dict[str, str]) -> str:
    """A digest of what a stand-in is built from: its files and build arguments."""
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode())
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _server_image(name: str, base: str | None = None) -> Image:
    """The official image, or its stand-in built on base (the stack's Python
    base image) when its Debian release is trixie, else on that release's.
    A stand-in built from other files (an older version of these tests) is
    built again."""
    if found := _official(name):
        return found
    stand_in = stand_in_name(name)
    directory, args, release = _stand_in_build(name)
    source = _stand_in_source(OFFLINE / "standins" / directory, args)
    built_from = docker(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{SOURCE_LABEL}"}}}}', stand_in, check=False
    )
    if built_from.returncode != 0 or built_from.stdout.strip() != source:
        if base is None or release != DEBIAN_SUITE:
            base = _python_base(DEBIAN_RELEASES[release][0], release).name
        build_args = [f"--build-arg={key}={value}" for key, value in {"BASE_IMAGE": base, **args}.items()]
        labels = [f"--label={STAND_IN_LABEL}", f"--label={SOURCE_LABEL}={source}"]
        docker("build", "--quiet", *labels, *build_args, "-t", stand_in, str(OFFLINE / "standins" / directory))
    return Image(stand_in, "stand-in")


def server_image(name: str) -> Image:
    """A server image outside any stack (``postgres:15``): official, or its stand-in."""
    with machine_lock():
        return _server_image(name)


def load_compose(compose_file: Path) -> dict:
    """A compose file as data; Compose's merge tags (!override, !reset) read
    as the value they tag."""
    import yaml  # copier's dependency

    class ComposeLoader(yaml.SafeLoader):
        pass

    def tagged(loader, _suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_scalar(node)

    ComposeLoader.add_multi_constructor("!", tagged)
    return yaml.load(compose_file.read_text(), Loader=ComposeLoader)


def compose_images(compose_file: Path) -> dict[str, str]:
    """variable -> default image of every image the compose file names (as
    ${VARIABLE:-default}), the build argument PYTHON_IMAGE included."""
    services = load_compose(compose_file)["services"]
    images = {}
    for name, spec in services.items():
        build = spec.get("build")
        # A built service's own image is the service's; its base is a build argument.
        references = list(build.get("args", {}).values()) if isinstance(build, dict) else [spec.get("image")]
        for reference in filter(None, references):
            match = IMAGE_VARIABLE.match(str(reference))
            if match:
                images[match.group(1)] = match.group(2)
            elif not build:
                raise ImageError(f"{compose_file.name}: the image of {name}, {reference!r}, is not a variable")
    return images


def stack_images(compose_file: Path) -> dict[str, Image]:
    """Makes every image of the compose file present; returns variable -> the
    image to run (what the service's .env must say)."""
    images = compose_images(compose_file)
    python = re.fullmatch(r"python:(\d+\.\d+)-slim-\w+", without_digest(images["PYTHON_IMAGE"]))
    if not python:
        raise ImageError(f"unexpected default base image {images['PYTHON_IMAGE']!r}")
    with machine_lock():
        base = _python_base(python.group(1))
        chosen = {"PYTHON_IMAGE": base}
        for variable, official in images.items():
            if variable != "PYTHON_IMAGE":
                chosen[variable] = _server_image(official, base.name)
    return chosen


def push(image: str, reference: str) -> str:
    """Push a local image to a registry as reference (``HOST:PORT/name:tag``);
    returns the reference pinned by the digest the registry gave it
    (``HOST:PORT/name:tag@sha256:...``). The tag made for the push is
    removed again, so that the engine has nothing under that name: using
    the pinned reference pulls it from the registry."""
    docker("tag", image, reference)
    try:
        docker("push", "--quiet", reference)
        digests = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", reference).stdout)
    finally:
        docker("rmi", reference, check=False)
    repository = reference.rpartition(":")[0]
    pinned = [digest for digest in digests or [] if digest.startswith(repository + "@")]
    if not pinned:
        raise ImageError(f"the registry gave {reference} no digest (RepoDigests: {digests})")
    return f"{reference}@{pinned[0].partition('@')[2]}"


def image_values(images: dict[str, Image]) -> dict[str, str]:
    """The .env lines of stack_images' answer."""
    return {variable: image.name for variable, image in images.items()}


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge: reachable from every container and from the host."""
    networks = json.loads(docker("network", "inspect", "bridge").stdout)
    return networks[0]["IPAM"]["Config"][0]["Gateway"]
