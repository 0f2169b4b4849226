"""The rendered service's production image and compose stack, on a real
Docker engine.

The image is built from the rendered Dockerfile; the stack is the rendered
docker-compose.prod.yml, started with an env file made from .env.example.
Where no registry is reachable, harness.docker provides a local base image
and stand-ins for postgres, redis and caddy under names of their own, which
the env file selects through the compose file's image variables. A stack
with Caddy runs in the service's own local production mode (`make
prod-local`: docker-compose.local.yml, Caddy's internal CA, its ports on
free loopback ports named in the env file); the s3 variant gets a moto S3
endpoint.

The tests print figures (build times, image sizes, time to healthy, memory);
run with ``-s`` to see them. Every stack is taken down with its volumes.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import http.server
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from harness import docker as docker_env
from harness import service as service_tools
from harness.answers import DOMAIN, KIT, answers_for, package_of
from harness.docker import docker, image_values
from harness.policy import require
from harness.servers import S3Server, free_port
from harness.stack import (
    ComposeProject,
    StackError,
    base_image_for,
    build,
    compose_files,
    copy_service,
    env_file,
    image_size,
    stack_values,
    step_cached,
)

# One xdist worker runs all of them: they share the engine and the images,
# and each stack takes a good part of the machine.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]
# Seconds between beat's heartbeat runs in the test stacks (60 in production).
HEARTBEAT_INTERVAL = 3

# Production's proxy with a certificate authority it cannot reach, as on a
# host the internet cannot reach, or for a name no authority certifies. Its
# ports move to free loopback ports; its healthcheck keeps its command and
# gets timings a test can wait for.
NO_CERTIFICATE = """\
services:
  proxy:
    environment:
      CADDY_GLOBAL_OPTIONS: acme_ca https://127.0.0.1:9/directory
    ports: !override
      - "127.0.0.1::80"
      - "127.0.0.1::443"
    healthcheck:
      start_period: 5s
      start_interval: 1s
      interval: 2s
      retries: 2
"""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def figure(label: str, value: str) -> None:
    print(f"\n[figure] {label}: {value}")


def megabytes(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def images_for(service: Path) -> dict[str, docker_env.Image]:
    """The images the service's production stack runs (official, or stand-ins)."""
    try:
        return docker_env.stack_images(service / "docker-compose.prod.yml")
    except docker_env.ImageError as error:
        require(False, str(error))


def run_in_image(image: str, script: str, *options: str) -> str:
    return docker("run", "--rm", *options, "--entrypoint=sh", image, "-c", script).stdout


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def __repr__(self):
        return f"<Response {self.status} {self.headers}>"


