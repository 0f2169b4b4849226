#!/usr/bin/env bash
# Entrypoint of the db and backup containers. Docker creates a missing
# bind-mounted BACKUP_DIR as root, and a repository copied from another
# host keeps its owner: as root, hand the repository to postgres first.
# Then `postgres` goes through the official entrypoint (initdb on an empty
# volume), and any other command (the scheduler, pgbackrest) runs as
# postgres, the owner of the data and of the backups.
set -euo pipefail

repository=/var/lib/pgbackrest

if [ "$(id -u)" = 0 ]; then
    find "$repository" ! -user postgres -exec chown postgres:postgres {} +
fi

if [ "${1:-}" = postgres ]; then
    exec docker-entrypoint.sh "$@"
fi

if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
