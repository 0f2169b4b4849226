"""Building the rendered service's production image and running its
production compose file as a project of its own: used by test_stack.py,
test_backup.py, test_import_data.py and by the benchmarks.

The compose files are the rendered ones; which images they run is said in
.env (harness.docker.stack_images). A Caddy stack runs in the service's own
local production mode, docker-compose.local.yml on top of the production
file, as `make prod-local` does: Caddy's internal CA instead of Let's
Encrypt (a test domain cannot get a public certificate), and its ports on
the loopback interface, free ports chosen in .env instead of 80 and 443.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from harness import docker as docker_env
from harness.answers import DOMAIN
from harness.docker import docker, image_values
from harness.policy import require
from harness.servers import free_port
from harness.service import wait_for


class StackError(RuntimeError):
    """A build or a compose command failed; the message carries its output."""


def base_image_for(service: Path) -> str:
    """The Python base image of the service's version: official, or its stand-in."""
    version = re.search(r"^python_version: *'?([\d.]+)", (service / ".copier-answers.yml").read_text(), re.M)
    try:
        return docker_env.python_base_image(version.group(1))
    except docker_env.ImageError as error:
        require(False, str(error))


def copy_service(service: Path, tmp_path_factory, name: str) -> Path:
    """A private copy of a rendered service: the tests write .env into it."""
    copy = tmp_path_factory.mktemp(f"stack-{name}") / "service"
    shutil.copytree(service, copy, symlinks=True)
    return copy


def build(service: Path, tag: str, base: str, *extra: str) -> tuple[float, str]:
    """Build the production target; returns (seconds, plain progress output)."""
    started = time.monotonic()
    result = docker(
        "build",
        "--progress=plain",
        "--target=production",
        f"--build-arg=PYTHON_IMAGE={base}",
        f"--tag={tag}",
        *extra,
        str(service),
        timeout=1800,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise StackError(f"docker build failed:\n{result.stderr[-4000:]}")
    return elapsed, result.stderr


def step_cached(progress: str, needle: str) -> bool:
    """Whether the build step whose instruction contains needle was CACHED."""
    steps = re.findall(r"^#(\d+) \[[^\]]*\] (.*)$", progress, re.M)
    numbers = {number for number, instruction in steps if needle in instruction}
    if not numbers:
        raise StackError(f"no build step runs {needle!r}")
    return all(re.search(rf"^#{number} CACHED$", progress, re.M) for number in numbers)


def image_size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)


def stack_values(image: str, **values: str) -> dict[str, str]:
    """What a production stack's .env must set besides .env.example: fresh
    secrets, a mail backend that needs no server, the app image to run and
    the local production mode's ports."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "APP_DB_PASSWORD": secrets.token_hex(24),
        "REDIS_PASSWORD": secrets.token_hex(24),
        "EMAIL_URL": "consolemail://",
        "IMAGE": image,
        # The local production mode's loopback ports: free ones, since the
        # host's 80 and 443 may be taken (by another stack under test).
        "LOCAL_HTTP_PORT": str(free_port()),
        "LOCAL_HTTPS_PORT": str(free_port()),
        **values,
    }


def env_file(service: Path, values: dict[str, str]) -> str:
    """The service's .env: .env.example with the given values set (added if absent)."""
    lines = (service / ".env.example").read_text().splitlines()
    remaining = dict(values)
    for index, line in enumerate(lines):
        name = line.partition("=")[0].lstrip("# ").strip()
        if name in remaining and "=" in line:
            lines[index] = f"{name}={remaining.pop(name)}"
    lines += [f"{name}={value}" for name, value in remaining.items()]
    text = "\n".join(lines) + "\n"
    (service / ".env").write_text(text)
    return text


def compose_files(service: Path) -> list[str]:
    """The compose files to run: the production one, and the service's local
    production mode on top of it when it has Caddy."""
    files = ["docker-compose.prod.yml"]
    if "reverse_proxy: caddy" in (service / ".copier-answers.yml").read_text():
        files.append("docker-compose.local.yml")
    return files


