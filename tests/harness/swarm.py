"""The rendered service on Docker Swarm, for test_swarm.py and
test_swarm_nodes.py: a swarm on this engine (a second node in a container
when a test needs one), the service's images with a marker of their
release, and a deployment driven with `make swarm-deploy`.

* ``swarm()`` makes this engine a swarm manager, advertising its address on
  Docker's default bridge (where a second node reaches it), and leaves the
  swarm afterwards unless the engine was in one before.
* ``second_node()`` runs a Docker engine from Debian's packages in a
  privileged container (tests/offline/swarm-node) and joins it as a worker.
* ``deployed_service()`` copies a rendered service, adds a project app with
  a slow, counted task, builds the images, writes .env, creates the Docker
  secrets and labels the manager for the data services and the proxy; it
  yields a ``Deployment`` and removes all of it afterwards.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness import docker as docker_env
from harness import service as service_tools
from harness.answers import DOMAIN, package_of
from harness.docker import bridge_gateway, docker, image_values
from harness.policy import require
from harness.servers import free_port
from harness.stack import build, env_file

NODE_DOCKERFILE = Path(__file__).resolve().parent.parent / "offline" / "swarm-node"
COMPLETED = "swarm:completed"

APP_TASKS = f'''"""Tasks for the template's Swarm tests: slow, idempotent, counted."""

import time

import redis
from celery import shared_task
from django.conf import settings


@shared_task(bind=True, ignore_result=True)
def slow(self, seconds):
    """Sleeps, then counts one more completion of this task id."""
    time.sleep(seconds)
    redis.Redis.from_url(settings.REDIS_URL).hincrby("{COMPLETED}", self.request.id, 1)
