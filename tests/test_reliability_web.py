"""The rendered web service under a deploy, failing dependencies and hostile
HTTP: gunicorn with its rendered config and production settings, against real
PostgreSQL and Redis, with load from a separate process (harness/load.py).

Nothing here waits a fixed time or asserts how long something took: on a
loaded machine both flake. Tests wait for the state they need (a request in
flight, a listener closed), and a hang is a request that outlives a timeout
far above what a healthy answer takes. Durations are printed as figures."""

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from harness import load, processes
from harness.answers import DOMAIN, answers_for
from harness.servers import PostgresServer, RedisServer, free_port
from harness.service import log_of, prepare_service, wait_for

pytestmark = [pytest.mark.service, pytest.mark.reliability, pytest.mark.xdist_group("reliability_web")]

LOAD = Path(load.__file__)
# The timeout of the compose healthcheck probes. /ready/ bounds its own
# checks below it; a probe is called a hang past twice this, so that a busy
# machine's slowness is not mistaken for one.
PROBE_TIMEOUT = 5.0
HANG = 2 * PROBE_TIMEOUT
# How long the client waits for an answer before calling it a hang.
CLIENT_TIMEOUT = 20.0

# What a service owner would add in the project-owned urls.py: a slow view and
# one that queries the database.
URLS = """\
import time
from pathlib import Path

from django.contrib import admin
from django.db import connection
from django.http import JsonResponse
from django.urls import path


def slow(request):
    seconds = float(request.GET.get("seconds", "2"))
    if "started" in request.GET:
        # The test waits for this file (the request is in flight), and
        # creates the "until" file when the request may end.
        Path(request.GET["started"]).touch()
        until, deadline = Path(request.GET["until"]), time.monotonic() + seconds
        while not until.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(seconds)
    return JsonResponse({"slept": seconds})


def database(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations")
        (count,) = cursor.fetchone()
    return JsonResponse({"migrations": count})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("slow/", slow),
    path("db/", database),
]
"""


@pytest.fixture(scope="module")
def service(render, tmp_path_factory):
    path = tmp_path_factory.mktemp("run-reliability-web") / "service"
    service = prepare_service(render("defaults"), path, answers_for("defaults"))
    (path / "src" / service.package / "urls.py").write_text(URLS)
    # Static files once: the admin's pages need the manifest.
    service.manage("collectstatic", "--noinput", env=service.production_env("postgres://x@localhost/x", "redis://x"))
    yield service
    service.close()


def start_gunicorn(service, tmp_path, database_url, redis_url, workers=2, migrate=True, **extra):
    """gunicorn with the rendered gunicorn.conf.py; returns (process, port) once /health/ answers."""
    port = free_port()
    env = service.production_env(
        database_url,
        redis_url,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS=workers,
        GUNICORN_CONTROL_SOCKET=tmp_path / "gunicorn.ctl",
        **extra,
    )
    if migrate:
        service.manage("migrate", "--noinput", env=env)
    process = service.start(service.bin / "gunicorn", "--config", "gunicorn.conf.py", env=env, log_name="gunicorn")
    wait_for(lambda: request(port, "/health/")[0] == 200, timeout=60, message="gunicorn to answer /health/")
    return process, port


def request(port, path, host="localhost", method="GET", headers=None, body=None, source=None, timeout=CLIENT_TIMEOUT):
    """(status, headers as a list of pairs, body, seconds) of one request on a new connection."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=timeout, source_address=(source, 0) if source else None
    )
    started = time.monotonic()
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        content = response.read()
        return response.status, response.getheaders(), content, time.monotonic() - started
    finally:
        connection.close()


def header(headers, name):
    values = [value for key, value in headers if key.lower() == name.lower()]
    return values[0] if values else None


def ready(port, timeout=CLIENT_TIMEOUT):
    """(status, body as JSON or None, seconds) of /ready/; a hang is (None, None, seconds)."""
    started = time.monotonic()
    try:
        status, _, body, seconds = request(port, "/ready/", timeout=timeout)
    except TimeoutError:
        return None, None, time.monotonic() - started
    return status, json.loads(body), seconds


# --- Requests survive a deploy -------------------------------------------------


def finished(out):
    """The load generator's records so far (a line being written is left out)."""
    return [json.loads(line) for line in out.read_text().split("\n")[:-1]]


