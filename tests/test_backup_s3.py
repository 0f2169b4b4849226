"""Backups of the production stack's database into an S3-compatible bucket,
on a real Docker engine: the BACKUP_S3_* values of .env make the bucket the
pgBackRest repository of the db and backup services and of every
scripts/backup.sh command.

The bucket is on a moto server that speaks HTTPS only (pgBackRest speaks
nothing else to S3), with a certificate from a CA of the test's own, which
the stack is given as BACKUP_S3_CA_FILE, and it requires a valid key and
signature, as a real provider does. The containers reach it on the host's
address on Docker's bridge. One stack (the defaults variant) serves the
module; the tests run in file order, the destructive one last.
"""

from __future__ import annotations

import pytest
import yaml

from harness import docker as docker_env
from harness import servers
from harness.backup import backup_stack, lose_and_restore, wait_for_a_backup
from harness.policy import require
from harness.stack import refused

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

BUCKET = "backups"


@pytest.fixture(scope="module")
def s3():
    """moto on the host's address on Docker's bridge, over HTTPS, with one bucket."""
    problem = docker_env.engine_problem()
    require(problem is None, problem)
    require(servers.moto_installed(), f"moto server not found: {servers.S3_HINT}")
    server = servers.S3Server(tls=True)
    server.host = docker_env.bridge_gateway()
    with server:
        server.client().create_bucket(Bucket=BUCKET)
        server.require_credentials()
        yield server


@pytest.fixture(scope="module")
def stack(render, tmp_path_factory, s3):
    values = {
        "BACKUP_S3_BUCKET": BUCKET,
        # A URL with its port: the entrypoint splits it into pgBackRest's options.
        "BACKUP_S3_ENDPOINT": s3.endpoint_url,
        "BACKUP_S3_REGION": s3.region,
        "BACKUP_S3_KEY": s3.access_key,
        "BACKUP_S3_SECRET": s3.secret_key,
        # An address has no bucket.ADDRESS host names.
        "BACKUP_S3_URI_STYLE": "path",
        "BACKUP_S3_CA_FILE": str(s3.ca_file),
    }
    with backup_stack(render, tmp_path_factory, "backup-s3", **values) as project:
        yield project


def path(stack) -> str:
    """The default BACKUP_S3_PATH: the project's slug, so that services can share a bucket."""
    return "/" + yaml.safe_load((stack.service / ".copier-answers.yml").read_text())["project_slug"]


def objects(stack, s3, under: str) -> list[str]:
    """The keys in the bucket under the stack's path."""
    keys = []
    prefix = f"{path(stack)[1:]}/{under}"
    for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def endpoint(s3) -> str:
    """The endpoint as the commands name it: host and port."""
    return s3.endpoint_url.removeprefix("https://")


def test_the_first_full_backup_and_the_wal_go_to_the_bucket(stack, s3):
    (first,) = wait_for_a_backup(stack)
    backups, archive = objects(stack, s3, "backup/db/"), objects(stack, s3, "archive/db/")
    assert any(key.endswith("/backup.manifest") for key in backups), backups
    assert any(key.endswith(".zst") for key in archive), archive
    # None of pgBackRest's files in BACKUP_DIR, which keeps only the media copies.
    local = stack.service / "backups"
    assert not (local / "backup").exists() and not (local / "archive").exists()
    assert "full backup done" in stack.logs("backup")

    # make backup and make backup-list name the bucket and read it.
    made = stack.operator("make", "backup")
    assert made.returncode == 0, made.stderr[-3000:]
    assert f"The backup repository (S3 bucket {BUCKET} at {endpoint(s3)}, path {path(stack)})" in made.stdout
    listing = stack.operator("make", "backup-list")
    assert listing.returncode == 0, listing.stderr[-3000:]
    assert f"Backups in the repository (S3 bucket {BUCKET} at {endpoint(s3)}" in listing.stdout
    listed = stack.backups()
    assert len(listed) == 2 and listed[0] == first
    # The status and the healthcheck read the bucket too.
    status = stack.operator("make", "backup-status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"last full backup:  {listed[1].split()[0]}, ended " in status.stdout
    archived, failed = stack.sql("select archived_count, failed_count from pg_stat_archiver").split("|")
    assert int(archived) >= 2 and int(failed) == 0


def test_a_restore_with_wrong_credentials_is_refused_with_one_message_and_touches_nothing(stack, s3):
    wait_for_a_backup(stack)
    stack.add_groups("kept")
    started = {name: stack.started_at(name) for name in ("db", "web", "backup")}
    where = f"cannot read the backup repository (S3 bucket {BUCKET} at {endpoint(s3)}"

    cases = {
        "SignatureDoesNotMatch": {"BACKUP_S3_SECRET": "not-the-secret"},
        "InvalidAccessKeyId": {"BACKUP_S3_KEY": "AKIAWRONGWRONGWRONG0", "BACKUP_S3_SECRET": "not-the-secret"},
    }
    for code, values in cases.items():
        line = refused(stack.operator("scripts/backup.sh", "restore", "--force", **values))
        assert line.startswith(f"error: {where}"), line
        assert f"access denied ({code}: " in line and "check BACKUP_S3_KEY, BACKUP_S3_SECRET" in line, line

    # Settings the entrypoint refuses before pgBackRest runs.
    plain = s3.endpoint_url.replace("https://", "http://")
    line = refused(stack.operator("scripts/backup.sh", "restore", "--force", BACKUP_S3_ENDPOINT=plain))
    assert "pgBackRest reaches S3 over HTTPS only" in line, line

    assert {name: stack.started_at(name) for name in started} == started
    assert "kept" in stack.groups()
    assert stack.sql("select pg_is_in_recovery()") == "f"


@pytest.mark.reliability
def test_a_lost_database_volume_is_restored_from_the_bucket_to_the_latest_and_to_a_point_in_time(stack, figure):
    lose_and_restore(stack, figure, where="S3: ")
