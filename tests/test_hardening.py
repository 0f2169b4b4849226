"""Attacks on the rendered production stack, as an outsider (through Caddy)
or as a flaw in one of its containers would make them: each one succeeded
against an earlier release. Traffic goes only to the test's own stack, on
loopback, and every attack is bounded in count and time.

One stack (the defaults variant: Caddy, media on a volume) serves the
module. The figures (time to refuse, memory, probe latencies) are printed
at the end of the run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import re
import secrets
import ssl
import statistics
import threading
import time
from urllib.parse import urlencode

import pytest

from harness.answers import DOMAIN, KIT
from harness.docker import docker
from harness.service import wait_for
from harness.stack import HttpsStack as HardenedStack
from harness.stack import operated_stack, parse_response, read_all

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

# Small enough to fill in the test, far below the stack's memory limits.
CACHE_MAX_MEMORY_MB = 16
GIB = 2**30
MIB = 2**20


@pytest.fixture(scope="module")
def stack(render, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hardening")
    with operated_stack(
        render("defaults"),
        directory,
        "hardening",
        HardenedStack,
        CACHE_MAX_MEMORY=f"{CACHE_MAX_MEMORY_MB}mb",
    ) as project:
        project.trust_caddy(directory / "caddy-root.crt")
        yield project


# --------------------------------------------------------------------------
# Abusive clients
# --------------------------------------------------------------------------


def test_a_1_gib_upload_is_refused_at_the_proxy_before_web_stores_it(stack, figure):
    """A 1 GiB multipart POST to the admin's login page: it was stored in full
    in web's /tmp (memory) before CSRF answered 403."""
    before, tmp_before = stack.memory("web"), web_tmp_kib(stack)
    boundary = secrets.token_hex(8)
    # One file field: Django's parser writes it to a temporary file as it
    # reads it, and answers only after the last byte.
    prefix = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    suffix = f"\r\n--{boundary}--\r\n".encode()
    # Past the CSRF origin and cookie checks: Django reads the body.
    head = (
        f"POST /admin/login/ HTTP/1.1\r\nHost: {DOMAIN}\r\nOrigin: https://{DOMAIN}\r\n"
        f"Referer: https://{DOMAIN}/admin/login/\r\nCookie: csrftoken={secrets.token_hex(16)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {GIB}\r\n\r\n"
    ).encode()
    zeros_end = GIB - len(suffix)

    def next_piece(offset: int) -> bytes:
        if offset < len(prefix):
            return prefix[offset:]
        if offset < zeros_end:
            return bytes(min(MIB, zeros_end - offset))
        return suffix[offset - zeros_end :]

    sent, response = 0, b""
    with stack.connect(timeout=120) as sock:
        started = time.monotonic()
        sock.sendall(head)
        sock.setblocking(False)
        # Send until the proxy answers (or the whole GiB has gone).
        while sent < GIB and not response:
            try:
                sent += sock.send(next_piece(sent))
            except (BlockingIOError, ssl.SSLWantWriteError):
                time.sleep(0.001)
            except OSError:
                break
            with contextlib.suppress(BlockingIOError, ssl.SSLWantReadError):
                response = sock.recv(65536)
        sock.setblocking(True)
        if not response:
            response = read_all(sock)
        elapsed = time.monotonic() - started
    status, _, _ = parse_response(response)
    figure("1 GiB upload: refused after", f"{elapsed:.2f} s, {sent / MIB:.0f} MiB sent")
    assert status == 413
    assert elapsed < 1
    grown = stack.memory("web") - before
    figure("1 GiB upload: web's memory grew by", f"{grown / MIB:.1f} MiB")
    assert grown < 50 * MIB
    # Nothing of it reached web's temporary files.
    assert web_tmp_kib(stack) - tmp_before < 1024


def web_tmp_kib(stack: HardenedStack) -> int:
    return int(stack.exec("web", "du", "-sk", "/tmp").split()[0])


