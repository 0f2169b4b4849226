"""Concurrent migrations: `migrate_locked` serialises them with a PostgreSQL
advisory lock; plain `migrate` run the same way races and fails.

Each run is a real `manage.py` process with production settings against one
real PostgreSQL database. A file barrier lines the processes up after Django
has started, so that they all begin migrating at the same moment instead of
being staggered by their start-up time: the worst case, and a reproducible one.
"""

import signal
import subprocess
import uuid

import pytest

from harness import processes
from harness.answers import answers_for
from harness.service import prepare_service, wait_for

pytestmark = [pytest.mark.service, pytest.mark.reliability]

MIGRATORS = 8
# Rounds of plain `migrate` tried before concluding that it does not race:
# one round fails nearly always, the others only bound the rare lucky one.
UNLOCKED_ROUNDS = 3

# Starts Django, says it is ready, waits for the go file, then runs the
# management command exactly as manage.py does. argv: ready file, go file, command...
BARRIER = """
import sys, time
from pathlib import Path
import django
django.setup()
from django.core.management import execute_from_command_line
ready, go, *command = sys.argv[1:]
Path(ready).touch()
deadline = time.monotonic() + 60
while not Path(go).exists() and time.monotonic() < deadline:
    time.sleep(0.005)
execute_from_command_line(["manage.py", *command])
"""


@pytest.fixture(scope="module")
def service(render, tmp_path_factory):
    path = tmp_path_factory.mktemp("run-migration-lock") / "service"
    service = prepare_service(render("defaults"), path, answers_for("defaults"))
    yield service
    service.close()


# Read by the settings, never reached by migrate.
UNUSED_REDIS = "redis://127.0.0.1:1/0"


def run_concurrently(service, env, command, tmp_path):
    """Runs `manage.py <command>` in MIGRATORS processes that start migrating together."""
    barrier = tmp_path / f"barrier-{uuid.uuid4().hex[:8]}"
    barrier.mkdir()
    go = barrier / "go"
    outputs = [barrier / f"output-{n}" for n in range(MIGRATORS)]
    migrators = []
    for n, output in enumerate(outputs):
        with output.open("w") as log:  # A file, not a pipe that could fill up.
            migrators.append(
                subprocess.Popen(
                    [service.bin / "python", "-c", BARRIER, barrier / f"ready-{n}", go, *command],
                    cwd=service.path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        wait_for(
            lambda: len(list(barrier.glob("ready-*"))) == MIGRATORS or any(p.poll() is not None for p in migrators),
            timeout=60,
            message=f"{MIGRATORS} processes to start Django",
        )
        go.touch()
        codes = [process.wait(120) for process in migrators]
        return [(code, output.read_text()) for code, output in zip(codes, outputs, strict=True)]
    finally:
        for process in migrators:
            processes.stop(process, signal.SIGKILL)


def schema_problems(service, env):
    """What a complete migration would have that this database lacks, as text ('' if none)."""
    code = """
import django
django.setup()
from collections import Counter
from django.db import connection
from django.db.migrations.loader import MigrationLoader
tables = connection.introspection
missing = set(tables.django_table_names(only_existing=False)) - set(tables.table_names())
loader = MigrationLoader(connection)
with connection.cursor() as cursor:
    cursor.execute("SELECT app, name FROM django_migrations")
    recorded = Counter(cursor.fetchall())
unrecorded = set(loader.disk_migrations) - set(recorded)
twice = [key for key, count in recorded.items() if count > 1]
for name, found in (("missing tables", missing), ("unrecorded", unrecorded), ("recorded twice", twice)):
    if found:
        print(name, sorted(found))
"""
    return service.python(code, env=env).stdout.strip()


def fresh_database(postgres_server):
    return postgres_server.create_database(f"migrate_{uuid.uuid4().hex[:12]}")


def test_concurrent_migrate_locked_runs_all_succeed(service, postgres_server, tmp_path, figure):
    env = service.production_env(fresh_database(postgres_server), UNUSED_REDIS)

    results = run_concurrently(service, env, ["migrate_locked", "--noinput"], tmp_path)

    failures = [output for code, output in results if code != 0]
    waited = sum("waiting for it to finish" in output for _, output in results)
    figure("migration lock: concurrent migrate_locked runs / failures", f"{MIGRATORS} / {len(failures)}")
    figure("migration lock: migrate_locked runs that waited for the lock", waited)
    assert not failures, "\n---\n".join(failures)
    assert waited >= 1, results  # They did run at the same time.
    assert schema_problems(service, env) == ""
    service.manage("migrate", "--check", env=env)


def test_concurrent_plain_migrate_runs_race_and_fail(service, postgres_server, tmp_path, figure):
    """The same test without the lock fails: the lock is what makes it pass."""
    failures, rounds = [], 0
    while rounds < UNLOCKED_ROUNDS and not failures:
        rounds += 1
        env = service.production_env(fresh_database(postgres_server), UNUSED_REDIS)
        results = run_concurrently(service, env, ["migrate", "--noinput"], tmp_path)
        failures = [output for code, output in results if code != 0]

    figure(
        "migration lock: concurrent plain migrate runs / failures",
        f"{MIGRATORS} / {len(failures)} (round {rounds} of at most {UNLOCKED_ROUNDS})",
    )
    assert failures, f"{rounds} rounds of {MIGRATORS} concurrent plain migrate runs all succeeded"
    # They fail the way racing migrators do: on objects another run created.
    errors = ("already exists", "duplicate key", "IntegrityError", "ProgrammingError", "InconsistentMigrationHistory")
    assert any(error in output for output in failures for error in errors), failures[0][-3000:]


def test_migrate_locked_just_migrates_on_sqlite(service):
    env = service.env()  # Development settings: SQLite, no lock to take.
    (service.path / "db.sqlite3").unlink(missing_ok=True)

    result = service.manage("migrate_locked", "--noinput", env=env)

    assert "Applying auth.0001_initial... OK" in result.stdout
    assert "waiting" not in result.stderr
    service.manage("migrate", "--check", env=env)


def test_migrate_locked_documents_itself_and_passes_migrate_options_on(service):
    help_text = service.manage("help", "migrate_locked").stdout
    assert "advisory lock" in help_text
    for option in ("--noinput", "--database", "--fake", "--plan", "--check"):
        assert option in help_text