def http_get(port: int, path: str, *, host: str = DOMAIN, cafile: Path | None = None, headers=None) -> Response:
    """GET from 127.0.0.1:port with the given Host (and TLS server name, with cafile)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if cafile:
        sock = ssl.create_default_context(cafile=str(cafile)).wrap_socket(sock, server_hostname=host)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.sock = sock
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


# Run by `python -c` in the web container: a GET to gunicorn on its own
# port, printed as JSON (no curl in the image).
CONTAINER_GET = """
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", 8000, timeout=10)
c.request("GET", sys.argv[1], headers=json.loads(sys.argv[2]))
r = c.getresponse()
print(json.dumps([r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read().decode(errors="replace")]))
"""


class Stack(ComposeProject):
    """The production stack under test, and what the test wrote into its .env."""

    def __init__(self, service: Path, name: str, files: list[str]):
        super().__init__(service, name, files)
        self.values: dict[str, str] = {}

    def make(self, target: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """A target of the service's Makefile, addressing this project."""
        return subprocess.run(
            ["make", "--no-print-directory", target],
            cwd=self.service,
            env={**os.environ, "COMPOSE_PROJECT_NAME": self.project},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def web_get(self, path: str, headers=None) -> Response:
        """A request to gunicorn from inside the web container."""
        output = self.exec("web", "python", "-c", CONTAINER_GET, path, json.dumps(headers or {}))
        status, headers, body = json.loads(output)
        return Response(status, headers, body.encode())


class Proxy:
    """Caddy's published ports (looked up on each request: a restarted
    container gets new ones) and the file its root CA is copied to."""

    def __init__(self, stack: Stack, ca: Path):
        self.stack, self.ca = stack, ca

    def get(self, path: str, *, tls: bool = True, headers=None) -> Response:
        published = self.stack.compose("port", "proxy", "443" if tls else "80").stdout.strip()
        port = int(published.rpartition(":")[2])
        return http_get(port, path, cafile=self.ca if tls else None, headers=headers)


# --------------------------------------------------------------------------
# 0. The images the stacks run
# --------------------------------------------------------------------------


def test_no_stand_in_is_tagged_with_an_official_name(engine, render):
    """Stand-ins are selected in .env under names of their own: on this
    engine, postgres:17 or caddy:2, when present, is the official image."""
    images = images_for(render("defaults"))
    stand_ins = [image.name for image in images.values() if image.source == "stand-in"]
    for name in stand_ins:
        assert name.startswith(f"{docker_env.STAND_IN_NAMESPACE}/"), name
        # The check below recognises them.
        assert docker_env.is_stand_in(name), name
    # Images built on a stand-in inherit its label: only the official
    # repositories' names are checked.
    official = {"python", "postgres", "redis", "caddy"}
    tagged = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    under_official_names = [
        name for name in tagged if re.sub(r"^(docker\.io/)?(library/)?", "", name).partition(":")[0] in official
    ]
    assert [name for name in under_official_names if docker_env.is_stand_in(name)] == []


# --------------------------------------------------------------------------
# 1. The production image
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def defaults_image(engine, render):
    """The defaults service's production image: tag, base, build output."""
    service = render("defaults")
    base = base_image_for(service)
    tag = "stacktest-image:latest"
    seconds, progress = build(service, tag, base, "--no-cache")
    yield {"service": service, "tag": tag, "base": base, "seconds": seconds, "progress": progress}
    docker("rmi", tag, check=False)


def test_production_image_is_non_root_with_collected_static_files_and_no_secrets(defaults_image):
    image = defaults_image["tag"]
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]

    # A non-root user, by number, and it is what the container runs as.
    assert config["User"] and config["User"].split(":")[0] not in ("0", "root")
    assert run_in_image(image, "id -u").strip() != "0"

    # Static files: collected with the manifest of hashed names, and compressed.
    static = "/app/staticfiles"
    manifest = json.loads(run_in_image(image, f"cat {static}/staticfiles.json"))
    hashed = manifest["paths"]["admin/css/base.css"]
    assert re.fullmatch(r"admin/css/base\.[0-9a-f]{12}\.css", hashed)
    listing = run_in_image(image, f"cd {static} && find . -type f").split()
    assert f"./{hashed}" in listing
    assert f"./{hashed}.gz" in listing
    assert sum(name.endswith(".gz") for name in listing) > 10

    # No package manager cache: apt's lists and package cache are not in a layer.
    leftovers = run_in_image(image, "find /var/lib/apt/lists /var/cache/apt -type f -size +0", "--user=0")
    assert leftovers.split() == []

    # No .env, no test files, no secret in the environment or the history.
    app_files = run_in_image(image, "cd /app && find . -path ./staticfiles -prune -o -print").split()
    assert not [name for name in app_files if re.search(r"(^|/)\.env", name)]
    assert not [name for name in app_files if re.search(r"(^|/)(tests?|conftest\.py|test_[^/]*\.py)$", name)]
    env_names = {entry.partition("=")[0] for entry in config["Env"]}
    assert not env_names & {"SECRET_KEY", "POSTGRES_PASSWORD", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "EMAIL_URL"}
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert not re.search(r"SECRET_KEY=[\"']?[A-Za-z0-9_-]{20}", history), "a literal secret key in a layer"

    size, base_size = image_size(image), image_size(defaults_image["base"])
    figure("cold build (--no-cache; pip's download cache may be warm)", f"{defaults_image['seconds']:.0f} s")
    figure("image size", megabytes(size))
    figure(f"added over the base image {defaults_image['base']}", megabytes(size - base_size))


