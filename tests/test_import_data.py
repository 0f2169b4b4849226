"""Moving an existing deployment's data into the adopted production stack
(scripts/import-data.sh, `make import-data`), on a real Docker engine.

The old deployment is shaped like the services that adopt the template: a
PostgreSQL 15 server with its own user and database names, on a Docker
network of its own, holding the Django project's tables (migrated by the
service's code) with rows, a schema of its own with a grant to a role the
new server does not have; its media files in a directory and in a volume.
The adopted stack is the defaults variant, on PostgreSQL 17, with
Django's own user model (as an adopting service keeps it). The tests run
in file order: the refusals on an empty stack, the import, the refusal of a
second one, then a forced import from a dump file and a volume. The
figures (import times, sizes) are printed at the end of the run.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import docker as docker_env
from harness import service as service_tools
from harness.docker import docker
from harness.policy import require
from harness.stack import OperatorStack, operated_stack, refused

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

# The old deployment's names, unlike the template's (app / app).
OLD_USER, OLD_DB = "obcms_owner", "obcms_prod"
OLD_POSTGRES = "postgres:15"
AUDIT_ROWS = 20_000
USERS = 40
# Every table and its exact row count, in one statement (psql -c).
ROWS = """
select n.nspname || '.' || c.relname || '|' || (xpath('/row/rows/text()',
    query_to_xml(format('select count(*) as rows from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and n.nspname in ('public', 'legacy') order by 1
"""
# The content itself, not only its size.
AUDIT_DIGEST = "select md5(string_agg(a::text, '|' order by id)) from legacy.audit a"
LEGACY_SQL = f"""
create role reporting;
create schema legacy;
create table legacy.audit (
    id bigserial primary key, at timestamptz not null default now(), note text, payload jsonb, blob bytea
);
insert into legacy.audit (note, payload, blob)
select 'line ' || i || E'\\nsecond line\\ttab \\\\ backslash ünïcødé ' || repeat('x', i % 200),
       jsonb_build_object('i', i, 'tags', jsonb_build_array('a', i % 7)),
       decode(md5(i::text), 'hex')
from generate_series(1, {AUDIT_ROWS}) as i;
create table legacy.empty_on_purpose (id int primary key);
create index on legacy.audit ((payload ->> 'i'));
grant usage on schema legacy to reporting;
grant select on legacy.audit to reporting;
"""
DJANGO_ROWS = f"""
from django.contrib.auth.models import Group, Permission, User
editors = Group.objects.create(name="editors")
editors.permissions.set(Permission.objects.filter(codename__startswith="change_"))
for i in range({USERS}):
    User.objects.create_user(f"user{{i}}", f"user{{i}}@example.org", "not-a-real-password").groups.add(editors)
"""
USERS_SEEN = "from django.contrib.auth.models import User as U; print(U.objects.count(), U.objects.last().username)"


def media_files(root: Path) -> dict[str, str]:
    """The old deployment's media: nested directories, awkward names, binary
    content, an empty file and a larger one."""
    random = secrets.token_bytes
    files = {f"uploads/2024/{month:02}/scan-{month}.pdf": random(20_000 + month) for month in range(1, 13)}
    files |= {
        "avatars/user 1.png": random(4096),
        "avatars/ünïcødé.jpg": random(8192),
        "documents/report (final).docx": random(65_536),
        "documents/empty.txt": b"",
        "exports/archive.bin": random(3 * 2**20),
        ".hidden/settings.json": b'{"kept": true}\n',
    }
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return {relative: hashlib.sha256(content).hexdigest() for relative, content in files.items()}


@dataclass
class Legacy:
    """The old deployment: its database server on a network of its own, its media."""

    container: str
    network: str
    password: str
    media: Path
    checksums: dict[str, str]

    @property
    def url(self) -> str:
        """The old server as the old stack's containers reach it."""
        return f"postgres://{OLD_USER}:{self.password}@db:5432/{OLD_DB}"

    def sql(self, query: str) -> str:
        result = docker(
            "exec", "-i", self.container, "psql", "-qtAX", "-v", "ON_ERROR_STOP=1", "-U", OLD_USER, "-d", OLD_DB,
            input=query,
        )  # fmt: skip
        return result.stdout.strip()


def table_rows(output: str) -> dict[str, int]:
    return {table: int(rows) for table, rows in (line.split("|") for line in output.splitlines())}


def volume_checksums(stack: OperatorStack) -> dict[str, str]:
    """sha256 of every file in the stack's media volume, read by web."""
    listing = stack.exec("web", "sh", "-c", "cd /app/media && find . -type f -exec sha256sum {} +")
    return {line[66:].removeprefix("./"): line[:64] for line in listing.splitlines()}


@pytest.fixture(scope="module")
def stack(render, tmp_path_factory):
    adopted = render("defaults", use_custom_user_model=False)
    with operated_stack(adopted, tmp_path_factory.mktemp("import"), "import") as project:
        yield project


@pytest.fixture(scope="module")
def legacy(stack, tmp_path_factory):
    try:
        image = docker_env.server_image(OLD_POSTGRES).name
    except docker_env.ImageError as error:
        require(False, str(error))
    suffix = secrets.token_hex(3)
    network, container, password = f"legacy-{suffix}", f"legacy-db-{suffix}", secrets.token_hex(16)
    docker("network", "create", network)
    try:
        docker(
            "run", "--detach", f"--name={container}", f"--network={network}", "--network-alias=db",
            f"--env=POSTGRES_USER={OLD_USER}", f"--env=POSTGRES_PASSWORD={password}", f"--env=POSTGRES_DB={OLD_DB}",
            image,
        )  # fmt: skip
        service_tools.wait_for(
            lambda: (
                docker("exec", container, "pg_isready", "-q", "-U", OLD_USER, "-d", OLD_DB, check=False).returncode == 0
            ),
            timeout=120,
            interval=0.5,
            message="the old PostgreSQL server",
        )
        old = Legacy(container, network, password, tmp_path_factory.mktemp("old") / "media", {})
        # The Django project's tables, made by the service's own code (its
        # production image) against the old server, with rows.
        app = [
            "run", "--rm", f"--network={network}", f"--env=DATABASE_URL={old.url}",
            f"--env=SECRET_KEY={secrets.token_urlsafe(50)}", "--env=REDIS_URL=redis://localhost:6379/0",
            "--env=EMAIL_URL=consolemail://", image_of(stack, "web"), "python", "src/manage.py",
        ]  # fmt: skip
        docker(*app, "migrate", "--noinput", timeout=300)
        docker(*app, "shell", "--no-imports", "-c", DJANGO_ROWS, timeout=300)
        old.sql(LEGACY_SQL)
        old.checksums = media_files(old.media)
        yield old
    finally:
        docker("rm", "--force", "--volumes", container, check=False)
        docker("network", "rm", network, check=False)


def image_of(stack: OperatorStack, service: str) -> str:
    return stack.by_service()[service][0]["Image"]


def app_started_at(stack: OperatorStack) -> dict[str, str]:
    return {name: stack.started_at(name) for name in ("db", "web", "worker", "beat", "proxy")}


def import_script(stack: OperatorStack, *arguments: str) -> subprocess.CompletedProcess[str]:
    return stack.operator("scripts/import-data.sh", *arguments)


def test_a_wrong_or_unreachable_source_is_refused_with_one_message(stack, legacy, tmp_path):
    started = app_started_at(stack)
    wrong_password = legacy.url.replace(legacy.password, "wrong")
    not_a_dump = tmp_path / "not-a-dump.sql"
    not_a_dump.write_text("select 1;\n")
    cases = {
        # From this host's network (the default), nothing listens there.
        "Connection refused": ("--database", "postgres://someone:secret@127.0.0.1:1/anything"),
        "password authentication failed": ("--database", wrong_password, "--source-network", legacy.network),
        "network nowhere-": ("--database", legacy.url, "--source-network", f"nowhere-{secrets.token_hex(3)}"),
        "is not a dump that pg_restore can read": ("--dump", str(not_a_dump)),
        "does not exist or cannot be read": ("--dump", str(tmp_path / "missing.dump")),
        "the media directory": ("--media", str(tmp_path / "no-media-here")),
        "there is no Docker volume": ("--media-volume", f"no-volume-{secrets.token_hex(3)}"),
    }
    for problem, arguments in cases.items():
        line = refused(import_script(stack, *arguments))
        assert problem in line, (problem, line)
        # The password of a URL is never printed.
        assert legacy.password not in line and "secret" not in line and ":wrong@" not in line
    usage = import_script(stack)
    assert usage.returncode != 0 and usage.stderr.startswith("error: usage: scripts/import-data.sh")
    assert app_started_at(stack) == started
    assert stack.sql("select count(*) from auth_user") == "0"


def test_a_postgres_15_deployment_is_imported_with_every_row_and_every_media_file(stack, legacy, figure):
    source_rows = table_rows(legacy.sql(ROWS))
    assert source_rows["legacy.audit"] == AUDIT_ROWS and source_rows["public.auth_user"] == USERS
    database_size = int(legacy.sql(f"select pg_database_size('{OLD_DB}')"))

    started = time.monotonic()
    result = stack.operator(
        "make", "import-data", f"DATABASE={legacy.url}", f"NETWORK={legacy.network}", f"MEDIA={legacy.media}"
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    media_bytes = sum(path.stat().st_size for path in legacy.media.rglob("*") if path.is_file())
    figure(
        f"import of PostgreSQL 15 ({database_size / 2**20:.1f} MiB, {sum(source_rows.values())} rows) "
        f"and {len(legacy.checksums)} media files ({media_bytes / 2**20:.1f} MiB), stack up again",
        f"{seconds:.0f} s",
    )
    output = result.stdout
    assert legacy.password not in output + result.stderr
    # Each step says what it did; the proof is printed.
    for step in (
        "Counting the rows of every table on the source",
        "Dumping the source with pg_dump 17",
        "Stopping proxy web worker beat",
        "Loading the dump into app as app",
        "every count is the same",
        "every checksum is the same",
        "manage.py migrate --check",
        "Every migration is applied.",
    ):
        assert step in output, step
    for table, rows in source_rows.items():
        assert re.search(rf"^  {re.escape(table)} +{rows} +{rows}  ok$", output, re.M), table

    # Checked here on their own, not only by the script: every row, owned by
    # the new user; the content itself; every media file.
    target_rows = table_rows(stack.sql(ROWS))
    assert target_rows == source_rows
    assert stack.sql(AUDIT_DIGEST) == legacy.sql(AUDIT_DIGEST)
    owners = stack.sql("select distinct tableowner from pg_tables where schemaname in ('public', 'legacy')")
    assert owners == "app"
    assert stack.sql("select nextval('legacy.audit_id_seq')") == str(AUDIT_ROWS + 1)
    assert volume_checksums(stack) == legacy.checksums

    # The service runs on it: every service up, Django reads the old users.
    for name in ("web", "worker", "beat", "proxy"):
        assert stack.state(name)["Running"], name
    users = stack.exec("web", "python", "src/manage.py", "shell", "--no-imports", "-c", USERS_SEEN)
    assert users.split() == [str(USERS), f"user{USERS - 1}"]
    check = stack.exec("web", "python", "src/manage.py", "migrate", "--check", check=False)
    assert "Operations to perform" not in check


def test_a_second_import_over_the_data_is_refused_without_force(stack, legacy):
    started = app_started_at(stack)
    line = refused(import_script(stack, "--database", legacy.url, "--source-network", legacy.network))
    assert "holds data" in line and "--force" in line
    line = refused(import_script(stack, "--media", str(legacy.media)))
    assert f"holds {len(legacy.checksums)} files" in line
    assert app_started_at(stack) == started


@pytest.mark.reliability
def test_a_forced_import_from_a_dump_file_and_a_media_volume(stack, legacy, tmp_path, figure):
    """The other routes: a file made with pg_dump -Fc (by the old server's
    own client), the old stack's media volume; over existing data."""
    stack.sql("delete from legacy.audit where id > 100")
    dump = tmp_path / "old.dump"
    with dump.open("wb") as out:
        subprocess.run(
            ["docker", "exec", legacy.container, "pg_dump", "-Fc", "-U", OLD_USER, OLD_DB], stdout=out, check=True
        )
    volume = f"legacy-media-{secrets.token_hex(3)}"
    docker("volume", "create", volume)
    try:
        # The old volume's files belong to the old stack's user, not the new
        # one, and some are readable by their owner only.
        fill = "cp -a /from/. /to/ && chown -R 999:999 /to && chmod -R go-rwx /to/exports"
        mounts = [f"--volume={legacy.media}:/from:ro", f"--volume={volume}:/to"]
        docker("run", "--rm", *mounts, "--entrypoint=sh", image_of(stack, "db"), "-c", fill)
        started = time.monotonic()
        result = import_script(stack, "--dump", str(dump), "--media-volume", volume, "--force")
        seconds = time.monotonic() - started
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        figure(f"forced import from a {dump.stat().st_size / 2**20:.1f} MiB dump file and a volume", f"{seconds:.0f} s")
        assert "Counting the rows of every table in the dump" in result.stdout
        assert "every count is the same" in result.stdout and "every checksum is the same" in result.stdout
    finally:
        docker("volume", "rm", volume, check=False)
    assert table_rows(stack.sql(ROWS)) == table_rows(legacy.sql(ROWS))
    assert stack.sql(AUDIT_DIGEST) == legacy.sql(AUDIT_DIGEST)
    assert volume_checksums(stack) == legacy.checksums