class SlowClients:
    """Connections through the proxy that trickle their request: some never
    finish their headers, the others their body. One thread keeps them all
    alive with a byte every few seconds."""

    def __init__(self, stack: HardenedStack, slow_headers: int, slow_bodies: int):
        self.stack, self.slow_headers, self.stop = stack, slow_headers, threading.Event()
        # Opened many at a time: all are in place within a second or two.
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            self.sockets = list(pool.map(self.start, range(slow_headers + slow_bodies)))
        self.thread = threading.Thread(target=self.trickle, daemon=True)
        self.thread.start()

    def start(self, index: int) -> ssl.SSLSocket:
        sock = self.stack.connect()
        if index < self.slow_headers:
            sock.sendall(f"GET /health/ HTTP/1.1\r\nHost: {DOMAIN}\r\n".encode())
        else:
            # Past the CSRF origin and cookie checks: Django reads the body
            # for the form's token.
            sock.sendall(
                f"POST /admin/login/ HTTP/1.1\r\nHost: {DOMAIN}\r\nOrigin: https://{DOMAIN}\r\n"
                f"Referer: https://{DOMAIN}/admin/login/\r\nCookie: csrftoken={secrets.token_hex(16)}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n".encode()
            )
        return sock

    def trickle(self):
        while not self.stop.wait(2):
            for index, sock in enumerate(self.sockets):
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n" if index < self.slow_headers else b"a")

    def open(self) -> int:
        """How many of the connections the proxy still holds open."""
        count = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                count += sock.recv(1) != b""
            except (BlockingIOError, ssl.SSLWantReadError):
                count += 1
            except OSError:
                pass
            finally:
                sock.setblocking(True)
        return count

    def close(self):
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def test_slow_clients_through_the_proxy_do_not_starve_gunicorn(stack, figure):
    """200 connections trickling their headers and 100 trickling a body:
    bodies went straight to gunicorn's threads, and every probe failed."""
    clients = SlowClients(stack, slow_headers=200, slow_bodies=100)
    try:
        # The attack is in place when the probes start.
        held = clients.open()
        latencies, failures = [], []
        for _ in range(16):
            started = time.monotonic()
            try:
                status = stack.request("GET", "/health/", timeout=1)[0]
            except OSError as error:
                status = repr(error)
            latency = time.monotonic() - started
            latencies.append(latency)
            if status != 200 or latency >= 1:
                failures.append((status, round(latency, 2)))
            time.sleep(0.5)
        # The proxy closes the connections whose headers never end at its
        # read_header timeout (10 s); the bodies are still being read.
        held_after = clients.open()
    finally:
        clients.close()
    figure(
        "health probes under 300 slow clients: median, max",
        f"{statistics.median(latencies) * 1000:.0f} ms, {max(latencies) * 1000:.0f} ms",
    )
    figure("slow clients held open by the proxy: before, after the probes", f"{held}, {held_after} of 300")
    assert not failures, f"{len(failures)} of {len(latencies)} probes failed or were slow: {failures[:3]}"
    # The attack was in progress while the probes ran.
    assert held >= 290
    assert held_after >= 95


class Browser:
    """A browser at the test's address, through the proxy: keeps its cookies
    and sends the login form with its CSRF token."""

    def __init__(self, stack: HardenedStack, headers: dict[str, str] | None = None):
        self.stack, self.cookies, self.headers = stack, {}, headers or {}

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        raw = self.stack.raw_request(method, path, {"Cookie": cookie, **self.headers, **(headers or {})}, body)
        for name, value in re.findall(rb"^set-cookie: ([^=]+)=([^;]*)", raw.partition(b"\r\n\r\n")[0], re.I | re.M):
            self.cookies[name.decode()] = value.decode()
        return parse_response(raw)

    def log_in(self, username: str, password: str) -> int:
        status, _, page = self.send("GET", "/admin/login/")
        assert status == 200, page[:300]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"})
        origin = f"https://{DOMAIN}"
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": origin,
            "Referer": f"{origin}/admin/login/",
        }
        return self.send("POST", "/admin/login/", form.encode(), headers)[0]


