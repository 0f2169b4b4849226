"""migrate, one run at a time: ``python src/manage.py migrate_locked --noinput``.

The production stack's one-shot ``migrate`` job runs this command. It is also
safe for an operator to run it by hand while that job runs, or to start two
jobs at once: on PostgreSQL every run first takes a session-level advisory
lock, so runs queue up behind each other instead of racing to create the same
tables (which fails with errors such as "relation already exists" or a
duplicate key on the permission and content type rows). A run that waited
finds the migrations already applied and has nothing left to do.

Every option of ``migrate`` is accepted and passed on (``--noinput``, an app
label and migration name, ``--plan``, ``--check``, ``--fake``...). The lock
is taken on the connection of the database being migrated (``--database``,
``default`` unless given) and is released when the run ends, or by PostgreSQL
itself if the process dies. A run waits for the lock as long as the other run
takes; to see who holds it::

    SELECT pid, backend_start, query FROM pg_stat_activity
    WHERE pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory');

Other databases (SQLite in development) have no such lock: the command just
migrates.

With LOG_FORMAT=json, each line of migrate's report is a log record (logger
servicekit.migrate), so that the migrate container's output is in the
format of every other one.
"""

import contextlib
import hashlib
import io
import logging

from django.conf import settings
from django.core.management.commands.migrate import Command as MigrateCommand
from django.db import DatabaseError, connections

logger = logging.getLogger("servicekit.migrate")

LOCK_NAME = "django-migrate"
# pg_advisory_lock takes a signed 64-bit key: the first 8 bytes of a hash of
# the name, the same in every process and every release.
LOCK_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)


class Command(MigrateCommand):
    help = (
        "Runs migrate while holding a PostgreSQL advisory lock, so that concurrent runs "
        "apply migrations one after the other. Takes every option of migrate."
    )

    def execute(self, *args, **options):
        if settings.LOG_FORMAT == "json":
            options["stdout"] = LogStream(logging.INFO)
            options["stderr"] = LogStream(logging.WARNING)
        return super().execute(*args, **options)

    def handle(self, *args, **options):
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            return super().handle(*args, **options)

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
            if not cursor.fetchone()[0]:
                self.stderr.write("Another migrate_locked run holds the migration lock: waiting for it to finish.")
                cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        try:
            return super().handle(*args, **options)
        finally:
            # A session lock outlives transactions, so release it explicitly.
            # If the session is gone, PostgreSQL has released its lock already.
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


class LogStream(io.TextIOBase):
    """A text stream that logs each line written to it."""

    def __init__(self, level):
        super().__init__()
        self.level = level
        self.pending = ""

    def write(self, text):
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.strip():
                logger.log(self.level, line.rstrip())
        return len(text)

    def flush(self):
        # migrate flushes "Applying x..." before it writes " OK": the line is
        # logged once it is whole.
        pass