'''

# A migration that only a later image has: it counts its own runs.
APP_MIGRATION = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = []

    operations = [
        migrations.RunSQL(
            "create table if not exists swarm_migration_runs (run serial primary key);"
            "insert into swarm_migration_runs default values;",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
"""


def docker_json(*args: str) -> list[dict]:
    """Lines of `docker ... --format '{{json .}}'`."""
    output = docker(*args, "--format", "{{json .}}").stdout
    return [json.loads(line) for line in output.splitlines() if line.strip()]


@dataclass
class Deployment:
    service: Path
    stack: str
    slug: str
    images: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def deploy(self, image: str, **values: str) -> subprocess.CompletedProcess[str]:
        """`make swarm-deploy`, with IMAGE (and any other value) from the environment."""
        return subprocess.run(
            ["make", "--no-print-directory", "swarm-deploy"],
            cwd=self.service,
            env={**os.environ, "IMAGE": image, **values},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def tasks(self, service: str) -> list[dict]:
        return docker_json("service", "ps", "--no-trunc", f"{self.stack}_{service}")

    def running(self, service: str) -> list[dict]:
        """Its tasks that run and should (one on a lost node still says Running)."""
        tasks = self.tasks(service)
        return [
            task for task in tasks if task["DesiredState"] == "Running" and task["CurrentState"].startswith("Running")
        ]

    def spec(self, service: str) -> dict:
        return json.loads(docker("service", "inspect", f"{self.stack}_{service}").stdout)[0]

    def containers(self, service: str) -> list[str]:
        """The service's containers on this engine (the manager)."""
        label = f"label=com.docker.swarm.service.name={self.stack}_{service}"
        return docker("ps", "--quiet", "--filter", label).stdout.split()

    def exec(self, service: str, *command: str) -> str:
        container = self.containers(service)[0]
        return docker("exec", container, *command, timeout=300).stdout

    def shell(self, code: str) -> str:
        return self.exec("web", "python", "src/manage.py", "shell", "--no-imports", "-c", code).strip()

    def redis(self, *command: str) -> str:
        auth = 'REDISCLI_AUTH="$(cat /run/secrets/redis-password)" redis-cli "$@"'
        return self.exec("redis", "sh", "-c", auth, "-", *command)

    def sql(self, query: str) -> str:
        command = 'psql -qtAX --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --command="$0"'
        return self.exec("db", "sh", "-c", command, query).strip()

    def get(self, path: str) -> tuple[int, bytes]:
        """A GET through the proxy: HTTPS on its published port, under the site's name."""
        return https_get(int(self.values["HTTPS_PORT"]), path)


def https_get(port: int, path: str) -> tuple[int, bytes]:
    # The certificate comes from Caddy's own CA; trusting it is tested with
    # the compose stack. A new connection per request, as clients come.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=15), server_hostname=DOMAIN)
    connection = http.client.HTTPConnection(DOMAIN, port, timeout=15)
    connection.sock = sock
    try:
        connection.request("GET", path, headers={"Host": DOMAIN})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Load:
    """Steady requests through the proxy from two threads, each answer
    recorded: the static release.txt (which image served it) and the admin's
    login page (a Django view)."""

    def __init__(self, deployment: Deployment):
        self.deployment = deployment
        self.answers: list[tuple[float, str, int | str, str]] = []
        self.stopping = threading.Event()
        paths = ("/static/release.txt", "/admin/login/")
        self.threads = [threading.Thread(target=self.run, args=(path,)) for path in paths]

    def run(self, path: str) -> None:
        while not self.stopping.is_set():
            try:
                status, body = self.deployment.get(path)
                release = body.decode().strip() if path.endswith("release.txt") and status == 200 else ""
                self.answers.append((time.monotonic(), path, status, release))
            except OSError as error:
                self.answers.append((time.monotonic(), path, type(error).__name__, ""))
            time.sleep(0.05)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def failed(self, since: float = 0) -> list[tuple]:
        return [answer for answer in self.answers if answer[2] != 200 and answer[0] >= since]

    def summary(self) -> str:
        return f"{len(self.answers)} / {len(self.failed())}"

    def releases(self) -> list[str]:
        """The images that served release.txt, in the order they did, repeats collapsed."""
        seen: list[str] = []
        for *_, release in self.answers:
            if release and (not seen or seen[-1] != release):
                seen.append(release)
        return seen


@dataclass
class Disruption:
    """What steady load saw of a disruption: its answers, when the
    disruption began and how long it (and the recovery awaited) took."""

    load: Load
    started: float
    seconds: float
    outcome: object = None


def under_load(deployment: Deployment, disrupt, recovered=None, message: str = "recovery") -> Disruption:
    """Runs disrupt() after 3 s of steady load through the proxy, then waits
    for recovered() when given; the load goes on 3 s more."""
    with Load(deployment) as load:
        time.sleep(3)
        started = time.monotonic()
        outcome = disrupt()
        if recovered:
            service_tools.wait_for(recovered, timeout=300, interval=1, message=message)
        seconds = time.monotonic() - started
        time.sleep(3)
    return Disruption(load, started, seconds, outcome)


@contextlib.contextmanager
def swarm() -> Iterator[str]:
    """This engine as a swarm manager; yields its node id."""
    problem = docker_env.engine_problem()
    require(problem is None, problem)
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    joined = state != "active"
    if joined:
        docker("swarm", "init", "--advertise-addr", bridge_gateway())
    try:
        yield docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    finally:
        if joined:
            docker("swarm", "leave", "--force", check=False)


@contextlib.contextmanager
def second_node(name: str, images: list[str]) -> Iterator[str]:
    """A worker node in a privileged container, with these images loaded
    (it has no registry to pull them from); yields its node id."""
    base = docker_env.python_base_image("3.13")
    tag = f"{name}:latest"
    docker("build", "--quiet", f"--build-arg=BASE={base}", f"--tag={tag}", str(NODE_DOCKERFILE), timeout=900)
    docker("run", "--detach", "--privileged", f"--name={name}", f"--hostname={name}", tag)
    node = None
    try:
        service_tools.wait_for(
            lambda: docker("exec", name, "docker", "info", check=False).returncode == 0,
            timeout=60,
            interval=1,
            message=f"the engine in {name}",
        )
        for image in images:
            saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
            docker("exec", "--interactive", name, "docker", "load", "--quiet", stdin=saved.stdout, timeout=600)
            saved.wait()
        token = docker("swarm", "join-token", "--quiet", "worker").stdout.strip()
        docker("exec", name, "docker", "swarm", "join", "--token", token, f"{bridge_gateway()}:2377")
        node = docker("exec", name, "docker", "info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
        yield node
    finally:
        docker("rm", "--force", "--volumes", name, check=False)
        if node:
            service_tools.wait_for(
                lambda: docker("node", "rm", "--force", node, check=False).returncode == 0,
                timeout=60,
                interval=2,
                message=f"{name} removed from the swarm",
            )
        docker("rmi", tag, check=False)


def release_image(base: str, tag: str, directory: Path, release: str, broken: bool = False) -> str:
    """The service's image with static/release.txt saying release; a broken
    one fails every healthcheck of the app's containers."""
    context = directory / release
    context.mkdir()
    (context / "release.txt").write_text(release + "\n")
    lines = [f"FROM {base}", "COPY release.txt /app/staticfiles/release.txt"]
    if broken:
        lines += [
            "USER root",
            "RUN printf '#!/bin/sh\\nexit 1\\n' | tee scripts/web_healthcheck.sh scripts/check_alive.sh >/dev/null",
            "USER 10001:10001",
        ]
    (context / "Dockerfile").write_text("\n".join(lines) + "\n")
    docker("build", "--quiet", f"--tag={tag}", str(context), timeout=600)
    return tag


def remove_stack(deployment: Deployment) -> None:
    docker("stack", "rm", deployment.stack, check=False)
    label = f"label=com.docker.stack.namespace={deployment.stack}"
    with contextlib.suppress(AssertionError, TimeoutError):
        service_tools.wait_for(
            lambda: (
                not docker("ps", "-aq", "--filter", label).stdout.split()
                and not docker("network", "ls", "-q", "--filter", label).stdout.split()
            ),
            timeout=180,
            interval=1,
            message="the stack's containers and networks to go",
        )
    volumes = docker("volume", "ls", "-q", "--filter", label).stdout.split()
    if volumes:
        docker("volume", "rm", "--force", *volumes, check=False)
    configs = docker("config", "ls", "-q", "--filter", f"name={deployment.slug}-caddyfile-").stdout.split()
    if configs:
        docker("config", "rm", *configs, check=False)


@contextlib.contextmanager
def deployed_service(rendered: Path, answers: dict, directory: Path, node: str, **values: str) -> Iterator[Deployment]:
    """A copy of the rendered service, ready for `make swarm-deploy` on this
    swarm: images v1, v2, broken (its healthchecks fail) and v3 (with a
    migration), .env with values, the secrets, the manager labelled for the
    data services and the proxy. Nothing is deployed yet."""
    service = directory / "service"
    shutil.copytree(rendered, service, symlinks=True)
    package = package_of(answers)
    slug = re.search(r"^project_slug: *(\S+)", (service / ".copier-answers.yml").read_text(), re.MULTILINE).group(1)
    # The service owner's way to add tasks and migrations: an app of its own.
    app = service / "src" / "swarmcheck"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "tasks.py").write_text(APP_TASKS)
    project = service / "src" / package / "settings" / "project.py"
    assert "PROJECT_APPS = []" in project.read_text()
    project.write_text(project.read_text().replace("PROJECT_APPS = []", 'PROJECT_APPS = ["swarmcheck"]'))
    suffix = secrets.token_hex(3)

    try:
        images = docker_env.stack_images(service / "docker-compose.prod.yml")
    except docker_env.ImageError as error:
        require(False, str(error))
    base, migrating, db = f"swarmtest-{suffix}:base", f"swarmtest-{suffix}:migrating", f"swarmtest-{suffix}-db:latest"
    build(service, base, images["PYTHON_IMAGE"].name)
    (app / "migrations").mkdir()
    (app / "migrations" / "__init__.py").write_text("")
    (app / "migrations" / "0001_count_runs.py").write_text(APP_MIGRATION)
    build(service, migrating, images["PYTHON_IMAGE"].name)
    postgres = f"--build-arg=POSTGRES_IMAGE={images['POSTGRES_IMAGE'].name}"
    docker("build", "--quiet", f"--tag={db}", postgres, str(service / "docker" / "postgres"), timeout=1800)
    tags = {
        "v1": release_image(base, f"swarmtest-{suffix}:v1", directory, "v1"),
        "v2": release_image(base, f"swarmtest-{suffix}:v2", directory, "v2"),
        "broken": release_image(base, f"swarmtest-{suffix}:broken", directory, "broken", broken=True),
        "v3": release_image(migrating, f"swarmtest-{suffix}:v3", directory, "v3"),
    }

    backups = directory / "backups"
    backups.mkdir()
    settings = {
        "DB_IMAGE": db,
        "BACKUP_DIR": str(backups),
        "STACK_NAME": f"swarmtest-{suffix}",
        "HTTP_PORT": str(free_port()),
        "HTTPS_PORT": str(free_port()),
        # Certificates from Caddy's own CA, as in the local production mode:
        # two lines, written as .env.example says.
        "CADDY_GLOBAL_OPTIONS": '"local_certs\\nskip_install_trust"',
        "GUNICORN_WORKERS": "2",
        "CELERY_CONCURRENCY": "2",
        **values,
        **{name: image for name, image in image_values(images).items() if name != "PYTHON_IMAGE"},
    }
    env_file(service, settings)
    deployment = Deployment(service, settings["STACK_NAME"], slug, images=tags, values=settings)
    passwords = {name: secrets.token_hex(24) for name in ("POSTGRES_PASSWORD", "APP_DB_PASSWORD", "REDIS_PASSWORD")}
    deployment.secrets = {
        **passwords,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"postgres://app:{passwords['APP_DB_PASSWORD']}@db:5432/app",
        "REDIS_URL": f"redis://:{passwords['REDIS_PASSWORD']}@redis:6379/0",
        "CACHE_URL": f"redis://:{passwords['REDIS_PASSWORD']}@cache:6379/0",
        "EMAIL_URL": "consolemail://",
    }
    if answers.get("media_backend") == "s3":
        deployment.secrets["AWS_SECRET_ACCESS_KEY"] = secrets.token_hex(20)
    secret_names = [f"{slug}-{name.lower().replace('_', '-')}" for name in deployment.secrets]
    labels = [f"{slug}.data", f"{slug}.proxy"]

    docker("secret", "rm", *secret_names, check=False)
    try:
        for name, value in zip(secret_names, deployment.secrets.values(), strict=True):
            docker("secret", "create", name, "-", input=value)
        docker("node", "update", *(f"--label-add={label}=true" for label in labels), node)
        yield deployment
    finally:
        remove_stack(deployment)
        docker("secret", "rm", *secret_names, check=False)
        docker("node", "update", *(f"--label-rm={label}" for label in labels), node, check=False)
        docker("rmi", *tags.values(), base, migrating, db, check=False)