def test_password_guessing_through_the_proxy_is_locked_out_and_logged_with_the_client_address(stack):
    """40 wrong passwords in a row were all tried, then the right one logged in."""
    limit = int(stack.exec("web", "sh", "-c", "echo ${AXES_FAILURE_LIMIT:-5}"))
    passwords = {"alice": secrets.token_urlsafe(16), "bob": secrets.token_urlsafe(16)}
    stack.manage_shell(
        "from django.contrib.auth import get_user_model\n"
        f"for name, password in {passwords!r}.items():\n"
        "    get_user_model().objects.create_superuser(name, f'{name}@example.org', password)"
    )
    # Claiming another address changes nothing: the proxy replaces the header.
    forged = "198.51.100.9"
    attacker = Browser(stack, {"X-Forwarded-For": forged})
    statuses = [attacker.log_in("alice", f"guess {attempt}") for attempt in range(limit + 1)]
    # The form again for the first guesses, then 429: the limit-th is refused.
    assert statuses[: limit - 1] == [200] * (limit - 1) and set(statuses[limit - 1 :]) == {429}, statuses
    assert attacker.log_in("alice", passwords["alice"]) == 429
    # Another user, from the same address, is not locked out.
    assert Browser(stack).log_in("bob", passwords["bob"]) == 302

    # The lockout is logged at WARNING with the address the proxy saw.
    access_log = docker("logs", stack.container_id("proxy")).stderr.splitlines()
    client = json.loads([line for line in access_log if "/admin/login/" in line][-1])["request"]["remote_ip"]
    lockouts = [line for line in stack.logs("web").splitlines() if "Locking out" in line]
    assert lockouts and all("WARNING" in line and client in line for line in lockouts), (client, lockouts)
    assert not any(forged in line for line in lockouts)


def test_a_burst_of_logins_over_many_usernames_does_not_exhaust_web(stack, figure):
    """Every login attempt hashes a password, for a user that does not exist
    too, and the throttle counts per username: guesses spread over usernames
    all reach the hasher. At Django's Argon2 cost (100 MiB a hash), gunicorn's
    threads hashing at once took web past its memory limit."""
    before = stack.state("web")["RestartCount"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(lambda i: Browser(stack).log_in(f"nobody{i}", f"guess {i}"), range(48)))
    figure("48 logins, 24 at a time, over 48 usernames: web's memory after", f"{stack.memory('web') / MIB:.0f} MiB")
    assert statuses == [200] * 48
    state = stack.state("web")
    assert state["RestartCount"] == before and not state["OOMKilled"]


# --------------------------------------------------------------------------
# What the proxy answers
# --------------------------------------------------------------------------


def test_ready_is_not_public_but_answers_inside_the_stack(stack):
    assert stack.request("GET", "/ready/")[0] == 404
    assert stack.request("GET", "/health/")[0] == 200
    assert stack.compose("exec", "-T", "web", "scripts/http_probe.sh", "/ready/", check=False).returncode == 0


def test_media_files_carry_hsts_and_cross_origin_headers(stack):
    name = stack.manage_shell(
        "from django.core.files.base import ContentFile; from django.core.files.storage import default_storage; "
        "print(default_storage.save('hardening.txt', ContentFile(b'hello')))"
    )
    status, headers, body = stack.request("GET", f"/media/{name}")
    assert (status, body) == (200, b"hello")
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    assert headers["cross-origin-resource-policy"] == "same-origin"
    assert "camera=()" in headers["permissions-policy"]


def test_the_proxy_logs_each_request_as_one_json_line(stack):
    marker = secrets.token_hex(6)
    stack.request("GET", f"/health/?{marker}")

    def logged():
        logs = docker("logs", stack.container_id("proxy"))
        for line in (logs.stdout + logs.stderr).splitlines():
            if marker in line:
                assert line.startswith("{"), line
                return json.loads(line)
        return None

    entry = wait_for(logged, timeout=10, message="no access log line")
    assert entry["request"]["uri"] == f"/health/?{marker}"
    assert entry["status"] == 200
    assert entry["request"]["remote_ip"]


# --------------------------------------------------------------------------
# Least privilege and isolation
# --------------------------------------------------------------------------


