"""Backups of the production stack's database, on a real Docker engine:
pgBackRest in the db image, the backup service, and the operator commands
(scripts/backup.sh, the make targets) run as an operator runs them.

One stack (the defaults variant) serves the module; its backup repository
is the service's ./backups directory, as the rendered .env.example says.
The tests run in file order: the destructive one comes last. Run with -s
to see the figures (restore times).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from harness import service as service_tools
from harness.backup import backup_stack, refused, wait_for_a_backup
from harness.docker import docker

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

MAX_DATA_LOSS = 5


def figure(label: str, value: str) -> None:
    print(f"\n[figure] {label}: {value}")


@pytest.fixture(scope="module")
def stack(render, tmp_path_factory):
    # Seconds, instead of a minute: the bound is measured below.
    values = {"BACKUP_MAX_DATA_LOSS_SECONDS": str(MAX_DATA_LOSS)}
    with backup_stack(render("defaults"), tmp_path_factory.mktemp("backup"), "backup", **values) as project:
        yield project


def test_a_new_database_gets_a_full_backup_and_archives_its_wal(stack):
    (first,) = wait_for_a_backup(stack)
    assert (stack.service / "backups" / "backup" / "db").is_dir()
    assert stack.sql("show archive_mode") == "on"
    assert stack.sql("show archive_timeout") == f"{MAX_DATA_LOSS}s"
    assert "full backup done" in stack.logs("backup")

    # make backup: one more full backup, listed after the first.
    result = stack.operator("make", "backup")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Taking a full backup" in result.stdout
    listed = stack.backups()
    assert len(listed) == 2 and listed[0] == first
    # Every segment the server switched away from is in the repository, none failed.
    archived, failed = stack.sql("select archived_count, failed_count from pg_stat_archiver").split("|")
    assert int(archived) >= 2 and int(failed) == 0


def test_a_commit_on_a_quiet_database_reaches_the_repository_within_the_bound(stack):
    wait_for_a_backup(stack)
    stack.add_groups("archived")
    committed = time.monotonic()
    # The segment that holds the commit, and where pgBackRest stores it.
    segment = stack.sql("select pg_walfile_name(pg_current_wal_lsn())")
    archive = stack.service / "backups" / "archive" / "db"

    def stored():
        return list(archive.glob(f"*/{segment[:16]}/{segment}-*"))

    service_tools.wait_for(stored, timeout=MAX_DATA_LOSS + 30, interval=0.2, message=f"{segment} in the repository")
    seconds = time.monotonic() - committed
    figure(f"commit to its WAL in the repository, archive_timeout {MAX_DATA_LOSS} s", f"{seconds:.1f} s")
    # archive_timeout closes the segment; the push itself takes well under a second.
    assert seconds < MAX_DATA_LOSS + 3


def test_a_wrong_restore_is_refused_with_one_message_and_touches_nothing(stack, tmp_path):
    wait_for_a_backup(stack)
    stack.add_groups("kept")
    started = {name: stack.started_at(name) for name in ("db", "web", "backup")}
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S+00")

    cases = {
        "in the future": ("scripts/backup.sh", "restore", "--to", future, "--force"),
        "before the end of the oldest backup": ("make", "restore", "TO=2020-01-01 00:00:00+00", "FORCE=1"),
        "cannot read the target time": ("scripts/backup.sh", "restore", "--to", "yesterday-ish", "--force"),
        "holds a database": ("scripts/backup.sh", "restore"),
    }
    for problem, command in cases.items():
        assert problem in refused(stack.operator(*command)), problem

    # A repository without backups (a wrong BACKUP_DIR, a new host).
    empty = tmp_path / "empty-repository"
    empty.mkdir()
    assert "holds no backup" in refused(stack.operator("scripts/backup.sh", "restore", BACKUP_DIR=str(empty)))

    assert {name: stack.started_at(name) for name in started} == started
    assert "kept" in stack.groups()


@pytest.mark.reliability
def test_a_lost_database_volume_is_restored_to_the_latest_and_to_a_point_in_time(stack):
    wait_for_a_backup(stack)
    stack.add_groups("before-1", "before-2")
    target = stack.sql("select clock_timestamp()")
    stack.add_groups("after-1")
    everything = stack.groups()
    assert {"before-1", "before-2", "after-1"} <= set(everything)

    stack.check_archive()

    # The disaster: the database container and its volume are gone.
    stack.compose("rm", "--stop", "--force", "db", "backup")
    volume = f"{stack.project}_postgres-data"
    docker("volume", "rm", volume)
    assert docker("volume", "inspect", volume, check=False).returncode != 0

    # No database left: the restore needs no --force.
    started = time.monotonic()
    latest = stack.operator("make", "restore")
    figure("restore of the latest state into an empty volume, stack up again", f"{time.monotonic() - started:.0f} s")
    assert latest.returncode == 0, latest.stdout[-3000:] + latest.stderr[-3000:]
    assert "Stopping web worker beat backup db" in latest.stdout
    assert stack.groups() == everything

    started = time.monotonic()
    pitr = stack.operator("make", "restore", f"TO={target}", "FORCE=1")
    figure("restore to a point in time over an existing database", f"{time.monotonic() - started:.0f} s")
    assert pitr.returncode == 0, pitr.stdout[-3000:] + pitr.stderr[-3000:]
    assert f"Restored the database to {target}" in pitr.stdout
    assert stack.groups() == [name for name in everything if name != "after-1"]

    # The restored database is a primary again, archiving on a new timeline.
    stack.add_groups("after-restore")
    assert "after-restore" in stack.groups()
    assert stack.sql("select pg_is_in_recovery()") == "f"
    for name in ("web", "worker", "beat", "backup"):
        assert stack.state(name)["Running"], name


@pytest.mark.reliability
def test_after_down_v_and_up_the_new_empty_database_is_reported_and_replaced_by_the_restore(stack):
    """The usual accident: `down -v`, then `up` on a new, empty database."""
    wait_for_a_backup(stack)
    stack.add_groups("before-down")
    everything = stack.groups()
    stack.check_archive()

    stack.compose("down", "--volumes", "--timeout=30")
    assert any((stack.service / "backups" / "backup" / "db").iterdir())
    stack.compose("up", "--detach", timeout=900)
    service_tools.wait_for(
        lambda: "ERROR backup: the backup repository does not match this database" in stack.logs("backup"),
        timeout=180,
        interval=1,
        message="backup's error about the new database",
    )
    assert "before-down" not in stack.groups()

    restored = stack.operator("make", "restore", "FORCE=1")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
    assert stack.groups() == everything
    assert stack.state("backup")["Running"]