def test_a_code_change_rebuilds_without_reinstalling_dependencies(defaults_image, tmp_path_factory):
    service = copy_service(defaults_image["service"], tmp_path_factory, "rebuild")
    package = re.search(r"^package_name: *(\S+)", (service / ".copier-answers.yml").read_text(), re.M).group(1)
    urls = service / "src" / package / "urls.py"
    # Unique, or the build cache may hold this very change from an earlier run.
    urls.write_text(urls.read_text() + f"# a one-line change {secrets.token_hex(8)}\n")
    tag = "stacktest-rebuild:latest"
    try:
        seconds, progress = build(service, tag, defaults_image["base"])
        figure("rebuild after a one-line change to a Python file", f"{seconds:.1f} s")
        assert step_cached(progress, "uv pip sync"), "the dependency layer was rebuilt"
        assert not step_cached(progress, "collectstatic"), "the code change did not reach the image"
    finally:
        docker("rmi", tag, check=False)


# --------------------------------------------------------------------------
# 2-7. The production stack
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(engine):
    """A moto S3 endpoint on the host's address on Docker's bridge: the
    containers and the test reach it at the same URL."""
    server = S3Server()
    server.host = docker_env.bridge_gateway()
    with server:
        server.start()
        boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        ).create_bucket(Bucket="media")
        yield server


class SentryCollector:
    """Where a stack's SENTRY_DSN points: an HTTP server on the host's address
    on Docker's bridge that keeps the events of the envelopes it is sent."""

    def __init__(self, host: str):
        bodies = self.bodies = []

        class Envelopes(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Envelopes)
        self.dsn = f"http://public@{host}:{self.server.server_address[1]}/42"

    def events(self) -> list[dict]:
        """The events sent uncompressed (the app's SDK compresses its own)."""
        events = []
        for body in self.bodies:
            for line in body.splitlines()[1:]:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if isinstance(item, dict) and "level" in item:
                    events.append(item)
        return events


@pytest.fixture(scope="module")
def sentry(engine):
    collector = SentryCollector(docker_env.bridge_gateway())
    thread = threading.Thread(target=collector.server.serve_forever, daemon=True)
    thread.start()
    yield collector
    collector.server.shutdown()
    collector.server.server_close()


def start_stack(render, tmp_path_factory, variant: str, s3_server: S3Server | None = None, **extra: str):
    """Build the variant's image, write .env (with the extra values), start the stack; yields the Stack."""
    service = copy_service(render(variant), tmp_path_factory, variant)
    answers = (service / ".copier-answers.yml").read_text()
    caddy = "reverse_proxy: caddy" in answers
    images = images_for(service)
    base = images["PYTHON_IMAGE"].name
    figure(f"{variant}: images", ", ".join(f"{image.name} ({image.source})" for image in images.values()))

    tag = f"stacktest-{variant}:latest"
    seconds, _ = build(service, tag, base)
    figure(f"{variant}: image build (cached layers reused)", f"{seconds:.0f} s")

    # The db image too, under a name of its own: an image left by an older
    # run under the default name would otherwise start with its old scripts.
    db_tag = f"stacktest-{variant}-db-{secrets.token_hex(3)}:latest"
    values = stack_values(
        tag, DB_IMAGE=db_tag, CELERY_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL), **image_values(images)
    )
    files = compose_files(service)
    if not caddy:
        # The test is the load balancer: it reaches web through a published
        # port, from the gateway of the project's network, somewhere in
        # Docker's default address pools.
        values["WEB_PORT"] = str(free_port())
        values["FORWARDED_ALLOW_IPS"] = "172.16.0.0/12,192.168.0.0/16"
    if s3_server:
        values |= {
            "AWS_STORAGE_BUCKET_NAME": "media",
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "AWS_S3_REGION_NAME": s3_server.region,
            "AWS_S3_ENDPOINT_URL": s3_server.endpoint_url,
        }
    values |= extra
    env_file(service, values)

    stack = Stack(service, variant, files)
    stack.values = values
    try:
        stack.compose("build", "db", timeout=1800)
        if caddy:
            # As its owner tries it: the make target, with the compose files it names.
            started = time.monotonic()
            result = stack.make("prod-local")
            seconds = time.monotonic() - started
            if result.returncode != 0:
                raise StackError(f"make prod-local failed:\n{result.stderr[-3000:]}\n{stack.logs()[-8000:]}")
        else:
            seconds = stack.up()
        figure(f"{variant}: from `up` to every service healthy", f"{seconds:.0f} s")
        yield stack
    finally:
        stack.down()
        docker("rmi", tag, db_tag, check=False)