def steady(records):
    return len(records) >= 10 and any(r["path"].startswith("/slow/") and r.get("status") == 200 for r in records)


def test_requests_in_flight_survive_sigterm_and_later_connections_are_refused(service, tmp_path, figure):
    slow_seconds = 2.5
    printed = service.run(service.bin / "gunicorn", "--config", "gunicorn.conf.py", "--print-config").stdout
    graceful_timeout = int(re.search(r"^graceful_timeout\s*=\s*(\d+)", printed, re.MULTILINE).group(1))
    assert graceful_timeout > 4 * slow_seconds  # the slowest request, and one queued behind it, finish
    with PostgresServer() as postgres, RedisServer() as redis:
        gunicorn, port = start_gunicorn(service, tmp_path, postgres.create_database("app"), redis.url)
        assert (
            request(port, f"/slow/?seconds={slow_seconds}", host=DOMAIN, headers={"X-Forwarded-Proto": "https"})[0]
            == 200
        ), log_of(gunicorn)

        out = tmp_path / "load.jsonl"
        generator = subprocess.Popen(
            [
                sys.executable, str(LOAD),
                "--port", str(port), "--host", DOMAIN,
                "--threads", "8", "--duration", "40", "--max-requests", "4000", "--stop-after-refused", "40",
                "--slow-every", "3", "--slow-path", f"/slow/?seconds={slow_seconds}", "--fast-path", "/db/",
                "--timeout", "60", "--out", str(out),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert generator.stdout.readline().strip() == "started"
            # Steady load: requests served, slow ones among them, every thread busy.
            wait_for(lambda: steady(finished(out)), timeout=60, message="the load to be served, slow requests included")
            signalled = time.monotonic()
            # The master only, as `docker stop` does.
            returncode = processes.stop(gunicorn, signal.SIGTERM, timeout=60, group=False)
            stopped = time.monotonic()
            assert generator.wait(150) == 0
        finally:
            processes.stop(generator, signal.SIGKILL)
        records = finished(out)

    log = log_of(gunicorn)
    assert returncode == 0, log
    assert "Handling signal: term" in log or "Shutting down" in log, log

    before = [r for r in records if r["connected"] is not None and r["connected"] < signalled]
    # Once a connection has been refused, the listener is closed for good.
    closed = min((r["start"] for r in records if r["outcome"] == "refused"), default=stopped)
    during = [r for r in records if r not in before and r["start"] < min(closed, stopped)]
    after = [r for r in records if r not in before and r["start"] >= min(closed, stopped)]

    def counts(group):
        outcomes = {}
        for r in group:
            key = f"{r['outcome']} {r.get('status', '')}".strip()
            outcomes[key] = outcomes.get(key, 0) + 1
        return outcomes

    failed_before = [r for r in before if (r["outcome"], r.get("status")) != ("ok", 200)]
    figure("deploy: requests sent (connections attempted)", len(records))
    figure(
        "deploy: requests accepted before SIGTERM / completed 200 / failed",
        (f"{len(before)} / {len(before) - len(failed_before)} / {len(failed_before)}"),
    )
    figure(
        "deploy: slow requests in flight at SIGTERM",
        sum(1 for r in before if r["path"].startswith("/slow/") and r["end"] > signalled),
    )
    figure("deploy: outcomes during the graceful stop", counts(during))
    figure("deploy: outcomes after the listener closed", counts(after))
    figure("deploy: seconds from SIGTERM to gunicorn's exit", round(stopped - signalled, 2))

    resets = [r for r in during if r["outcome"] == "reset"]
    figure(
        "deploy: longest wait of a connection reset during the graceful stop (s)",
        round(max((r["end"] - r["start"] for r in resets), default=0), 2),
    )

    assert len(before) >= 10 and any(r["path"].startswith("/slow/") and r["end"] > signalled for r in before)
    assert failed_before == [], counts(before)
    # Attempts during the graceful stop: served, or (see the next test) reset;
    # never an error status, never a hang past the stop. Once the listener
    # closed: refused, at once.
    assert all(r["outcome"] in ("ok", "reset") for r in during), counts(during)
    assert all(r.get("status", 200) == 200 for r in during), counts(during)
    assert after and all(r["outcome"] == "refused" for r in after), counts(after)
    figure("deploy: longest refusal after the listener closed (s)", round(max(r["end"] - r["start"] for r in after), 3))


def test_a_connection_attempted_during_the_graceful_stop_is_refused_at_once(service, tmp_path, figure):
    with PostgresServer() as postgres, RedisServer() as redis:
        gunicorn, port = start_gunicorn(service, tmp_path, postgres.create_database("app"), redis.url, workers=1)
        https = {"X-Forwarded-Proto": "https"}
        # A request that stays in flight until the test lets it end.
        started, until = tmp_path / f"started-{uuid.uuid4().hex}", tmp_path / f"until-{uuid.uuid4().hex}"
        in_flight = []
        path = f"/slow/?seconds=60&started={started}&until={until}"
        slow = threading.Thread(target=lambda: in_flight.append(request(port, path, host=DOMAIN, headers=https)[0]))
        slow.start()
        wait_for(started.exists, timeout=CLIENT_TIMEOUT, message="the slow request to be in flight")

        # The master only, as `docker stop` does: the graceful stop begins,
        # and the listener closes while the request is still in flight.
        gunicorn.send_signal(signal.SIGTERM)
        wait_for(lambda: not listening(port), timeout=CLIENT_TIMEOUT, message="gunicorn to close its listener")
        assert in_flight == [] and gunicorn.poll() is None, "the graceful stop was over before the listener closed"
        attempted = time.monotonic()
        try:
            outcome = request(port, "/db/", host=DOMAIN, headers=https)[0]
        except ConnectionRefusedError:
            outcome = "refused"
        except (ConnectionResetError, http.client.RemoteDisconnected):
            outcome = "reset"
        waited = time.monotonic() - attempted

        until.touch()
        slow.join(CLIENT_TIMEOUT)
        assert processes.stop(gunicorn, timeout=60, group=False) == 0, log_of(gunicorn)
        figure("graceful stop: a new connection's outcome (outcome, s)", (outcome, round(waited, 2)))
        assert in_flight == [200]
        assert outcome == "refused", f"{outcome} after {waited:.1f} s"


def listening(port):
    """Whether a socket listens on 127.0.0.1:port (Linux: /proc/net/tcp, state 0A)."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":
            return True
    return False


# --- Dependencies fail, the service degrades honestly --------------------------


def assert_not_ready(port, failed, probes=3):
    """/ready/ answers 503 naming exactly `failed`, each time rather than hang; returns the slowest answer's seconds."""
    slowest = 0.0
    for _ in range(probes):
        status, body, seconds = ready(port, timeout=HANG)
        slowest = max(slowest, seconds)
        assert (status, body) == (503, {"status": "unavailable", "failed": failed}), f"after {seconds:.1f} s"
        assert request(port, "/health/")[0] == 200
    return slowest


def database_view(port):
    return request(port, "/db/", host=DOMAIN, headers={"X-Forwarded-Proto": "https"})[0]


def concurrent_statuses(port, count=6):
    """Statuses of `count` concurrent requests to the database view (reaches every thread of the worker)."""
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(database_view(port))) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CLIENT_TIMEOUT + 5)
    return statuses


