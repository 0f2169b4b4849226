"""The rendered service on Docker Swarm, on a real engine: deploy/swarm/ and
scripts/swarm.sh, run as an operator runs them (`make swarm-deploy`), on a
one-node swarm that this module initialises and leaves again (unless the
engine was in a swarm already).

One deployment (the defaults variant: Caddy, media in a volume, beat) serves
the module, and the tests run in file order, each starting from where the
last one left it: the first deploy, a killed web task, a rolling update
under load, an update whose image is broken, three workers of which one is
killed, and two deploys at once of an image with a new migration.

The images are the service's own build with a marker file in its static
files (release.txt: "v1", "v2", ...), so that each response through the
proxy says which image served it. The tasks and the migration counted by
the tests come from a project app added the way a service owner adds one.
The figures (requests sent and failed, the rollback's time) are printed at
the end of the run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
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

import pytest

from harness import docker as docker_env
from harness import service as service_tools
from harness.answers import DOMAIN
from harness.docker import docker, image_values
from harness.policy import require
from harness.servers import free_port
from harness.stack import build, env_file

pytestmark = [pytest.mark.docker, pytest.mark.reliability, pytest.mark.xdist_group("docker")]

TASK_SECONDS = 2
# A lost task comes back after the visibility timeout, which must exceed
# the hard time limit (so that Redis never hands out a running task twice).
TASK_LIMITS = {"CELERY_TASK_TIME_LIMIT": "15", "CELERY_TASK_SOFT_TIME_LIMIT": "12", "CELERY_VISIBILITY_TIMEOUT": "20"}
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
        return [task for task in self.tasks(service) if task["CurrentState"].startswith("Running")]

    def spec(self, service: str) -> dict:
        return json.loads(docker("service", "inspect", f"{self.stack}_{service}").stdout)[0]

    def containers(self, service: str) -> list[str]:
        label = f"label=com.docker.swarm.service.name={self.stack}_{service}"
        return docker("ps", "--quiet", "--filter", label).stdout.split()

    def exec(self, service: str, *command: str) -> str:
        container = self.containers(service)[0]
        return docker("exec", container, *command, timeout=300).stdout

    def shell(self, code: str) -> str:
        return self.exec("web", "python", "src/manage.py", "shell", "--no-imports", "-c", code).strip()

    def redis(self, *command: str) -> str:
        return self.exec(
            "redis", "sh", "-c", 'REDISCLI_AUTH="$(cat /run/secrets/redis-password)" redis-cli "$@"', "-", *command
        )

    def sql(self, query: str) -> str:
        command = 'psql -qtAX --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --command="$0"'
        return self.exec("db", "sh", "-c", command, query).strip()

    def get(self, path: str) -> tuple[int, bytes]:
        """A GET through the proxy: HTTPS on its published port, under the site's name."""
        return https_get(int(self.images["HTTPS_PORT"]), path)


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
        self.threads = [
            threading.Thread(target=self.run, args=(path,)) for path in ("/static/release.txt", "/admin/login/")
        ]

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

    def failed(self) -> list[tuple]:
        return [answer for answer in self.answers if answer[2] != 200]

    def releases(self) -> list[str]:
        """The images that served release.txt, in the order they did, repeats collapsed."""
        seen: list[str] = []
        for *_, release in self.answers:
            if release and (not seen or seen[-1] != release):
                seen.append(release)
        return seen


@contextlib.contextmanager
def one_node_swarm() -> Iterator[None]:
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    joined = state != "active"
    if joined:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        yield
    finally:
        if joined:
            docker("swarm", "leave", "--force", check=False)


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