def wait_for(condition, timeout: float, interval: float = 0.5, message: str = ""):
    # A container that is starting or stopping fails `docker exec` and
    # requests in many ways: every error means "not yet".
    return service_tools.wait_for(condition, timeout, interval, message, ignore=(Exception,))


def save_media(stack: Stack, content: bytes) -> str:
    """Saves a file through Django's default storage, from web; returns its URL."""
    code = (
        "from django.core.files.base import ContentFile; from django.core.files.storage import default_storage;"
        f"name = default_storage.save('test/hello.txt', ContentFile({content!r})); print(default_storage.url(name))"
    )
    return stack.manage_shell(code)


class StackChecks:
    """The checks of a running production stack (fixture `stack`), run once per variant."""

    long_running = ("db", "backup", "redis", "web", "worker", "beat", "proxy")

    def test_every_service_is_healthy_and_only_migrate_migrated_once(self, stack):
        services = stack.by_service()
        for name in self.long_running:
            if name not in services:
                continue
            (container,) = services[name]
            assert container["State"]["Status"] == "running", name
            assert container["State"]["Health"]["Status"] == "healthy", name

        (migrate,) = services["migrate"]
        assert migrate["State"]["Status"] == "exited"
        assert migrate["State"]["ExitCode"] == 0
        assert migrate["RestartCount"] == 0
        migrate_logs = stack.logs("migrate")
        assert "Applying auth." in migrate_logs or "Applying contenttypes." in migrate_logs
        finished = migrate["State"]["FinishedAt"]
        for name in ("web", "worker", "beat"):
            if name in services:
                (container,) = services[name]
                # RFC 3339 with nanoseconds, all in UTC: they compare as strings.
                assert container["State"]["StartedAt"] > finished, f"{name} started before migrate finished"
                assert "Applying " not in stack.logs(name), f"{name} ran migrations"

        figure(f"{stack.project}: memory of the stack at idle", megabytes(stack.memory()))

    def test_app_containers_run_non_root_on_a_read_only_root_filesystem(self, stack):
        services = stack.by_service()
        for name in ("web", "worker", "beat"):
            if name not in services:
                continue
            (container,) = services[name]
            assert container["HostConfig"]["ReadonlyRootfs"] is True, name
            assert stack.exec(name, "id", "-u").strip() != "0", name
            refused = stack.exec(name, "sh", "-c", "touch /app/src/x 2>&1; echo $?", check=False)
            assert refused.strip().splitlines()[-1] != "0", f"{name} could write its code"
            assert stack.exec(name, "sh", "-c", "touch /tmp/x && echo ok").strip() == "ok", name

    def test_probes_and_security_headers(self, stack):
        assert stack.web_get("/health/").status == 200
        ready = stack.web_get("/ready/")
        assert ready.status == 200, ready.text
        page = self.site_get(stack, "/admin/login/")
        assert page.status == 200, page
        for header, expected in {
            "strict-transport-security": "max-age=31536000",
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "referrer-policy": "same-origin",
            "cross-origin-opener-policy": "same-origin",
        }.items():
            assert expected in page.headers.get(header, ""), (header, page.headers)

    def test_admin_login_renders_with_hashed_compressed_far_future_css(self, stack):
        page = self.site_get(stack, "/admin/login/")
        assert 'id="login-form"' in page.text
        stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.text)
        assert stylesheet, "the login page links no hashed stylesheet"
        css = self.site_get(stack, stylesheet.group(1), headers={"Accept-Encoding": "gzip"})
        assert css.status == 200
        assert css.headers["content-type"].startswith("text/css")
        assert css.headers.get("content-encoding") in ("gzip", "zstd"), css.headers
        max_age = int(re.search(r"max-age=(\d+)", css.headers["cache-control"]).group(1))
        assert max_age >= 365 * 24 * 3600, css.headers["cache-control"]

    def test_a_task_sent_from_web_runs_on_the_worker_and_beat_schedules_the_heartbeat(self, stack):
        assert stack.manage_shell(f"from {KIT}.tasks import add; print(add.delay(2, 3).get(timeout=30))") == "5"
        assert f"{KIT}.tasks.add" in stack.logs("worker")
        if "beat" not in self.long_running:
            assert "beat" not in stack.by_service()
            return

        def heartbeat():
            code = (
                f"from django.core.cache import cache; from {KIT}.tasks import HEARTBEAT_KEY as K; print(cache.get(K))"
            )
            return stack.manage_shell(code) != "None"

        wait_for(heartbeat, timeout=HEARTBEAT_INTERVAL * 5, interval=1, message="beat's heartbeat task never ran")

    def test_plain_http_redirects_to_https(self, stack):
        response = self.plain_http_get(stack, "/admin/login/")
        assert response.status in (301, 302, 307, 308), response
        assert response.headers["location"].startswith(f"https://{DOMAIN}")

    def test_media_saved_by_django_is_served_back(self, stack):
        content = f"hello from {stack.project}".encode()
        assert self.media_get(stack, save_media(stack, content)) == content

    @pytest.mark.reliability
    def test_stopping_the_database_turns_ready_to_503_and_back_without_restarting_web(self, stack):
        before = stack.state("web")
        stack.compose("stop", "db")
        try:
            started = time.monotonic()
            wait_for(lambda: stack.web_get("/ready/").status == 503, timeout=15, message="/ready/ stayed 200")
            figure("/ready/ turned 503 after the database stopped", f"{time.monotonic() - started:.1f} s")
            assert "database" in stack.web_get("/ready/").text.lower()
            assert stack.web_get("/health/").status == 200
        finally:
            stack.compose("start", "db")
        wait_for(lambda: stack.web_get("/ready/").status == 200, timeout=60, message="/ready/ did not recover")
        after = stack.state("web")
        assert (after["StartedAt"], after["RestartCount"]) == (before["StartedAt"], before["RestartCount"])

    @pytest.mark.reliability
    def test_stop_is_clean_and_a_request_and_a_task_in_flight_are_not_lost(self, stack):
        # A task the worker holds (received, not yet acknowledged) at the stop.
        task_id = stack.manage_shell(f"from {KIT}.tasks import add; print(add.apply_async((20, 22), countdown=15).id)")
        wait_for(lambda: task_id in stack.logs("worker"), timeout=10, message="the worker never received the task")

        # A request in flight at the stop: with the database paused, a page
        # that reads the session (from the database: any session cookie
        # makes Django look it up) waits on it while the stop begins.
        # The services in front of the database stop first, as `compose stop`
        # orders them; the paused database is resumed before it is stopped
        # itself (stopping a paused container can hang the engine).
        app_services = [name for name in stack.by_service() if name not in ("db", "redis", "migrate")]
        # The backup service's first full backup talks to the database: let
        # it finish first, or the paused database would hold it past its stop.
        wait_for(
            lambda: "next full backup at" in stack.logs("backup"),
            timeout=120,
            message="the first full backup never finished",
        )
        stack.compose("pause", "db")
        paused = True
        try:
            with concurrent.futures.ThreadPoolExecutor() as pool:
                session = {"Cookie": f"sessionid={secrets.token_hex(16)}"}
                request = pool.submit(self.site_get, stack, "/admin/", session)
                time.sleep(0.5)
                assert not request.done(), "the request was not in flight"
                started = time.monotonic()
                stop = pool.submit(stack.compose, "stop", *app_services, timeout=900)
                time.sleep(1)
                assert not request.done(), "the request was not in flight at the stop"
                stack.compose("unpause", "db")
                paused = False
                response = request.result(timeout=60)
                stop.result()
        finally:
            if paused:
                # A paused database left behind would hang the stack's
                # `down`, and with it the engine.
                stack.compose("unpause", "db", check=False, timeout=60)
        stack.compose("stop", timeout=900)
        figure(f"{stack.project}: docker compose stop", f"{time.monotonic() - started:.1f} s")
        # Answered in full: the session is unknown, so to the login page.
        assert response.status == 302, response
        assert response.headers["location"].startswith("/admin/login/"), response

        # Every container stopped on its own: exit status 0 (one killed at
        # the end of its grace period would show 137).
        for name, (container,) in stack.by_service().items():
            if name == "migrate":
                continue
            state = container["State"]
            assert state["Status"] == "exited", name
            assert state["ExitCode"] == 0, f"{name} exited with {state['ExitCode']}:\n{stack.logs(name)[-5000:]}"
            assert not state["OOMKilled"], name

        # Started again, the stack runs the task it had not acknowledged.
        stack.up()
        code = f"from {KIT}.tasks import add; print(add.AsyncResult({task_id!r}).get(timeout=60))"
        assert stack.manage_shell(code) == "42"

    # The variant's ways in. (The stop test comes last in this class on
    # purpose: pytest runs a base class's tests before its subclass's.)

    def site_get(self, stack, path, headers=None) -> Response:
        """A request the way clients make it: over HTTPS."""
        raise NotImplementedError

    def plain_http_get(self, stack, path) -> Response:
        """A request over plain HTTP."""
        raise NotImplementedError

    def media_get(self, stack, url) -> bytes:
        """The body of a media file at the URL Django gave."""
        raise NotImplementedError