def test_ready_follows_postgres_and_connections_recover_without_a_restart(service, tmp_path, figure):
    with PostgresServer() as postgres, RedisServer() as redis:
        gunicorn, port = start_gunicorn(service, tmp_path, postgres.create_database("app"), redis.url, workers=1)
        assert ready(port)[:2] == (200, {"status": "ok", "checks": ["database", "cache", "broker"]})

        # Persistent connections in every thread, then a database restart with
        # no request in between: the first requests meet stale connections.
        assert concurrent_statuses(port) == [200] * 6, log_of(gunicorn)
        postgres.stop()
        postgres.start()
        first = [database_view(port) for _ in range(4)] + concurrent_statuses(port)
        figure("database restart: statuses of the first 10 requests after it", first)
        assert first == [200] * 10, log_of(gunicorn)

        # An outage: not ready, still alive; ready again once it is back.
        postgres.stop()
        slowest = assert_not_ready(port, ["database"])
        figure("database down: slowest /ready/ (s)", round(slowest, 2))
        postgres.start()
        wait_for(lambda: ready(port)[0] == 200, timeout=30, message="/ready/ after the database is back")
        after = concurrent_statuses(port) + [database_view(port) for _ in range(4)]
        assert after == [200] * 10, log_of(gunicorn)
        assert gunicorn.poll() is None
        assert service.stop(gunicorn) == 0


