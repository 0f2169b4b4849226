"""Backups of the production stack's database, on a real Docker engine:
pgBackRest in the db image, the backup service, and the operator commands
(scripts/backup.sh, the make targets) run as an operator runs them.

One stack (the defaults variant) serves the module; its backup repository
is the service's ./backups directory, as the rendered .env.example says.
The tests run in file order: the destructive ones come last. The figures
(restore times, the data-loss window) are printed at the end of the run.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest

from harness import service as service_tools
from harness.backup import BackupStack, backup_stack, lose_and_restore, lose_volume, wait_for_a_backup
from harness.docker import docker
from harness.stack import refused

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

MAX_DATA_LOSS = 5


@pytest.fixture(scope="module")
def stack(render, tmp_path_factory):
    # Seconds, instead of a minute: the bound is measured below.
    with backup_stack(render, tmp_path_factory, "backup", BACKUP_MAX_DATA_LOSS_SECONDS=str(MAX_DATA_LOSS)) as project:
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


def test_a_commit_on_a_quiet_database_reaches_the_repository_within_the_bound(stack, figure):
    wait_for_a_backup(stack)
    # One commit, the segment that holds it and the server's clock at the
    # commit (the repository is on this host, under the same clock).
    segment, committed = stack.sql(
        "insert into auth_group (name) values ('archived')"
        " returning pg_walfile_name(pg_current_wal_lsn()), extract(epoch from clock_timestamp())"
    ).split("|")
    archive = stack.service / "backups" / "archive" / "db"

    def stored():
        return list(archive.glob(f"*/{segment[:16]}/{segment}-*"))

    (pushed,) = service_tools.wait_for(stored, timeout=120, interval=0.2, message=f"{segment} in the repository")
    seconds = pushed.stat().st_mtime - float(committed)
    figure(f"commit to its WAL in the repository, archive_timeout {MAX_DATA_LOSS} s", f"{seconds:.1f} s")
    # The figure is the bound's measure. A quiet database fills no segment,
    # so without archive_timeout the commit would never be archived; the
    # margin is the push's own time, which a loaded machine stretches.
    assert seconds < MAX_DATA_LOSS + 25


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
    # A repository pgBackRest cannot read: its backup list is damaged.
    damaged = tmp_path / "damaged-repository"
    shutil.copytree(stack.repository, damaged)
    for info in (damaged / "backup" / "db").glob("backup.info*"):
        info.write_text("[backup:current]\nnot pgBackRest's\n")
    unreadable = refused(stack.operator("scripts/backup.sh", "restore", "--force", BACKUP_DIR=str(damaged)))
    assert "cannot read the backup repository" in unreadable

    assert {name: stack.started_at(name) for name in started} == started
    assert "kept" in stack.groups()


def test_status_says_when_the_last_backup_ended_and_when_archiving_fails(stack):
    wait_for_a_backup(stack)
    service_tools.wait_for(
        lambda: stack.state("backup").get("Health", {}).get("Status") == "healthy",
        timeout=180,
        interval=2,
        message="a healthy backup service",
    )
    status = stack.operator("make", "backup-status")
    assert status.returncode == 0, status.stdout + status.stderr
    newest = stack.backups()[-1].split()[0]
    assert f"last full backup:  {newest}, ended " in status.stdout
    assert re.search(r"^last archived WAL: [0-9A-F]{24}, \d{4}-", status.stdout, re.M), status.stdout
    assert "status:            ok" in status.stdout

    # The repository refuses new WAL: the server's next segment cannot be stored.
    folders = [path for path in (stack.service / "backups" / "archive").rglob("*") if path.is_dir()]
    modes = {folder: folder.stat().st_mode for folder in folders}
    try:
        for folder in folders:
            folder.chmod(0o500)
        stack.add_groups("unarchived")
        stack.sql("select pg_switch_wal()")

        def failing():
            result = stack.operator("scripts/backup.sh", "status")
            return result if result.returncode != 0 else None

        result = service_tools.wait_for(failing, timeout=60, interval=1, message="status to report the failure")
        assert re.search(r"^problem: archiving fails: segment [0-9A-F]{24} could not be stored", result.stdout, re.M)
        # What the healthcheck runs: quiet, but for the problem.
        quiet = stack.compose("exec", "-T", "backup", "backup-status", "--quiet", check=False)
        assert quiet.returncode == 1
        assert quiet.stdout.startswith("problem: archiving fails")
    finally:
        for folder, mode in modes.items():
            folder.chmod(mode)

    # The server retries; the segment goes once the repository takes it.
    stack.sql("select pg_switch_wal()")
    service_tools.wait_for(
        lambda: stack.operator("scripts/backup.sh", "status").returncode == 0,
        timeout=90,
        interval=1,
        message="archiving to recover",
    )


def verify_containers(stack: BackupStack) -> str:
    return docker(
        "ps",
        "--all",
        "--quiet",
        "--filter",
        f"label=com.docker.compose.project={stack.project}",
        "--filter",
        "label=com.docker.compose.service=verify",
    ).stdout.strip()


def test_verify_restores_the_newest_backup_aside_and_fails_on_a_damaged_one(stack):
    wait_for_a_backup(stack)
    stack.add_groups("verified")
    stack.check_archive()
    rows = stack.sql("select count(*) from auth_group")
    started = {name: stack.started_at(name) for name in ("db", "web", "backup")}

    good = stack.operator("make", "backup-verify")
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    # The restore reached the last archived transaction: the live row count.
    assert f"  public.auth_group {rows}\n" in good.stdout
    assert re.search(r"^verify: \d+ tables, \d+ rows$", good.stdout, re.M)
    assert "Verified: the newest backup restores" in good.stdout

    # A newest backup with one file damaged in the repository.
    assert stack.operator("make", "backup").returncode == 0
    newest = stack.backups()[-1].split()[0]
    files = (stack.service / "backups" / "backup" / "db" / newest / "pg_data").rglob("*.zst")
    damaged = max(files, key=lambda path: path.stat().st_size)
    original = damaged.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    try:
        damaged.write_bytes(bytes(flipped))
        bad = stack.operator("make", "backup-verify")
    finally:
        damaged.write_bytes(original)
    assert bad.returncode != 0
    output = bad.stdout + bad.stderr
    assert f"error: backup {newest} is damaged; pgbackrest verify reports: status: error" in output
    assert "checksum invalid: 1" in output
    assert "Verified" not in output

    # Both ran beside the stack, which neither stopped, and left nothing behind.
    assert {name: stack.started_at(name) for name in started} == started
    assert verify_containers(stack) == ""


@pytest.mark.reliability
def test_a_lost_database_volume_is_restored_to_the_latest_and_to_a_point_in_time(stack, figure):
    lose_and_restore(stack, figure)


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


@pytest.mark.reliability
def test_a_killed_database_and_its_lost_volume_cost_at_most_the_configured_window(stack, figure):
    """Commits until a `docker kill`, then the volume is lost: restore-latest
    gives back every commit but those of the last BACKUP_MAX_DATA_LOSS_SECONDS.
    Last in the module: the database has been restored, and promoted, before."""
    wait_for_a_backup(stack)
    (database,) = [container["Id"] for container in stack.by_service()["db"]]
    stack.sql("create table if not exists heartbeat (at timestamptz primary key default clock_timestamp())")
    # A client commits a row every 0.2 s and prints each commit's time, as
    # the server wrote it, once the commit is acknowledged.
    insert = (
        'psql -qtAX --username="$POSTGRES_USER" --dbname="$POSTGRES_DB"'
        ' --command="insert into heartbeat default values returning at::text"'
    )
    writer = subprocess.Popen(
        ["docker", "compose", "exec", "-T", "db", "sh", "-c", f"while {insert}; do sleep 0.2; done"],
        cwd=stack.service,
        env=stack.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        time.sleep(3 * MAX_DATA_LOSS + secrets.randbelow(3 * MAX_DATA_LOSS))
        killed = time.time()
        docker("kill", database)
        acknowledged = writer.communicate(timeout=60)[0].splitlines()
    finally:
        writer.kill()

    lose_volume(stack, "postgres-data", "db", "backup")
    restored = stack.operator("make", "restore")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]

    recovered = stack.sql("select at::text from heartbeat order by at").splitlines()
    # What came back is what the client saw committed, in order, up to some
    # point (its last lines may be lost with the container).
    assert recovered and recovered[: len(acknowledged)] == acknowledged[: len(recovered)]
    last = stack.sql(f"select extract(epoch from '{recovered[-1]}'::timestamptz)")
    lost = killed - float(last)
    figure(
        f"commits lost to a killed database and its lost volume, archive_timeout {MAX_DATA_LOSS} s",
        f"the last {lost:.1f} s ({len(acknowledged) - len(recovered)} of {len(acknowledged)} commits)",
    )
    # archive_timeout bounds the window; pushing the last segment takes well under a second.
    assert lost < MAX_DATA_LOSS + 2
