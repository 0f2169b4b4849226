"""Copies of the production stack's media volume (media_backend local), on
a real Docker engine: the backup service's copy after each full backup,
`make backup-media`, the listing, retention, refused restores, and a lost
media volume restored with `make restore-media`, files uploaded through
Django coming back byte for byte.

One stack (the defaults variant) serves the module, keeping two full
backups and so two media copies. The tests run in file order: the
destructive one comes last. Run with -s to see the figures.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from harness import service as service_tools
from harness.backup import BackupStack, backup_stack, lose_volume, wait_for_a_backup
from harness.stack import refused

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

RETENTION = 2
COPY_NAME = re.compile(r"^\d{8}T\d{6}Z\.tar\.zst$")
# One media copy in `scripts/backup.sh list`: its name, end time and size.
MEDIA_LINE = re.compile(r"^(\d{8}T\d{6}Z)  media  finished [\d-]{10}T[\d:]{8}Z  in the repository [\d.]+ \w*B$", re.M)
# The long-running services that mount the media volume; migrate (one-shot) does too.
MEDIA_SERVICES = ("web", "worker", "beat", "proxy", "backup")

# Saves files of random bytes through Django's storage; prints name -> sha256.
UPLOAD = """
import hashlib, json, os
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
sums = {}
for name, size in %r:
    data = os.urandom(size)
    sums[default_storage.save(name, ContentFile(data))] = hashlib.sha256(data).hexdigest()
print(json.dumps(sums))
"""

# Every file in the media storage, read through Django: name -> sha256; and
# whether the app's user owns every file and directory, the top one included.
CONTENTS = """
import hashlib, json, os
from django.conf import settings
from django.core.files.storage import default_storage
root, sums, owners = str(settings.MEDIA_ROOT), {}, {os.stat(settings.MEDIA_ROOT).st_uid}
for folder, folders, files in os.walk(root):
    for name in folders + files:
        owners.add(os.stat(os.path.join(folder, name)).st_uid)
    for name in files:
        relative = os.path.relpath(os.path.join(folder, name), root)
        with default_storage.open(relative) as handle:
            sums[relative] = hashlib.sha256(handle.read()).hexdigest()