def test_ready_follows_redis_without_a_restart(service, tmp_path, figure):
    with PostgresServer() as postgres, RedisServer() as redis:
        gunicorn, port = start_gunicorn(service, tmp_path, postgres.create_database("app"), redis.url, workers=1)
        assert ready(port)[0] == 200

        # A restart with no probe in between: the connections the probe keeps
        # are closed by it, and the next probe must not report them.
        redis.stop()
        redis.start()
        first = [ready(port)[0] for _ in range(3)]
        figure("redis restart: statuses of the first 3 /ready/ after it", first)
        assert first == [200] * 3, log_of(gunicorn)

        redis.stop()
        slowest = assert_not_ready(port, ["cache", "broker"])
        figure("redis down: slowest /ready/ (s)", round(slowest, 2))
        assert database_view(port) == 200  # what does not need Redis goes on working

        redis.start()
        wait_for(lambda: ready(port)[0] == 200, timeout=30, message="/ready/ after Redis is back")
        assert gunicorn.poll() is None
        assert service.stop(gunicorn) == 0


class SilentServer:
    """Accepts TCP connections and never says a word: a dependency that hangs."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = []
        self.thread = threading.Thread(target=self.accept, daemon=True)
        self.thread.start()

    def accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self):
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.mark.parametrize("dependency", ["database", "redis", "database and redis"])
def test_ready_answers_in_time_when_a_dependency_accepts_but_never_answers(service, tmp_path, figure, dependency):
    silent = SilentServer()
    try:
        with PostgresServer() as postgres, RedisServer() as redis:
            database_url, redis_url = postgres.create_database("app"), redis.url
            service.manage("migrate", "--noinput", env=service.production_env(database_url, redis_url))
            failed = []
            if "database" in dependency:
                database_url, failed = f"postgresql://test:secret@127.0.0.1:{silent.port}/app", ["database"]
            if "redis" in dependency:
                redis_url, failed = f"redis://127.0.0.1:{silent.port}/0", [*failed, "cache", "broker"]
            # One worker with its 2 threads (the rendered default), as in a small container.
            gunicorn, port = start_gunicorn(service, tmp_path, database_url, redis_url, workers=1, migrate=False)

            # Two probes (the worker's two threads); a hang is one that outlives HANG.
            probes = []
            threads = [threading.Thread(target=lambda: probes.append(ready(port, timeout=HANG))) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(HANG + 5)
            try:
                alive = request(port, "/health/", timeout=HANG)[0]
            except TimeoutError:
                alive = "no answer"
            slowest = max(seconds for _, _, seconds in probes)
            statuses = sorted(str(status) for status, _, _ in probes)
            figure(f"silent {dependency}: 2 concurrent /ready/ (slowest s, statuses)", (round(slowest, 2), statuses))
            figure(f"silent {dependency}: /health/ after them", alive)

            assert [(status, body) for status, body, _ in probes] == [
                (503, {"status": "unavailable", "failed": failed})
            ] * 2, f"slowest {slowest:.1f} s:\n{log_of(gunicorn)}"
            assert alive == 200
    finally:
        silent.close()
        if "gunicorn" in locals():
            service.stop(gunicorn, signal.SIGKILL)  # its threads may hang: no graceful stop to wait for


# --- Security over real HTTP ---------------------------------------------------


def cookies(headers):
    """{name: set of lower-cased attributes} of the Set-Cookie headers."""
    result = {}
    for key, value in headers:
        if key.lower() == "set-cookie":
            name, _, rest = value.partition("=")
            result[name] = {part.strip().lower() for part in rest.split(";")[1:]}
    return result


def test_security_headers_cookies_redirects_and_hosts(service, tmp_path):
    https = {"X-Forwarded-Proto": "https"}
    with PostgresServer() as postgres, RedisServer() as redis:
        database_url = postgres.create_database("app")
        env = service.production_env(
            database_url,
            redis.url,
            DJANGO_SUPERUSER_USERNAME="admin",
            DJANGO_SUPERUSER_PASSWORD="a long and unguessable password",
            DJANGO_SUPERUSER_EMAIL="admin@example.org",
        )
        service.manage("migrate", "--noinput", env=env)
        service.manage("createsuperuser", "--noinput", env=env)
        gunicorn, port = start_gunicorn(service, tmp_path, database_url, redis.url, migrate=False)

        status, headers, body, _ = request(port, "/admin/login/", host=DOMAIN, headers=https)
        assert status == 200, log_of(gunicorn)
        hsts = header(headers, "Strict-Transport-Security")
        assert hsts is not None
        directives = {
            part.strip().partition("=")[0].lower(): part.strip().partition("=")[2] for part in hsts.split(";")
        }
        assert int(directives["max-age"]) >= 365 * 24 * 60 * 60
        assert "includesubdomains" in directives
        assert header(headers, "X-Content-Type-Options") == "nosniff"
        assert header(headers, "X-Frame-Options") == "DENY"
        assert header(headers, "Referrer-Policy") in (
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin",
            "no-referrer",
        )
        assert header(headers, "Cross-Origin-Opener-Policy") == "same-origin"
        csrf = cookies(headers)["csrftoken"]
        assert {"secure", "httponly"} <= csrf and ({"samesite=lax", "samesite=strict"} & csrf), csrf

        # Logging in works, over HTTPS as the proxy reports it, and sets a safe session cookie.
        token = header(headers, "Set-Cookie").split(";")[0].partition("=")[2]
        marker = b'name="csrfmiddlewaretoken" value="'
        form_token = body.split(marker)[1].split(b'"')[0].decode()
        form = f"csrfmiddlewaretoken={form_token}&username=admin&password=a+long+and+unguessable+password&next=/admin/"
        status, headers, _, _ = request(
            port,
            "/admin/login/?next=/admin/",
            host=DOMAIN,
            method="POST",
            body=form.encode(),
            headers={
                **https,
                "Cookie": f"csrftoken={token}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"https://{DOMAIN}/admin/login/",
                "Origin": f"https://{DOMAIN}",
            },
        )
        assert (status, header(headers, "Location")) == (302, "/admin/"), log_of(gunicorn)
        session = cookies(headers)["sessionid"]
        assert {"secure", "httponly"} <= session and ({"samesite=lax", "samesite=strict"} & session), session

        # Plain HTTP is redirected to HTTPS, except the probes.
        status, headers, _, _ = request(port, "/admin/login/", host=DOMAIN)
        assert (status, header(headers, "Location")) == (301, f"https://{DOMAIN}/admin/login/")
        for probe in ("/health/", "/ready/"):
            assert request(port, probe, host=DOMAIN)[0] == 200
            assert request(port, probe, host="10.0.0.7:8000")[0] == 200  # an orchestrator's own Host

        # A forged Host gets 400, not a page.
        assert request(port, "/admin/login/", host="attacker.example.com", headers=https)[0] == 400
        assert request(port, "/admin/login/", host="attacker.example.com")[0] == 400
        # A forged X-Forwarded-Host: refused (400), or ignored; never a page for that host.
        forged = {**https, "X-Forwarded-Host": "attacker.example.com"}
        status, headers, body, _ = request(port, "/admin/login/", host=DOMAIN, headers=forged)
        assert status in (200, 400), status
        assert b"attacker.example.com" not in body and "attacker" not in str(headers)
        assert service.stop(gunicorn) == 0


def test_forwarded_headers_are_trusted_only_from_the_proxy(service, tmp_path):
    # The proxy is 127.0.0.1 (FORWARDED_ALLOW_IPS's default); this client
    # connects from 127.0.0.2, another peer.
    with PostgresServer() as postgres, RedisServer() as redis:
        gunicorn, port = start_gunicorn(service, tmp_path, postgres.create_database("app"), redis.url, workers=1)
        proxy, stranger = "127.0.0.1", "127.0.0.2"
        https = {"X-Forwarded-Proto": "https"}

        # From the proxy, X-Forwarded-Proto is believed.
        assert request(port, "/admin/login/", host=DOMAIN, headers=https, source=proxy)[0] == 200
        # From anyone else, it is not: plain HTTP, redirected.
        status, headers, _, _ = request(port, "/admin/login/", host=DOMAIN, headers=https, source=stranger)
        assert (status, header(headers, "Location")) == (301, f"https://{DOMAIN}/admin/login/")
        # Nor is X-Forwarded-Host: the request is answered for its own Host.
        forged = {"X-Forwarded-Host": "attacker.example.com"}
        status, headers, _, _ = request(port, "/admin/login/", host=DOMAIN, headers=forged, source=stranger)
        assert (status, header(headers, "Location")) == (301, f"https://{DOMAIN}/admin/login/")
        assert service.stop(gunicorn) == 0
