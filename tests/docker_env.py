"""The Docker engine and the images the container tests need.

* ``engine_problem()`` says why the engine cannot be used (none running,
  Engine older than 25, no Compose v2), or returns None.
* ``python_base_image(version)`` returns the base image to pass to the
  rendered Dockerfile (``--build-arg PYTHON_IMAGE=...``): the official
  ``python:<version>-slim-trixie`` when it is present or can be pulled,
  otherwise a stand-in made once per machine from a Debian 13 root
  filesystem (``docker/make-base-image.sh``: debootstrap, root only).
* ``ensure_images(names, base)`` makes every image a compose file names
  (``postgres:17``, ``redis:7.4``, ``caddy:2``) present: pulled when a
  registry answers, otherwise a stand-in built from Debian's packages on the
  base image (``docker/<name>/Dockerfile``) and tagged with the very name the
  compose file uses, so the compose file under test is the rendered one.

Images are kept between runs; a stand-in is rebuilt only when it is missing
(``docker rmi`` it after changing its Dockerfile). A file lock serialises
preparation between concurrent test sessions on one machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "docker"
MIN_ENGINE_MAJOR = 25
# The tests' compose override replaces the proxy's ports with `!override`.
MIN_COMPOSE = (2, 24, 4)
# Debian 13 (trixie), the release the official slim images are built on.
DEBIAN_SUITE = "trixie"
DEBIAN_PYTHON = "3.13"
DEBIAN_POSTGRES = "17"
# Stand-ins carry this label, so they can be told from the real images.
STAND_IN_LABEL = "org.opencontainers.image.description=stand-in built by the template's tests"
STAND_IN_BASE = "localhost/python:{version}-slim-trixie"


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
            "(`docker info` and `docker compose version` must work; .ci/install-docker.sh installs one)"
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
    labels = docker("image", "inspect", "--format", "{{json .Config.Labels}}", name, check=False).stdout
    return "stand-in" in (labels or "")


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


def python_base_image(version: str) -> str:
    """The image for the Dockerfile's PYTHON_IMAGE build argument."""
    official = f"python:{version}-slim-{DEBIAN_SUITE}"
    stand_in = STAND_IN_BASE.format(version=version)
    with machine_lock():
        for name in (official, stand_in):
            if image_exists(name):
                return name
        if pull(official):
            return official
        if version != DEBIAN_PYTHON:
            raise ImageError(
                f"{official} cannot be pulled, and Debian {DEBIAN_SUITE} has Python {DEBIAN_PYTHON}, not {version}"
            )
        if os.geteuid() != 0 or not shutil.which("debootstrap"):
            raise ImageError(f"{official} cannot be pulled, and making a stand-in needs root and debootstrap")
        started = time.monotonic()
        result = subprocess.run(
            [HERE / "make-base-image.sh", stand_in, debian_mirror()], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ImageError(f"making the stand-in base image {stand_in} failed:\n{result.stderr[-3000:]}")
        print(f"built stand-in base image {stand_in} in {time.monotonic() - started:.0f} s")
        return stand_in


def _stand_in_build(name: str) -> tuple[str, dict[str, str]]:
    """The stand-in's build directory and build arguments for an image name."""
    repository, _, tag = name.partition(":")
    if repository in ("postgres", "library/postgres"):
        major = tag.split(".")[0].split("-")[0]
        if major != DEBIAN_POSTGRES:
            raise ImageError(
                f"{name} cannot be pulled, and Debian {DEBIAN_SUITE} has PostgreSQL {DEBIAN_POSTGRES}, not {major}"
            )
        pgdata = "/var/lib/postgresql/data" if int(major) < 18 else f"/var/lib/postgresql/{major}/docker"
        return "postgres", {"PG_MAJOR": major, "PGDATA": pgdata}
    if repository in ("redis", "caddy"):
        return repository, {}
    raise ImageError(f"{name} cannot be pulled, and there is no stand-in for it")


def ensure_images(names: Iterable[str], base: str) -> dict[str, str]:
    """Make each image present; returns name -> "present", "pulled" or "stand-in"."""
    how = {}
    with machine_lock():
        for name in names:
            if image_exists(name):
                how[name] = "stand-in" if is_stand_in(name) else "present"
            elif pull(name):
                how[name] = "pulled"
            else:
                directory, args = _stand_in_build(name)
                build_args = [f"--build-arg={key}={value}" for key, value in {"BASE_IMAGE": base, **args}.items()]
                docker("build", "--quiet", f"--label={STAND_IN_LABEL}", *build_args, "-t", name, str(HERE / directory))
                how[name] = "stand-in"
    return how


def compose_images(compose_file: Path) -> list[str]:
    """The images of a compose file's services that are not built from the service's Dockerfile."""
    import yaml  # copier's dependency

    services = yaml.safe_load(compose_file.read_text())["services"]
    return sorted({spec["image"] for spec in services.values() if "image" in spec and "build" not in spec})


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge: reachable from every container and from the host."""
    networks = json.loads(docker("network", "inspect", "bridge").stdout)
    return networks[0]["IPAM"]["Config"][0]["Gateway"]