@pytest.fixture(scope="module")
def deployment(render, tmp_path_factory) -> Iterator[Deployment]:
    problem = docker_env.engine_problem()
    require(problem is None, problem)
    directory = tmp_path_factory.mktemp("swarm")
    service = directory / "service"
    shutil.copytree(render("defaults"), service, symlinks=True)
    # The service owner's way to add tasks and migrations: an app of its own.
    app = service / "src" / "swarmcheck"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "tasks.py").write_text(APP_TASKS)
    project = service / "src" / "obc_management_system" / "settings" / "project.py"
    assert "PROJECT_APPS = []" in project.read_text()
    project.write_text(project.read_text().replace("PROJECT_APPS = []", 'PROJECT_APPS = ["swarmcheck"]'))
    slug = "obc-management-system"
    suffix = secrets.token_hex(3)

    try:
        images = docker_env.stack_images(service / "docker-compose.prod.yml")
    except docker_env.ImageError as error:
        require(False, str(error))
    base, db = f"swarmtest-{suffix}:base", f"swarmtest-{suffix}-db:latest"
    build(service, base, images["PYTHON_IMAGE"].name)
    # A later release with a migration of its own (the last test deploys it).
    (app / "migrations").mkdir()
    (app / "migrations" / "__init__.py").write_text("")
    (app / "migrations" / "0001_count_runs.py").write_text(APP_MIGRATION)
    build(service, f"swarmtest-{suffix}:migrating", images["PYTHON_IMAGE"].name)
    docker(
        "build", "--quiet", f"--tag={db}",
        f"--build-arg=POSTGRES_IMAGE={images['POSTGRES_IMAGE'].name}", str(service / "docker" / "postgres"),
        timeout=1800,
    )  # fmt: skip
    tags = {
        "v1": release_image(base, f"swarmtest-{suffix}:v1", directory, "v1"),
        "v2": release_image(base, f"swarmtest-{suffix}:v2", directory, "v2"),
        "broken": release_image(base, f"swarmtest-{suffix}:broken", directory, "broken", broken=True),
        "v3": release_image(f"swarmtest-{suffix}:migrating", f"swarmtest-{suffix}:v3", directory, "v3"),
    }

    backups = directory / "backups"
    backups.mkdir()
    values = {
        "DB_IMAGE": db,
        "BACKUP_DIR": str(backups),
        "STACK_NAME": f"swarmtest-{suffix}",
        "HTTP_PORT": str(free_port()),
        "HTTPS_PORT": str(free_port()),
        # Certificates from Caddy's own CA, as in the local production mode.
        "CADDY_GLOBAL_OPTIONS": "local_certs",
        "WEB_REPLICAS": "2",
        "WORKER_REPLICAS": "1",
        "GUNICORN_WORKERS": "2",
        "CELERY_CONCURRENCY": "2",
        **TASK_LIMITS,
        **{name: image for name, image in image_values(images).items() if name != "PYTHON_IMAGE"},
    }
    env_file(service, values)
    deployment = Deployment(service, values["STACK_NAME"], slug, images={**tags, **values})
    passwords = {name: secrets.token_hex(24) for name in ("POSTGRES_PASSWORD", "APP_DB_PASSWORD", "REDIS_PASSWORD")}
    deployment.secrets = {
        **passwords,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": f"postgres://app:{passwords['APP_DB_PASSWORD']}@db:5432/app",
        "REDIS_URL": f"redis://:{passwords['REDIS_PASSWORD']}@redis:6379/0",
        "CACHE_URL": f"redis://:{passwords['REDIS_PASSWORD']}@cache:6379/0",
        "EMAIL_URL": "consolemail://",
    }
    secret_names = [f"{slug}-{name.lower().replace('_', '-')}" for name in deployment.secrets]

    with one_node_swarm():
        node = docker("node", "ls", "--quiet", "--filter", "role=manager").stdout.split()[0]
        docker("secret", "rm", *secret_names, check=False)
        try:
            for name, value in zip(secret_names, deployment.secrets.values(), strict=True):
                docker("secret", "create", name, "-", input=value)
            docker("node", "update", "--label-add", f"{slug}.data=true", "--label-add", f"{slug}.proxy=true", node)
            yield deployment
        finally:
            remove_stack(deployment)
            docker("secret", "rm", *secret_names, check=False)
            docker("node", "update", "--label-rm", f"{slug}.data", "--label-rm", f"{slug}.proxy", node, check=False)
            docker("rmi", *tags.values(), base, f"swarmtest-{suffix}:migrating", db, check=False)


def test_a_deploy_refuses_what_it_cannot_run_and_names_it(deployment):
    # A secret left in .env, where Swarm would put it in the environment.
    refused = deployment.deploy(deployment.images["v1"], SECRET_KEY="x" * 50)
    assert refused.returncode != 0
    assert (
        f"SECRET_KEY is set in .env: on Swarm it is the Docker secret {deployment.slug}-secret-key" in refused.stderr
    ), refused.stderr
    assert "nothing was deployed" in refused.stderr
    assert docker("stack", "ls", "--format", "{{.Name}}").stdout.split().count(deployment.stack) == 0


