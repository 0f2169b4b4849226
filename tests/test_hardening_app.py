"""Attacks and failures the rendered service must withstand: password
guessing, bad hosts and URLs in its environment, a mail server that hangs,
and headers that lie about the client's address."""

import http.client
import json
import re
import signal
import socket
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from harness.answers import DOMAIN
from harness.servers import free_port
from harness.service import http_get, log_of, variant_service, wait_for

pytestmark = pytest.mark.service

VARIANTS = ["defaults", "s3-no-proxy-no-beat-sentry"]

CLIENT = "203.0.113.7"


@pytest.fixture(scope="module", params=VARIANTS)
def service(request, render, tmp_path_factory):
    yield from variant_service(render, tmp_path_factory, request.param, "hardening")


def fresh_database(postgres_server):
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:12]}")


class Gunicorn:
    """The service under gunicorn with its config and production settings, on a fresh database."""

    def __init__(self, service, env, log_name):
        self.service = service
        self.port = int(env["GUNICORN_BIND"].rsplit(":", 1)[1])
        self.process = service.start(
            service.bin / "gunicorn", "--config", "gunicorn.conf.py", env=env, log_name=log_name
        )
        wait_for(lambda: http_get(f"http://127.0.0.1:{self.port}/health/")[0] == 200, message="gunicorn")

    def log(self):
        return log_of(self.process)

    def request(self, method, path, headers=None, body=None):
        """(status, headers as a list of pairs, body) of one request from 127.0.0.1."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def stop(self):
        assert self.service.stop(self.process, signal.SIGTERM) == 0


def start_gunicorn(service, postgres_server, redis_server, tmp_path, log_name="gunicorn", **extra):
    env = service.production_env(
        fresh_database(postgres_server),
        redis_server.url,
        GUNICORN_BIND=f"127.0.0.1:{free_port()}",
        GUNICORN_WORKERS=1,
        GUNICORN_CONTROL_SOCKET=tmp_path / f"{log_name}.ctl",
        **extra,
    )
    service.manage("migrate", "--noinput", env=env)
    service.manage("collectstatic", "--noinput", env=env)
    return Gunicorn(service, env, log_name), env


# --- Login throttling ---------------------------------------------------------

# What the proxy sends for a browser at CLIENT: the site's host, over HTTPS.
PROXIED = {"Host": DOMAIN, "X-Forwarded-Proto": "https", "X-Forwarded-For": CLIENT}


class Browser:
    """A browser behind the proxy: keeps its cookies, sends the CSRF token."""

    def __init__(self, gunicorn, forwarded_for=CLIENT, scheme="https"):
        self.gunicorn = gunicorn
        self.headers = {**PROXIED, "X-Forwarded-For": forwarded_for}
        self.origin = f"{scheme}://{DOMAIN}"
        self.cookies = {}

    def send(self, method, path, body=None, headers=None):
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        status, response_headers, content = self.gunicorn.request(
            method, path, headers={**self.headers, **(headers or {}), "Cookie": cookie}, body=body
        )
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                for morsel in SimpleCookie(value).values():
                    self.cookies[morsel.key] = morsel.value
        return status, dict(response_headers), content

    def log_in(self, username, password):
        status, _, page = self.send("GET", "/admin/login/")
        assert status == 200, page[:500]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"})
        return self.send(
            "POST",
            "/admin/login/",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.origin,
                "Referer": f"{self.origin}/admin/login/",
            },
        )


def create_superuser(service, env, username, password):
    service.python(
        "import django; django.setup(); from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_superuser({username!r}, '{username}@example.org', {password!r})",
        env=env,
    )


def test_password_guessing_is_locked_out_for_that_user_and_address_only(
    service, postgres_server, redis_server, tmp_path
):
    gunicorn, env = start_gunicorn(service, postgres_server, redis_server, tmp_path, AXES_FAILURE_LIMIT=3)
    create_superuser(service, env, "alice", "correct horse battery staple")
    create_superuser(service, env, "bob", "another long passphrase")

    attacker = Browser(gunicorn)
    # The first failures are answered with the login form again...
    for _ in range(2):
        status, _, page = attacker.log_in("alice", "wrong password guess")
        assert status == 200 and b"Please enter the correct username and password" in page
    # ...the third locks alice out from this address...
    status, _, page = attacker.log_in("alice", "wrong password guess")
    assert status == 429, page[:500]
    assert b"too many login attempts" in page
    # ...and the right password does not get in while the lockout lasts.
    status, headers, page = attacker.log_in("alice", "correct horse battery staple")
    assert status == 429, page[:500]
    assert "sessionid" not in attacker.cookies

    lockouts = [json.loads(line) for line in gunicorn.log().splitlines() if "Locking out" in line]
    assert lockouts and all(line["level"] == "WARNING" for line in lockouts), gunicorn.log()[-3000:]
    assert all(f'ip_address: "{CLIENT}"' in line["message"] for line in lockouts), lockouts

    # Another user from the same address, and alice from another address, log in.
    status, headers, _ = Browser(gunicorn).log_in("bob", "another long passphrase")
    assert (status, headers.get("Location")) == (302, "/admin/")
    status, headers, _ = Browser(gunicorn, forwarded_for="198.51.100.20").log_in(
        "alice", "correct horse battery staple"
    )
    assert (status, headers.get("Location")) == (302, "/admin/")
    gunicorn.stop()


def test_a_client_cannot_choose_its_address_unless_its_peer_is_a_proxy(
    service, postgres_server, redis_server, tmp_path
):
    # 127.0.0.1 is not a proxy here, so its X-Forwarded-* headers prove
    # nothing: changing X-Forwarded-For does not escape the lockout of its
    # real address, which is the one logged. Its requests are then plain
    # HTTP, which production settings would redirect: the redirect is off.
    gunicorn, env = start_gunicorn(
        service,
        postgres_server,
        redis_server,
        tmp_path,
        AXES_FAILURE_LIMIT=2,
        FORWARDED_ALLOW_IPS="10.9.9.9",
        SECURE_SSL_REDIRECT="false",
    )
    create_superuser(service, env, "alice", "correct horse battery staple")

    def attempt(forwarded_for, password):
        return Browser(gunicorn, forwarded_for=forwarded_for, scheme="http").log_in("alice", password)[0]

    assert attempt("198.51.100.1", "wrong password guess") == 200
    assert attempt("198.51.100.2", "wrong password guess") == 429
    assert attempt("198.51.100.3", "correct horse battery staple") == 429
    lockouts = [json.loads(line)["message"] for line in gunicorn.log().splitlines() if "Locking out" in line]
    assert lockouts and all('ip_address: "127.0.0.1"' in line for line in lockouts), lockouts
    assert "198.51.100" not in "".join(lockouts)
    gunicorn.stop()


# --- Passwords and sessions ---------------------------------------------------


def test_passwords_are_long_hashed_with_argon2_and_old_hashes_still_log_in(
    service, postgres_server, redis_server, tmp_path
):
    gunicorn, env = start_gunicorn(service, postgres_server, redis_server, tmp_path, SESSION_IDLE_TIMEOUT=1234)
    checked = service.python(
        "import django; django.setup()\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.contrib.auth.hashers import make_password\n"
        "from django.contrib.auth.password_validation import validate_password\n"
        "from django.core.exceptions import ValidationError\n"
        "try:\n"
        "    validate_password('kq7vmz3xwp9')\n"
        "    print('11 accepted')\n"
        "except ValidationError as error:\n"
        "    print('11 refused:', *error.messages)\n"
        "validate_password('kq7vmz3xwp9r')\n"
        "User = get_user_model()\n"
        "print('new:', *User.objects.create_user('carol', password='kq7vmz3xwp9r').password.split('$')[:4])\n"
        "old = User.objects.create_superuser('dave', 'dave@example.org', None)\n"
        "old.password = make_password('an older passphrase', hasher='pbkdf2_sha256')\n"
        "old.save()\n"
        "print('old:', User.objects.get(username='dave').password.split('$')[0])\n",
        env=env,
    ).stdout.splitlines()
    assert checked[0].startswith("11 refused: This password is too short. It must contain at least 12 characters.")
    # Argon2id at 19 MiB, two passes, one lane: ten logins at once take
    # under 200 MB, where Django's own parameters (100 MiB) would take 1 GB.
    assert checked[1:] == ["new: argon2 argon2id v=19 m=19456,t=2,p=1", "old: pbkdf2_sha256"]

    browser = Browser(gunicorn)
    status, headers, _ = browser.log_in("dave", "an older passphrase")
    assert (status, headers.get("Location")) == (302, "/admin/")
    upgraded = service.python(
        "import django; django.setup(); from django.contrib.auth import get_user_model; "
        "print(get_user_model().objects.get(username='dave').password.split('$')[0])",
        env=env,
    )
    assert upgraded.stdout.strip() == "argon2"

    # Every request pushes the session's end SESSION_IDLE_TIMEOUT seconds ahead.
    status, headers, _ = browser.send("GET", "/admin/")
    assert status == 200
    session_cookie = SimpleCookie(headers["Set-Cookie"])["sessionid"]
    assert session_cookie["max-age"] == "1234"
    gunicorn.stop()


# --- Logs ---------------------------------------------------------------------


def test_requests_for_unknown_hosts_log_one_warning_line_each(service, postgres_server, redis_server, tmp_path):
    gunicorn, _ = start_gunicorn(service, postgres_server, redis_server, tmp_path)
    for number in range(10):
        status, _, _ = gunicorn.request(
            "GET", f"/?scan={number}", headers={"Host": "attacker.example.com", "X-Forwarded-Proto": "https"}
        )
        assert status == 400
    gunicorn.stop()

    lines = [json.loads(line) for line in gunicorn.log().splitlines() if "Invalid HTTP_HOST header" in line]
    assert len(lines) == 10, gunicorn.log()[-3000:]
    assert {(line["level"], line["logger"]) for line in lines} == {("WARNING", "django.security.DisallowedHost")}
    assert all("exc_info" not in line for line in lines), lines
    # No traceback of it (gunicorn's own shutdown may log others).
    assert "exceptions.DisallowedHost" not in gunicorn.log()


def test_the_access_log_names_the_client_behind_a_trusted_proxy_only(service, postgres_server, redis_server, tmp_path):
    for trusted, log_name in [("127.0.0.1", "gunicorn-trusted"), ("10.9.9.9", "gunicorn-untrusted")]:
        gunicorn, _ = start_gunicorn(
            service, postgres_server, redis_server, tmp_path, log_name=log_name, FORWARDED_ALLOW_IPS=trusted
        )
        # The client put an address of its own choosing first; the proxy appended the real one.
        status, _, _ = gunicorn.request(
            "GET", "/health/?access-log", headers={"X-Forwarded-For": f"192.0.2.66, {CLIENT}"}
        )
        assert status == 200
        gunicorn.stop()
        lines = [json.loads(line) for line in gunicorn.log().splitlines() if '"query": "access-log"' in line]
        assert len(lines) == 1, gunicorn.log()[-3000:]
        expected = CLIENT if trusted == "127.0.0.1" else "127.0.0.1"
        assert (lines[0]["logger"], lines[0]["path"], lines[0]["client"]) == ("gunicorn.access", "/health/", expected)
        assert "192.0.2.66" not in json.dumps(lines[0])


# --- Headers ------------------------------------------------------------------


def test_responses_deny_browser_features_and_cross_origin_embedding(service, postgres_server, redis_server, tmp_path):
    gunicorn, _ = start_gunicorn(service, postgres_server, redis_server, tmp_path)
    for path, expected_status in [("/admin/login/", 200), ("/no-such-page/", 404)]:
        status, headers, _ = gunicorn.request("GET", path, headers=PROXIED)
        headers = {name.lower(): value for name, value in headers}
        assert status == expected_status
        assert headers["cross-origin-resource-policy"] == "same-origin"
        denied = set(headers["permissions-policy"].split(", "))
        assert {"camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()"} <= denied
    gunicorn.stop()


# --- E-mail -------------------------------------------------------------------


def test_sending_mail_to_a_server_that_never_answers_fails_within_email_timeout(service, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as silent:
        # The kernel completes the connection (the backlog); nothing ever answers.
        port = silent.getsockname()[1]
        env = service.production_env(
            "postgres://app:password@db:5432/app",
            "redis://redis:6379/0",
            EMAIL_URL=f"smtp://127.0.0.1:{port}",
            EMAIL_TIMEOUT=2,
        )
        started = time.monotonic()
        result = service.python(
            "import django; django.setup(); from django.core.mail import send_mail; "
            "send_mail('subject', 'body', None, ['ops@example.org'])",
            env=env,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "TimeoutError" in result.stderr or "timed out" in result.stderr, result.stderr[-2000:]
    assert elapsed < 3 * 2 + 5, elapsed  # the timeout, plus Python and Django starting


# --- Configuration errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALLOWED_HOSTS", f"https://{DOMAIN}"),
        ("ALLOWED_HOSTS", f"{DOMAIN}:443"),
        ("ALLOWED_HOSTS", f"{DOMAIN}/admin"),
        ("ALLOWED_HOSTS", "bücher.example"),
        ("ALLOWED_HOSTS", f"{DOMAIN},*"),
        ("CSRF_TRUSTED_ORIGINS", DOMAIN),
        ("CSRF_TRUSTED_ORIGINS", f"https://{DOMAIN}/"),
        ("CSRF_TRUSTED_ORIGINS", f"https://{DOMAIN}/admin/"),
        ("CSRF_TRUSTED_ORIGINS", "https://bücher.example"),
        ("CSRF_TRUSTED_ORIGINS", f"https://{DOMAIN}:port"),
    ],
)
def test_malformed_hosts_and_origins_stop_start_up(service, variable, value):
    env = service.production_env("postgres://app:password@db:5432/app", "redis://redis:6379/0", **{variable: value})
    result = service.manage("check", env=env, check=False)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {variable} must" in result.stderr, result.stderr[-2000:]


def test_well_formed_hosts_and_origins_are_accepted(service):
    env = service.production_env(
        "postgres://app:password@db:5432/app",
        "redis://redis:6379/0",
        ALLOWED_HOSTS=f"{DOMAIN},.{DOMAIN},xn--bcher-kva.example,192.0.2.10,[2001:db8::1]",
        CSRF_TRUSTED_ORIGINS=f"https://{DOMAIN},https://*.{DOMAIN},http://localhost:8000",
    )
    result = service.manage("check", env=env, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("separator", ["/", "#", "?", "@"])
@pytest.mark.parametrize("variable", ["DATABASE_URL", "REDIS_URL", "EMAIL_URL"])
def test_a_url_with_an_unencoded_password_stops_start_up_without_showing_it(service, variable, separator):
    password = f"leakfirst{separator}leaksecond"
    urls = {
        "DATABASE_URL": f"postgres://app:{password}@db:5432/app",
        "REDIS_URL": f"redis://:{password}@redis:6379/0",
        "EMAIL_URL": f"smtp+tls://mailer:{password}@smtp.example.org:587",
    }
    env = service.production_env(urls["DATABASE_URL"], urls["REDIS_URL"], EMAIL_URL=urls["EMAIL_URL"])
    for other in urls.keys() - {variable}:
        env[other] = urls[other].replace(password, "fine")
    result = service.manage("check", env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {variable} is not a valid URL" in result.stderr, output[-2000:]
    assert "leakfirst" not in output and "leaksecond" not in output