print(json.dumps({"sums": sums, "owned_by_app": owners == {os.getuid()}}))
"""


def figure(label: str, value: str) -> None:
    print(f"\n[figure] {label}: {value}")


@pytest.fixture(scope="module")
def stack(render, tmp_path_factory):
    with backup_stack(render, tmp_path_factory, "media", BACKUP_RETENTION_FULL=str(RETENTION)) as project:
        yield project


def upload(stack: BackupStack, *files: tuple[str, int]) -> dict[str, str]:
    return json.loads(stack.shell(UPLOAD % (list(files),)))


def media_contents(stack: BackupStack) -> dict:
    return json.loads(stack.shell(CONTENTS))


def copies(stack: BackupStack) -> list[str]:
    """The media copies in the repository on the host, oldest first."""
    folder = stack.repository / "media"
    return sorted(path.name for path in folder.iterdir() if COPY_NAME.match(path.name)) if folder.is_dir() else []


def listed(stack: BackupStack) -> list[str]:
    listing = stack.operator("scripts/backup.sh", "list")
    assert listing.returncode == 0, listing.stderr[-3000:]
    return MEDIA_LINE.findall(listing.stdout)


def wait_for_the_first_copy(stack: BackupStack) -> list[str]:
    """The backup service copies the media volume after its first full backup."""
    wait_for_a_backup(stack)
    return service_tools.wait_for(lambda: copies(stack), timeout=120, interval=1, message="the first media copy")


def backup_media(stack: BackupStack) -> str:
    result = stack.operator("make", "backup-media")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_the_first_full_backup_is_followed_by_a_copy_of_the_media_volume(stack):
    (first,) = wait_for_the_first_copy(stack)
    log = stack.logs("backup")
    assert log.index("full backup done") < log.index(f"INFO backup: media copy done: media/{first}")
    assert "ERROR" not in log
    # Listed after the database's backups, with its time and size.
    assert listed(stack) == [first.removesuffix(".tar.zst")]
    assert len(stack.backups()) == 1


def test_make_backup_media_copies_uploaded_files_and_keeps_the_last_copies(stack):
    wait_for_the_first_copy(stack)
    upload(stack, ("documents/report.bin", 500_000))
    # A half-written copy, as a killed copy leaves it: never listed or counted.
    partial = stack.repository / "media" / ".20990101T000000Z.abcdef.partial"
    partial.write_bytes(b"half")

    made = []
    for _ in range(RETENTION + 1):
        output = backup_media(stack)
        (name,) = re.findall(r"INFO backup: media copy done: media/(\S+),", output)
        assert name not in made
        made.append(name)
        assert copies(stack)[-1] == name
        # Names carry the start time to the second.
        time.sleep(1)
    assert "expired (BACKUP_RETENTION_FULL=2)" in output
    assert copies(stack) == made[-RETENTION:]
    assert listed(stack) == [name.removesuffix(".tar.zst") for name in made[-RETENTION:]]
    assert partial.exists()


def test_a_failed_copy_is_logged_at_error_and_leaves_the_repository_as_it_was(stack):
    wait_for_the_first_copy(stack)
    (name,) = upload(stack, ("private/unreadable.bin", 1000))
    before = sorted(path.name for path in (stack.repository / "media").iterdir())
    # A file the backup container cannot read (a stricter FILE_UPLOAD_PERMISSIONS).
    stack.exec("web", "chmod", "000", f"/app/media/{name}")
    try:
        result = stack.operator("make", "backup-media")
    finally:
        stack.exec("web", "chmod", "644", f"/app/media/{name}")
    assert result.returncode != 0
    assert re.search(r"^\S+Z ERROR backup: media copy failed \(tar exit status 2", result.stdout, re.M), result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: the media copy failed (see the ERROR above); the repository keeps the copies it had"]
    # Neither a new copy nor a partial one.
    assert sorted(path.name for path in (stack.repository / "media").iterdir()) == before


def test_a_wrong_media_restore_is_refused_with_one_message_and_touches_nothing(stack, tmp_path):
    wait_for_the_first_copy(stack)
    upload(stack, ("kept/file.bin", 1000))
    before = media_contents(stack)
    started = {name: stack.started_at(name) for name in ("web", "worker", "backup")}

    holds_files = refused(stack.operator("make", "restore-media"))
    assert "the media volume holds files" in holds_files and "FORCE=1" in holds_files
    unknown = refused(stack.operator("scripts/backup.sh", "restore-media", "--from", "20000101T000000Z", "--force"))
    assert 'no media copy named "20000101T000000Z"' in unknown
    # A damaged copy is read to its end before anything is stopped.
    damaged = stack.repository / "media" / "20000101T000000Z.tar.zst"
    damaged.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(100))
    try:
        unreadable = refused(stack.operator("make", "restore-media", "FROM=20000101T000000Z", "FORCE=1"))
    finally:
        damaged.unlink()
    assert "the media copy 20000101T000000Z cannot be read" in unreadable

    # A repository without copies (a wrong BACKUP_DIR, a new host).
    empty = tmp_path / "empty-repository"
    empty.mkdir()
    none = refused(stack.operator("scripts/backup.sh", "restore-media", "--force", BACKUP_DIR=str(empty)))
    assert "holds no media copy" in none

    assert {name: stack.started_at(name) for name in started} == started
    assert media_contents(stack) == before


@pytest.mark.reliability
def test_a_lost_media_volume_is_restored_from_the_latest_copy(stack):
    wait_for_the_first_copy(stack)
    uploaded = upload(
        stack,
        ("photos/2026/large.bin", 8_000_000),
        ("photos/2026/small.bin", 4_096),
        ("documents/empty.txt", 0),
    )
    contents = media_contents(stack)
    assert uploaded.items() <= contents["sums"].items() and contents["owned_by_app"]

    started = time.monotonic()
    output = backup_media(stack)
    seconds = time.monotonic() - started
    latest = copies(stack)[-1]
    size = (stack.repository / "media" / latest).stat().st_size
    figure(
        f"make backup-media, {len(contents['sums'])} files",
        f"{seconds:.1f} s, copy {size / 2**20:.1f} MiB",
    )
    assert f"media/{latest}" in output

    # Every container that mounts the media volume goes with it.
    lose_volume(stack, "media", *MEDIA_SERVICES, "migrate")

    # No files left: the restore needs no FORCE.
    started = time.monotonic()
    restored = stack.operator("make", "restore-media")
    figure("make restore-media into a new empty volume, stack up again", f"{time.monotonic() - started:.0f} s")
    assert restored.returncode == 0, restored.stdout[-3000:] + restored.stderr[-3000:]
    assert f"from the copy {latest.removesuffix('.tar.zst')}; the stack is up" in restored.stdout
    assert media_contents(stack) == contents
    for name in MEDIA_SERVICES:
        assert stack.state(name)["Running"], name

    # The app's user owns the restored volume: uploads work again.
    assert upload(stack, ("after-restore.bin", 100))

    # Over existing files with FORCE=1: files saved since the copy are gone.
    forced = stack.operator("make", "restore-media", "FORCE=1")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    assert "replacing the files that were there" in forced.stdout
    assert media_contents(stack) == contents