@pytest.mark.usefixtures("engine")
class TestDefaultsStack(StackChecks):
    """Caddy in front, media on a volume."""

    @pytest.fixture(scope="class")
    def stack(self, render, tmp_path_factory):
        yield from start_stack(render, tmp_path_factory, "defaults")

    @pytest.fixture(scope="class")
    def proxy(self, stack, tmp_path_factory):
        """Requests to Caddy, over HTTPS checked against its internal root CA."""
        proxy = Proxy(stack, tmp_path_factory.mktemp("caddy-ca") / "root.crt")

        def fetch_ca():
            # As the README tells the owner to get it.
            printed = stack.make("prod-local-ca", timeout=60)
            assert printed.returncode == 0, printed.stderr
            assert printed.stdout.startswith("-----BEGIN CERTIFICATE-----"), printed.stdout
            proxy.ca.write_text(printed.stdout)
            return proxy.get("/health/").status == 200

        wait_for(fetch_ca, timeout=60, interval=1, message="no HTTPS from Caddy with its internal CA")
        stack.proxy = proxy
        return proxy

    def site_get(self, stack, path, headers=None):
        return stack.proxy.get(path, headers=headers)

    @pytest.fixture(autouse=True, scope="class")
    def _attach_proxy(self, proxy):
        """site_get needs the proxy in every test of the class."""

    def plain_http_get(self, stack, path):
        return stack.proxy.get(path, tls=False)

    def media_get(self, stack, url):
        # Served by Caddy from the media volume, as inert as any user upload.
        assert url.startswith("/media/"), url
        response = stack.proxy.get(url)
        assert response.status == 200, response
        assert response.headers.get("x-content-type-options") == "nosniff"
        assert "sandbox" in response.headers.get("content-security-policy", "")
        return response.body

    def test_the_proxy_is_healthy_by_answering_https_for_its_domain(self, stack):
        (proxy,) = stack.by_service()["proxy"]
        assert proxy["State"]["Health"]["Status"] == "healthy"
        # Its checks went through TLS to web, not to Caddy's admin API.
        probe = " ".join(proxy["Config"]["Healthcheck"]["Test"])
        assert '"https://${DOMAIN}/health/"' in probe, probe
        # Its domain is the container itself: the check never leaves it.
        hosts = proxy["HostConfig"]["ExtraHosts"]
        assert any(re.fullmatch(rf"{re.escape(DOMAIN)}[:=]127\.0\.0\.1", entry) for entry in hosts), hosts

    def test_the_proxy_is_unhealthy_while_it_has_no_certificate(self, stack):
        """Production's proxy where no certificate can be had: Caddy runs,
        web answers, and Docker says the proxy is unhealthy."""
        (stack.service / "docker-compose.no-certificate.yml").write_text(NO_CERTIFICATE)
        files = ["--file=docker-compose.prod.yml", "--file=docker-compose.no-certificate.yml"]
        compose = ["compose", f"--project-name={stack.project}", *files]
        try:
            docker(*compose, "up", "--detach", "--no-deps", "proxy", cwd=stack.service)
            seen = []

            def health():
                seen.append(stack.state("proxy")["Health"]["Status"])
                return seen[-1] == "unhealthy"

            wait_for(health, timeout=90, interval=1, message="the proxy without a certificate to turn unhealthy")
            assert "healthy" not in seen, seen
            assert stack.state("proxy")["Status"] == "running"
            assert stack.web_get("/health/").status == 200
            # The checks failed at the TLS handshake, not at an HTTP status.
            (container,) = stack.by_service()["proxy"]
            outputs = [check["Output"] for check in container["State"]["Health"]["Log"]]
            assert outputs and not any("server returned error" in output for output in outputs), outputs
        finally:
            # Back to the local production mode, for the tests that follow.
            stack.compose("up", "--detach", "--no-deps", "--wait", "proxy")