def test_the_stack_converges_healthy_and_answers_through_the_proxy(deployment, figure):
    started = time.monotonic()
    result = deployment.deploy(deployment.images["v1"])
    figure("swarm: first deploy, every service converged", f"{time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every service has converged" in result.stdout

    for service, replicas in {"web": 2, "worker": 1, "beat": 1, "proxy": 1, "db": 1, "redis": 1, "cache": 1}.items():
        running = deployment.running(service)
        assert len(running) == replicas, (service, deployment.tasks(service))
    # The job ran to completion once (after failed attempts, when the
    # database was not up yet).
    jobs = deployment.tasks("migrate")
    assert [job["CurrentState"].split()[0] for job in jobs].count("Complete") == 1, jobs
    for container in deployment.containers("web"):
        health = docker("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()
        assert health == "healthy"

    assert deployment.get("/health/")[0] == 200
    assert deployment.get("/static/release.txt") == (200, b"v1\n")
    # /ready/ is for the orchestrator, not the internet: the proxy refuses
    # it, and web answers it on its own network.
    assert deployment.get("/ready/")[0] == 404
    ready = deployment.exec(
        "web", "python", "-c",
        "import http.client; c = http.client.HTTPConnection('127.0.0.1', 8000); c.request('GET', '/ready/');"
        "print(c.getresponse().status)",
    )  # fmt: skip
    assert ready.strip() == "200"

    # The secrets are files under /run/secrets/, not environment variables.
    environment = deployment.spec("web")["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
    assert "SECRET_KEY_FILE=/run/secrets/secret-key" in environment
    # .env's lines for them are empty, which the settings take for unset.
    assert not [line for line in environment if line.partition("=")[0] in deployment.secrets and line.partition("=")[2]]
    for value in deployment.secrets.values():
        assert value not in json.dumps(deployment.spec("web"))


def test_a_killed_web_task_is_replaced_while_requests_go_on_succeeding(deployment, figure):
    before = {task["ID"] for task in deployment.running("web")}
    with Load(deployment) as load:
        time.sleep(3)
        killed = time.monotonic()
        docker("kill", deployment.containers("web")[0])
        service_tools.wait_for(
            lambda: (
                len(deployment.running("web")) == 2 and {task["ID"] for task in deployment.running("web")} != before
            ),
            timeout=240,
            interval=1,
            message="a new web task",
        )
        replaced = time.monotonic() - killed
        time.sleep(3)
    figure("swarm: killed web task replaced after", f"{replaced:.0f} s")
    figure(
        "swarm: requests while a web task was killed and replaced (sent / failed)",
        f"{len(load.answers)} / {len(load.failed())}",
    )
    assert load.failed() == []
    assert len(load.answers) >= 20


def test_a_rolling_update_under_load_fails_no_request(deployment, figure):
    with Load(deployment) as load:
        time.sleep(3)
        started = time.monotonic()
        result = deployment.deploy(deployment.images["v2"])
        updated = time.monotonic() - started
        time.sleep(3)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figure("swarm: rolling update of every app service", f"{updated:.0f} s")
    figure("swarm: requests during the rolling update (sent / failed)", f"{len(load.answers)} / {len(load.failed())}")
    assert load.failed() == []
    # Served by the old image, then by the new one, never by both in turn
    # after the switch... except while both run: ends on v2 only.
    assert load.releases()[0] == "v1" and load.releases()[-1] == "v2", load.releases()
    assert all(task["Image"].startswith(deployment.images["v2"]) for task in deployment.running("web"))


def test_an_update_whose_image_fails_its_healthcheck_is_rolled_back_unseen(deployment, figure):
    with Load(deployment) as load:
        started = time.monotonic()
        result = deployment.deploy(deployment.images["broken"])
        seconds = time.monotonic() - started
        time.sleep(3)
    figure("swarm: a deploy of a broken image, until rolled back", f"{seconds:.0f} s")
    figure("swarm: requests during the failed update (sent / failed)", f"{len(load.answers)} / {len(load.failed())}")
    assert result.returncode != 0
    assert f"{deployment.stack}_web" in result.stderr and "rolled back" in result.stderr, result.stderr
    web = deployment.spec("web")
    assert web["UpdateStatus"]["State"] == "rollback_completed"
    assert web["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].startswith(deployment.images["v2"])
    # Traffic never saw it.
    assert "broken" not in load.releases()
    assert load.failed() == []


def test_three_workers_lose_no_task_when_one_is_killed(deployment, figure):
    result = deployment.deploy(deployment.images["v2"], WORKER_REPLICAS="3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(deployment.running("worker")) == 3
    deployment.redis("del", COMPLETED)

    sent = json.loads(
        deployment.shell(
            "import json; from swarmcheck.tasks import slow; "
            f"print(json.dumps([slow.delay({TASK_SECONDS}).id for _ in range(30)]))"
        )
    )
    time.sleep(TASK_SECONDS + 1)
    docker("kill", deployment.containers("worker")[0])

    def completed() -> dict[str, int]:
        lines = deployment.redis("hgetall", COMPLETED).split()
        return {key: int(value) for key, value in zip(lines[::2], lines[1::2], strict=True)}

    started = time.monotonic()
    counts = service_tools.wait_for(
        lambda: len(completed()) == len(sent) and completed(), timeout=300, interval=2, message="every task"
    )
    figure("swarm: 30 tasks over 3 workers, one killed: all done after", f"{time.monotonic() - started:.0f} s")
    assert set(counts) == set(sent)
    assert set(counts.values()) == {1}


def test_two_deploys_at_once_migrate_once_and_both_converge(deployment):
    image = deployment.images["v3"]
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(deployment.deploy(image, WORKER_REPLICAS="3"))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for result in results:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert deployment.sql("select count(*) from swarm_migration_runs") == "1"
    assert deployment.sql("select count(*) from django_migrations where app = 'swarmcheck'") == "1"
    for service in ("web", "worker", "beat"):
        assert all(task["Image"].startswith(image) for task in deployment.running(service)), service
    assert deployment.get("/static/release.txt") == (200, b"v3\n")
