"""The production stack's backups, driven as an operator drives them
(scripts/backup.sh, the make targets, docker compose with COMPOSE_FILE and
COMPOSE_PROJECT_NAME): used by test_backup.py and test_backup_media.py (the
repository in the service's ./backups directory, as the rendered
.env.example says) and test_backup_s3.py (in an S3 bucket).

* ``backup_stack(render, tmp_path_factory, name, **values)`` yields a
  ``BackupStack`` of the defaults service, up, with ``values`` in its .env.
* ``BackupStack`` reads and writes the rows the tests count (Django's auth
  groups), lists the backups and archives the current WAL segment.
* ``wait_for_a_backup`` and ``lose_volume`` are what the tests wait for and
  break things with.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

from harness import service as service_tools
from harness.docker import docker
from harness.stack import OperatorStack, operated_stack

GROUPS = "from django.contrib.auth.models import Group; "
# One database backup in `scripts/backup.sh list`.
BACKUP_LINE = re.compile(r"^\d{8}-\d{6}F  full  finished \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  database \d+ MiB", re.M)


class BackupStack(OperatorStack):
    @property
    def repository(self) -> Path:
        """The backup repository (BACKUP_DIR) on the host."""
        return self.service / "backups"

    def shell(self, code: str) -> str:
        """Python run by Django's shell in the web container; its output."""
        return self.exec("web", "python", "src/manage.py", "shell", "--no-imports", "-c", code).strip()

    def django(self, code: str) -> str:
        return self.shell(GROUPS + code)

    def groups(self) -> list[str]:
        return self.django("print(','.join(sorted(Group.objects.values_list('name', flat=True))))").split(",")

    def add_groups(self, *names: str) -> None:
        self.django(f"Group.objects.bulk_create([Group(name=n) for n in {list(names)!r}])")

    def backups(self) -> list[str]:
        listing = self.operator("scripts/backup.sh", "list")
        assert listing.returncode == 0, listing.stderr[-3000:]
        return BACKUP_LINE.findall(listing.stdout)

    def check_archive(self) -> None:
        """`pgbackrest check`: switches to a new WAL segment and waits until it is archived."""
        checked = self.compose("run", "--rm", "--no-deps", "-T", "backup", "pgbackrest", "check", check=False)
        assert checked.returncode == 0, checked.stderr[-3000:]


@contextlib.contextmanager
def backup_stack(render, tmp_path_factory, name: str, **values: str) -> Iterator[BackupStack]:
    """The defaults service's production stack, up and healthy, with these
    .env values besides the ones every stack needs; taken down, with its
    volumes and images, afterwards."""
    with operated_stack(render("defaults"), tmp_path_factory.mktemp(name), name, BackupStack, **values) as stack:
        yield stack


def wait_for_a_backup(stack: BackupStack) -> list[str]:
    """The backup service takes a first full backup of a new database."""
    return service_tools.wait_for(stack.backups, timeout=300, interval=2, message="the first full backup")


def lose_volume(stack: BackupStack, volume: str, *services: str) -> None:
    """The disaster: the services' containers and the volume are gone."""
    stack.compose("rm", "--stop", "--force", *services)
    name = f"{stack.project}_{volume}"
    docker("volume", "rm", name)
    assert docker("volume", "inspect", name, check=False).returncode != 0


def lose_and_restore(stack: BackupStack, figure, where: str = "") -> None:
    """Rows before and after a time T, archived; the database volume lost;
    `make restore` brings every row back, then `make restore TO=T FORCE=1`
    the rows before T; the database is a primary again."""
    wait_for_a_backup(stack)
    stack.add_groups("before-1", "before-2")
    target = stack.sql("select clock_timestamp()")
    stack.add_groups("after-1")
    everything = stack.groups()
    assert {"before-1", "before-2", "after-1"} <= set(everything)
    stack.check_archive()

    lose_volume(stack, "postgres-data", "db", "backup")
    # No database left: the restore needs no --force.
    started = time.monotonic()
    latest = stack.operator("make", "restore")
    figure(
        f"{where}restore of the latest state into an empty volume, stack up again",
        f"{time.monotonic() - started:.0f} s",
    )
    assert latest.returncode == 0, latest.stdout[-3000:] + latest.stderr[-3000:]
    assert "Stopping proxy web worker beat backup db" in latest.stdout
    assert stack.groups() == everything

    started = time.monotonic()
    pitr = stack.operator("make", "restore", f"TO={target}", "FORCE=1")
    figure(f"{where}restore to a point in time over an existing database", f"{time.monotonic() - started:.0f} s")
    assert pitr.returncode == 0, pitr.stdout[-3000:] + pitr.stderr[-3000:]
    assert f"Restored the database to {target}" in pitr.stdout
    assert stack.groups() == [name for name in everything if name != "after-1"]

    # A primary again, archiving on a new timeline.
    stack.add_groups("after-restore")
    assert "after-restore" in stack.groups()
    assert stack.sql("select pg_is_in_recovery()") == "f"
    stack.check_archive()
    for name in ("web", "worker", "beat", "backup"):
        assert stack.state(name)["Running"], name