@pytest.mark.usefixtures("engine")
class TestS3NoProxyStack(StackChecks):
    """No proxy (an external load balancer terminates TLS), media on S3 (moto)."""

    long_running = ("db", "backup", "redis", "web", "worker")

    @pytest.fixture(scope="class")
    def stack(self, render, tmp_path_factory, s3, sentry):
        yield from start_stack(render, tmp_path_factory, "s3-no-proxy-no-beat-sentry", s3, SENTRY_DSN=sentry.dsn)

    def test_a_failed_backup_is_logged_sent_to_sentry_and_named_by_the_status(self, stack, sentry, monkeypatch):
        wait_for(lambda: "next full backup at" in stack.logs("backup"), timeout=300, message="the first full backup")
        repository = stack.service / "backups" / "backup" / "db"
        mode = repository.stat().st_mode
        # The next daily backup in two minutes, into a repository it cannot write.
        monkeypatch.setenv("BACKUP_DAILY_AT", (datetime.now(UTC) + timedelta(minutes=2)).strftime("%H:%M"))
        try:
            repository.chmod(0o500)
            stack.compose("up", "--detach", "--no-deps", "backup")
            failed = "ERROR backup: full backup failed"
            wait_for(lambda: failed in stack.logs("backup"), timeout=240, interval=2, message="the failed backup")
            (event,) = wait_for(
                lambda: [event for event in sentry.events() if event.get("logger") == "backup"],
                timeout=30,
                message="the failure in Sentry",
            )
            assert event["level"] == "error"
            assert event["message"]["formatted"].startswith("backup: full backup failed (exit status ")
            assert event["environment"] == "production"
            status = stack.compose("exec", "-T", "backup", "backup-status", check=False)
            assert status.returncode == 1
            assert "problem: the last scheduled backup failed (exit status " in status.stdout
        finally:
            repository.chmod(mode)
            monkeypatch.delenv("BACKUP_DAILY_AT")
            stack.compose("up", "--detach", "--no-deps", "backup")

    def site_get(self, stack, path, headers=None):
        # What the load balancer sends: the public host, and HTTPS said in a header.
        port = int(stack.values["WEB_PORT"])
        return http_get(port, path, headers={"X-Forwarded-Proto": "https", **(headers or {})})

    def plain_http_get(self, stack, path):
        # No X-Forwarded-Proto: Django itself redirects to HTTPS.
        return http_get(int(stack.values["WEB_PORT"]), path)

    def media_get(self, stack, url):
        # A signed URL of the S3 endpoint, fetched as a browser would.
        assert url.startswith(stack.values["AWS_S3_ENDPOINT_URL"] + "/media/"), url
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the test's own endpoint
            return response.read()