def test_the_app_connects_as_a_role_that_is_not_a_superuser(stack):
    """The app's user was the superuser: COPY ... TO PROGRAM ran a shell
    command in the db container, from the web container."""
    app_user = stack.exec("db", "printenv", "APP_DB_USER").strip()
    assert app_user != stack.exec("db", "printenv", "POSTGRES_USER").strip()
    assert stack.manage_shell("from django.db import connection; print(connection.settings_dict['USER'])") == app_user
    assert stack.sql(f"select rolsuper from pg_roles where rolname = '{app_user}'") == "f"
    # It owns the database and the tables the migrations made.
    assert stack.sql("select pg_get_userbyid(datdba) from pg_database where datname = current_database()") == app_user
    owners = stack.sql("select distinct tableowner from pg_tables where schemaname = 'public'")
    assert owners == app_user
    assert int(stack.sql("select count(*) from django_migrations")) > 10

    marker = f"/tmp/hardening-{secrets.token_hex(4)}"
    result = stack.compose(
        "exec",
        "-T",
        "web",
        "python",
        "src/manage.py",
        "shell",
        "--no-imports",
        "-c",
        "from django.db import connection; connection.cursor().execute("
        f"\"copy (select 1) to program 'touch {marker}'\")",
        check=False,
    )
    assert result.returncode != 0
    assert "pg_execute_server_program" in result.stderr or "must be superuser" in result.stderr
    assert stack.compose("exec", "-T", "db", "test", "-e", marker, check=False).returncode == 1


def test_make_db_app_role_hands_an_older_database_over_to_the_app_role(stack):
    """A database made by an earlier release: its tables belong to the
    superuser, the app's old user. `make db-app-role` gives them to
    APP_DB_USER, and refuses to make the superuser the app's role."""
    app_user = stack.exec("db", "printenv", "APP_DB_USER").strip()
    stack.sql("create table legacy_rows (id bigint generated always as identity primary key, note text)")
    stack.sql("create view legacy_notes as select note from legacy_rows")
    assert stack.sql("select tableowner from pg_tables where tablename = 'legacy_rows'") != app_user

    result = stack.operator("make", "db-app-role")
    assert result.returncode == 0, result.stderr
    assert f"app-role: {app_user} owns" in result.stdout
    owners = stack.sql(
        "select distinct pg_get_userbyid(relowner) from pg_class "
        "where relname in ('legacy_rows', 'legacy_notes', 'legacy_rows_id_seq')"
    )
    assert owners == app_user
    # The app can now change the table, as a migration would.
    stack.manage_shell(
        "from django.db import connection; connection.cursor().execute('alter table legacy_rows add column done bool')"
    )
    assert stack.sql(f"select rolsuper from pg_roles where rolname = '{app_user}'") == "f"

    superuser = stack.exec("db", "printenv", "POSTGRES_USER").strip()
    refused = stack.compose(
        "exec", "-T", "--env", f"APP_DB_USER={superuser}", "db", "app-role", check=False
    )  # fmt: skip
    assert refused.returncode == 1
    assert "APP_DB_USER and POSTGRES_USER are both" in refused.stderr


def reachable_from(stack: HardenedStack, service: str, host: str, port: int) -> str:
    """What a connection from the service's network namespace to host:port
    gets: "connected", or the error. Made from a throw-away container that
    shares the service container's network (the proxy's image has no
    Python)."""
    code = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=3).close()\n"
        "    print('connected')\n"
        "except OSError as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    image = json.loads(docker("inspect", stack.container_id("web")).stdout)[0]["Config"]["Image"]
    return docker(
        "run", "--rm", f"--network=container:{stack.container_id(service)}", "--entrypoint=python", image, "-c", code
    ).stdout.strip()


def test_the_proxy_reaches_web_but_not_the_database_or_redis(stack):
    """From the internet-facing proxy, db:5432 and redis:6379 answered."""
    assert reachable_from(stack, "proxy", "web", 8000) == "connected"
    for host, port in [("db", 5432), ("redis", 6379), ("cache", 6379)]:
        outcome = reachable_from(stack, "proxy", host, port)
        assert outcome.startswith("gaierror"), (host, outcome)
    # web, on the backend network, reaches both.
    assert reachable_from(stack, "web", "db", 5432) == "connected"


def redis_says(stack: HardenedStack, host: str, command: str) -> str:
    """Redis's first reply line to a command sent without a password, from web."""
    code = (
        "import socket, sys\n"
        f"s = socket.create_connection(({host!r}, 6379), timeout=5)\n"
        f"s.sendall({(command + chr(13) + chr(10)).encode()!r})\n"
        "print(s.recv(200).decode().splitlines()[0])\n"
    )
    return stack.exec("web", "python", "-c", code).strip()


