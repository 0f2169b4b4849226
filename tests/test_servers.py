"""Each test server really starts, answers, stops, and comes back on the same port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import servers
from harness.servers import (
    PostgresServer,
    RedisServer,
    S3Server,
    ServerError,
    find_postgres_bindir,
    find_redis_server,
    free_port,
)

pytest_plugins = ["pytester"]


def assert_refused(port: int) -> None:
    """Nothing listens on the port any more."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def psql(bindir: Path, url: str, sql: str) -> subprocess.CompletedProcess[str]:
    """Run one statement with the psql binary, connecting with the URL alone."""
    return subprocess.run(
        [bindir / "psql", "--no-psqlrc", "--no-align", "--tuples-only", url, "-c", sql],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def redis_ping(port: int) -> bytes:
    """Send PING in Redis' wire protocol (RESP) and return the raw reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(64)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_binary_locations_can_be_set_explicitly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    monkeypatch.setenv("REDIS_SERVER", str(tmp_path / "redis-server"))

    assert find_postgres_bindir() == tmp_path
    assert find_redis_server() == tmp_path / "redis-server"


# PostgreSQL


def test_postgres_fixture_accepts_its_url(postgres_server: PostgresServer) -> None:
    url = postgres_server.url
    assert re.fullmatch(r"postgresql://test:\w+@127\.0\.0\.1:\d+/postgres", url)
    assert psql(postgres_server.bindir, url, "SELECT 1").stdout == "1\n"


def test_postgres_stops_and_restarts(postgres_server: PostgresServer, tmp_path: Path) -> None:
    server = PostgresServer(tmp_path, bindir=postgres_server.bindir)
    with server:
        if os.geteuid() == 0:
            # pytest's temporary directories are private to root, so the server
            # made its own, and its files belong to an unprivileged user.
            assert server.directory != tmp_path
            assert server.data_dir.stat().st_uid != 0
        assert psql(server.bindir, server.url, "SELECT 1").stdout == "1\n"

        wrong_password = server.url.replace(server.password, "wrong")
        result = psql(server.bindir, wrong_password, "SELECT 1")
        assert "password authentication failed" in result.stderr

        name = 'app "test" db'  # Needs quoting, both in SQL and in the URL.
        database_url = server.create_database(name)
        query = "SELECT current_database()"
        assert psql(server.bindir, database_url, query).stdout == f"{name}\n"

        port = server.port
        server.stop()
        server.stop()
        assert_refused(port)

        server.start()
        server.start()
        assert server.port == port
        # Same port, same data: the database created before is still there.
        assert psql(server.bindir, database_url, query).stdout == f"{name}\n"

    assert not server.running
    assert not server.data_dir.exists()
    if server.directory != tmp_path:
        assert not server.directory.exists()


# Redis


def test_redis_fixture_answers_ping(redis_server: RedisServer) -> None:
    assert re.fullmatch(r"redis://127\.0\.0\.1:\d+/0", redis_server.url)
    assert redis_ping(redis_server.port) == b"+PONG\r\n"


def test_redis_stops_and_restarts(redis_server: RedisServer, tmp_path: Path) -> None:
    server = RedisServer(tmp_path, executable=redis_server.executable)
    with server:
        port = server.port
        assert redis_ping(port) == b"+PONG\r\n"

        process = server.process
        server.stop()
        server.stop()
        assert process is not None and process.returncode is not None
        assert_refused(port)

        server.start()
        assert redis_ping(port) == b"+PONG\r\n"

    assert not server.running
    assert not server.data_dir.exists()


def test_start_failure_reports_the_server_log(redis_server: RedisServer, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = RedisServer(tmp_path, executable=redis_server.executable, port=port)

        with pytest.raises(ServerError, match="(?s)exited with code.*already in use"):
            server.start()

    assert not server.running
    server.close()


# S3


def s3_client(server: S3Server) -> Any:
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        config=Config(retries={"max_attempts": 1}),  # Fail fast, don't retry.
    )


def test_s3_fixture_lists_buckets(s3_server: S3Server) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", s3_server.endpoint_url)
    assert "Buckets" in s3_client(s3_server).list_buckets()


def test_s3_stores_objects_and_restarts(s3_server: S3Server, tmp_path: Path) -> None:
    server = S3Server(tmp_path)
    with server:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="media")
        s3.put_object(Bucket="media", Key="hello.txt", Body=b"hello")
        body = s3.get_object(Bucket="media", Key="hello.txt")["Body"].read()
        assert body == b"hello"

        server.stop()
        assert_refused(server.port)

        server.start()
        # Same endpoint, but buckets live in memory: a restarted server starts empty.
        assert s3.list_buckets()["Buckets"] == []

    assert not server.running
    assert not server.data_dir.exists()


# Missing binaries


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_servers_skip_but_fail_on_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setattr(servers, "find_postgres_bindir", lambda: None)
    monkeypatch.setattr(servers, "find_redis_server", lambda: None)
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # Faster startup.
    pytester.makepyfile(
        """
        def test_postgres(postgres_server):
            pass

        def test_redis(redis_server):
            pass
        """
    )

    # The suite's own plugin, which provides the fixtures, in a bare pytest.
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "harness.plugin")

    if ci:
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines(["*not found*not skipped because CI=true*"])
    else:
        result.assert_outcomes(skipped=2)