# --------------------------------------------------------------------------
# 8. The seed checks, as a user runs them
# --------------------------------------------------------------------------


def test_seed_checks(engine, render, tmp_path_factory, monkeypatch):
    """The commands a new service's owner runs first, on the explicit-workers
    variant (its own slug and package name).

    `python manage.py ...` runs in the built image (the user's virtualenv is
    the image's); collectstatic writes to a STATIC_ROOT in /tmp because the
    image's own is read-only for its non-root user. The web port is published
    only through Caddy, so `curl http://localhost:8000/health/` is the
    documented equivalent: the healthcheck script run in the web container.

    Two departures from the user's commands: .env names the images to run
    (stand-ins where no registry answers), and the stack runs in the
    service's local production mode, as the stack tests do (the host's 80
    and 443 may be taken, and a test domain gets no certificate).
    """
    answers = answers_for("explicit-workers")
    package, tag = package_of(answers), f"{answers['project_slug']}:test"
    # The db image, which `up` builds under its default name.
    db_image = f"{answers['project_slug']}-db:latest"
    service = copy_service(render("explicit-workers"), tmp_path_factory, "seed")
    assert f"package_name: {package}" in (service / ".copier-answers.yml").read_text()
    images = images_for(service)
    base = images["PYTHON_IMAGE"]

    # docker build --target production -t <slug>:test .
    build_args = [] if base.source != "stand-in" else [f"--build-arg=PYTHON_IMAGE={base.name}"]
    docker("build", "--target", "production", "-t", tag, *build_args, ".", cwd=service, timeout=1800)
    values = stack_values(tag, **image_values(images))
    env_file(service, values)
    # What compose adds to .env for the app containers.
    urls = [
        f"--env=DATABASE_URL=postgres://app:{values['APP_DB_PASSWORD']}@db:5432/app",
        f"--env=REDIS_URL=redis://:{values['REDIS_PASSWORD']}@redis:6379/0",
        f"--env=CACHE_URL=redis://:{values['REDIS_PASSWORD']}@cache:6379/0",
    ]

    def manage(*command: str, env=()) -> str:
        """The command's output, run in the image as `python ...` from src/."""
        run = ["run", "--rm", "--env-file=.env", *urls, *env, "--workdir=/app/src", tag, *command]
        result = docker(*run, cwd=service, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr

    settings = f"--settings={package}.settings.production"
    checks = manage("python", "manage.py", "check", "--deploy", settings)
    assert "System check identified no issues (0 silenced)" in checks
    collected = manage(
        "python", "manage.py", "collectstatic", "--noinput", settings, env=["--env=STATIC_ROOT=/tmp/staticfiles"]
    )  # fmt: skip
    assert "static files copied" in collected
    celery = manage("python", "-c", f"from {package} import celery_app; print(celery_app)")
    assert f"<Celery {package}" in celery

    # docker compose -f docker-compose.prod.yml up -d, under a project name of
    # its own (COMPOSE_PROJECT_NAME overrides the file's `name:`).
    files = compose_files(service)
    assert files[0] == "docker-compose.prod.yml"
    stack = Stack(service, "seed", files)
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", stack.project)
    try:
        docker("compose", *(f"--file={file}" for file in files), "up", "-d", cwd=service, timeout=600)
        for path in ("/health/", "/ready/"):

            def answers(path=path):
                return stack.compose("exec", "-T", "web", "scripts/http_probe.sh", path, check=False).returncode == 0

            wait_for(answers, timeout=180, interval=2, message=f"{path} never answered 200")
        assert stack.web_get("/ready/").status == 200
    finally:
        stack.down()
        # The db image too: the next run must build it from its own scripts.
        docker("rmi", tag, db_image, check=False)