class ComposeProject:
    """The rendered production compose file, as a uniquely named project."""

    def __init__(self, service: Path, name: str, files: list[str]):
        self.service = service
        self.project = f"stacktest-{name}-{secrets.token_hex(3)}"
        self.files = files

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = [f"--file={file}" for file in self.files]
        command = ["compose", f"--project-name={self.project}", *files, *args]
        return docker(*command, timeout=timeout, check=check, cwd=self.service)

    def containers(self) -> list[dict]:
        """docker inspect of every container of the project, stopped ones too."""
        ids = docker("ps", "-aq", f"--filter=label=com.docker.compose.project={self.project}").stdout.split()
        return json.loads(docker("inspect", *ids).stdout) if ids else []

    def by_service(self) -> dict[str, list[dict]]:
        result: dict[str, list[dict]] = {}
        for container in self.containers():
            result.setdefault(container["Config"]["Labels"]["com.docker.compose.service"], []).append(container)
        return result

    def state(self, service: str) -> dict:
        (container,) = self.by_service()[service]
        return container["State"] | {"RestartCount": container["RestartCount"]}

    def exec(self, service: str, *command: str, check: bool = True, timeout: float = 120) -> str:
        return self.compose("exec", "-T", service, *command, check=check, timeout=timeout).stdout

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", *services, check=False).stdout

    def up(self) -> float:
        """Start every service and wait until all are healthy (or done); returns the seconds it took."""
        started = time.monotonic()
        result = self.compose("up", "--detach", "--wait", "--wait-timeout=300", timeout=900, check=False)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise StackError(f"compose up failed:\n{result.stderr[-3000:]}\n{self.logs()[-8000:]}")
        return elapsed

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout=30", check=False, timeout=600)

    def manage_shell(self, code: str) -> str:
        """What Python code prints, run by `manage.py shell` in the web container."""
        return self.exec("web", "python", "src/manage.py", "shell", "--no-imports", "-c", code).strip()

    def memory(self, service: str | None = None) -> int:
        """Bytes of memory used by the running containers (docker stats): the
        service's, or all of them."""
        filters = [f"--filter=label=com.docker.compose.project={self.project}"]
        if service:
            filters.append(f"--filter=label=com.docker.compose.service={service}")
        ids = docker("ps", "-q", *filters).stdout.split()
        stats = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", *ids).stdout.splitlines()
        units = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
        total = 0
        for line in stats:
            number, unit = re.match(r"([\d.]+)\s*([KMG]iB|B)", line).groups()
            total += float(number) * units[unit]
        return int(total)


class OperatorStack(ComposeProject):
    """A stack driven as its operator drives it: the service's scripts and
    make targets run in its directory, addressing this project."""

    def environment(self, **extra: str) -> dict[str, str]:
        """What the operator's shell needs to address this stack with docker compose."""
        return {
            **os.environ,
            "COMPOSE_FILE": ":".join(self.files),
            "COMPOSE_PROJECT_NAME": self.project,
            **extra,
        }

    def operator(self, *command: str, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess[str]:
        """A command run in the service's directory, as an operator runs it."""
        return subprocess.run(
            command,
            cwd=self.service,
            env=self.environment(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def sql(self, query: str) -> str:
        """A query run by psql in db, as the stack's own database user."""
        command = 'psql -qtAX --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --command="$0"'
        return self.exec("db", "sh", "-c", command, query).strip()

    def started_at(self, service: str) -> str:
        return self.state(service)["StartedAt"]


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one-line error of an operator's command that refused to run."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert "nothing was stopped or changed" in lines[0]
    return lines[0]


@contextlib.contextmanager
def operated_stack(
    rendered: Path, directory: Path, name: str, stack_class: type[OperatorStack] = OperatorStack, **values: str
) -> Iterator[OperatorStack]:
    """A copy of a rendered service in directory/service with its images
    built and its production stack up (values go into its .env); taken down,
    volumes and images included, at the end."""
    problem = docker_env.engine_problem()
    require(problem is None, problem)
    service = directory / "service"
    shutil.copytree(rendered, service, symlinks=True)
    try:
        images = docker_env.stack_images(service / "docker-compose.prod.yml")
    except docker_env.ImageError as error:
        require(False, str(error))
    suffix = secrets.token_hex(3)
    tag, db_tag = f"stacktest-{name}-{suffix}:latest", f"stacktest-{name}-db-{suffix}:latest"
    build(service, tag, images["PYTHON_IMAGE"].name)
    env_file(service, stack_values(tag, DB_IMAGE=db_tag, **values, **image_values(images)))
    project = stack_class(service, name, compose_files(service))
    try:
        project.compose("build", "db", timeout=1800)
        project.up()
        yield project
    finally:
        project.down()
        docker("rmi", tag, db_tag, check=False)


class HttpsStack(OperatorStack):
    """The stack, and HTTPS connections to its proxy checked against Caddy's internal CA."""

    ca: Path

    @functools.cached_property
    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    @functools.cached_property
    def port(self) -> int:
        """Caddy's published HTTPS port (the proxy is never restarted here)."""
        return int(self.compose("port", "proxy", "443").stdout.strip().rpartition(":")[2])

    def connect(self, timeout: float = 10) -> ssl.SSLSocket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.tls.wrap_socket(sock, server_hostname=DOMAIN)

    def raw_request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"", timeout: float = 10):
        """The whole response to one request on a new connection, as bytes."""
        with self.connect(timeout) as sock:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {DOMAIN}", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            if body:
                lines.append(f"Content-Length: {len(body)}")
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            return read_all(sock)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, timeout: float = 10):
        """(status, lower-cased headers, body) of one request on a new connection."""
        return parse_response(self.raw_request(method, path, headers or {}, timeout=timeout))

    def trust_caddy(self, ca: Path) -> None:
        """Waits until Caddy answers HTTPS, checked against its internal CA,
        which is copied to ca."""
        self.ca = ca

        def https_answers():
            ca.write_text(self.exec("proxy", "cat", "/data/caddy/pki/authorities/local/root.crt"))
            return self.request("GET", "/health/")[0] == 200

        wait_for(https_answers, timeout=60, interval=1, message="no HTTPS from Caddy with its internal CA")

    def container_id(self, service: str) -> str:
        return self.compose("ps", "--quiet", service).stdout.strip()


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body
