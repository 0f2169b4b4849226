"""The production stack's database backups, driven as an operator drives
them: used by test_backup.py (the repository in BACKUP_DIR) and
test_backup_s3.py (in an S3 bucket).

* ``backup_stack(rendered, directory, name, **values)`` copies a rendered
  service, builds its images, writes .env (with ``values``), starts the
  stack and yields a ``BackupStack``; the stack is taken down afterwards.
* ``BackupStack`` runs the operator's commands (scripts/backup.sh, make) in
  the service's directory, and reads and writes the rows the tests count
  (Django's auth groups).
* ``wait_for_a_backup`` and ``refused`` are what the tests assert with.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from harness import docker as docker_env
from harness import service as service_tools
from harness.docker import docker, image_values
from harness.policy import require
from harness.stack import ComposeProject, build, compose_files, env_file, stack_values

GROUPS = "from django.contrib.auth.models import Group; "
# A line of `scripts/backup.sh list` for a full backup.
BACKUP_LINE = re.compile(r"^\d{8}-\d{6}F  full  finished \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  database \d+ MiB", re.M)


class BackupStack(ComposeProject):
    def environment(self, **extra: str) -> dict[str, str]:
        """What the operator's shell needs to address this stack with docker compose."""
        return {
            **os.environ,
            "COMPOSE_FILE": ":".join(self.files),
            "COMPOSE_PROJECT_NAME": self.project,
            **extra,
        }

    def operator(self, *command: str, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess[str]:
        """A command run in the service's directory, as an operator runs it;
        extra variables override .env, as they do for docker compose."""
        return subprocess.run(
            command,
            cwd=self.service,
            env=self.environment(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def django(self, code: str) -> str:
        return self.exec("web", "python", "src/manage.py", "shell", "--no-imports", "-c", GROUPS + code).strip()

    def groups(self) -> list[str]:
        return self.django("print(','.join(sorted(Group.objects.values_list('name', flat=True))))").split(",")

    def add_groups(self, *names: str) -> None:
        self.django(f"Group.objects.bulk_create([Group(name=n) for n in {list(names)!r}])")

    def sql(self, query: str) -> str:
        command = 'psql -qtAX --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" --command="$0"'
        return self.exec("db", "sh", "-c", command, query).strip()

    def started_at(self, service: str) -> str:
        return self.state(service)["StartedAt"]

    def backups(self) -> list[str]:
        listing = self.operator("scripts/backup.sh", "list")
        assert listing.returncode == 0, listing.stderr[-3000:]
        return BACKUP_LINE.findall(listing.stdout)

    def check_archive(self) -> None:
        """`pgbackrest check`: switches to a new WAL segment and waits until it is archived."""
        checked = self.compose("run", "--rm", "--no-deps", "-T", "backup", "pgbackrest", "check", check=False)
        assert checked.returncode == 0, checked.stderr[-3000:]


@contextlib.contextmanager
def backup_stack(rendered: Path, directory: Path, name: str, **values: str) -> Iterator[BackupStack]:
    """The rendered service's production stack, up, in a copy of it under directory."""
    problem = docker_env.engine_problem()
    require(problem is None, problem)
    service = directory / "service"
    shutil.copytree(rendered, service, symlinks=True)
    try:
        images = docker_env.stack_images(service / "docker-compose.prod.yml")
    except docker_env.ImageError as error:
        require(False, str(error))
    tag, db_tag = f"stacktest-{name}:latest", f"stacktest-{name}-db-{secrets.token_hex(3)}:latest"
    build(service, tag, images["PYTHON_IMAGE"].name)
    env_file(service, stack_values(tag, DB_IMAGE=db_tag, **image_values(images), **values))
    project = BackupStack(service, name, compose_files(service))
    try:
        project.compose("build", "db", timeout=1800)
        project.up()
        yield project
    finally:
        project.down()
        docker("rmi", tag, db_tag, check=False)


def wait_for_a_backup(stack: BackupStack) -> list[str]:
    """The backup service takes a first full backup of a new database."""
    return service_tools.wait_for(stack.backups, timeout=300, interval=2, message="the first full backup")


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one-line error of a refused restore."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert "nothing was stopped or changed" in lines[0]
    return lines[0]