def test_redis_and_the_cache_refuse_commands_without_the_password(stack):
    for host in ("redis", "cache"):
        assert redis_says(stack, host, "PING").startswith("-NOAUTH"), host
        assert redis_says(stack, host, "DBSIZE").startswith("-NOAUTH"), host
    # The app has the password: /ready/ checks the cache and the broker.
    assert stack.compose("exec", "-T", "web", "scripts/http_probe.sh", "/ready/", check=False).returncode == 0


def queued(stack: HardenedStack) -> int:
    return int(stack.exec("redis", "redis-cli", "llen", "celery").strip())


def test_clearing_or_filling_the_cache_loses_no_queued_task(stack):
    """Cache and broker shared Redis database 0: cache.clear() deleted the queued tasks."""
    # Beat stops too, or its heartbeat joins the queue while nothing takes it;
    # one it queued before it stopped is counted beforehand.
    stack.compose("stop", "worker", "beat")
    try:
        before = queued(stack)
        stack.manage_shell(f"from {KIT}.tasks import add; [add.delay(i, i) for i in range(3)]")
        assert queued(stack) == before + 3
        # Filled to four times its bound: the cache evicts its own keys.
        stack.manage_shell(
            "from django.core.cache import cache\n"
            f"for i in range({CACHE_MAX_MEMORY_MB * 4}): cache.set(f'filler-{{i}}', bytes(2**20), None)\n"
            "cache.clear()"
        )
        assert queued(stack) == before + 3
        evicted = stack.exec("cache", "redis-cli", "info", "stats")
        assert int(dict(line.split(":") for line in evicted.split() if ":" in line)["evicted_keys"]) > 0
    finally:
        stack.compose("start", "worker", "beat")
    wait_for(lambda: queued(stack) == 0, timeout=60, message="the worker never took the queued tasks")


LONG_RUNNING = ("db", "backup", "redis", "cache", "web", "worker", "beat", "proxy")


def test_every_container_drops_capabilities_and_is_bounded(stack):
    containers = stack.by_service()
    assert set(LONG_RUNNING) <= set(containers)
    for service, (container,) in containers.items():
        host = container["HostConfig"]
        assert host["CapDrop"] == ["ALL"], service
        assert "no-new-privileges:true" in host["SecurityOpt"], service
        assert 0 < host["PidsLimit"] <= 4096, service
        assert host["Memory"] > 0, service
        assert host["LogConfig"]["Type"] == "json-file" and host["LogConfig"]["Config"]["max-size"], service
        assert host["ReadonlyRootfs"], service
        for mount in host.get("Tmpfs") or {}:
            assert "size=" in host["Tmpfs"][mount], (service, mount)
    # What each may add back, and no more.
    added = {service: set(container["HostConfig"]["CapAdd"] or []) for service, (container,) in containers.items()}
    for service in ("web", "worker", "beat", "migrate"):
        assert added[service] == set(), service
    assert added["proxy"] <= {"NET_BIND_SERVICE"}


def test_the_app_image_has_no_setuid_or_setgid_file(stack):
    found = stack.exec("web", "sh", "-c", "find / -xdev -type f -perm /6000 2>/dev/null; true")
    assert found.strip() == ""


# --------------------------------------------------------------------------
# Last: it restarts web
# --------------------------------------------------------------------------

# gunicorn's master (the child of the container's init) and its workers.
GUNICORN = """
read -r master _ </proc/1/task/1/children
echo "$master" $(cat /proc/"$master"/task/*/children)
"""


def test_a_stuck_web_container_restarts_by_itself(stack, figure):
    """Compose does not act on health: a stopped gunicorn stayed unhealthy
    (and kept receiving traffic) until someone noticed."""
    before = stack.state("web")["RestartCount"]
    processes = stack.exec("web", "sh", "-c", GUNICORN).split()
    assert len(processes) >= 2, processes
    stuck = time.monotonic()
    stack.exec("web", "sh", "-c", 'kill -STOP "$@"', "sh", *processes)

    def restarted():
        state = stack.state("web")
        return state["RestartCount"] > before and state.get("Health", {}).get("Status") == "healthy"

    wait_for(restarted, timeout=120, interval=2, message="web was never restarted")
    figure("a stuck web container: healthy again after", f"{time.monotonic() - stuck:.0f} s")
    assert "watchdog: /health/ failed 3 checks in a row" in stack.logs("web")
    assert stack.request("GET", "/health/")[0] == 200
