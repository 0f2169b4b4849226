#!/usr/bin/env bash
# Backups of the production database. pgBackRest runs in one-off containers
# of the stack's backup service; the repository is BACKUP_DIR on the host,
# or an S3-compatible bucket when BACKUP_S3_BUCKET is set in .env.
#   scripts/backup.sh now        a full backup now             (make backup)
#   scripts/backup.sh list       the backups, times and sizes  (make backup-list)
#   scripts/backup.sh restore [--to "2026-12-01 10:15:00+00"] [--force]
#                                                              (make restore [TO=...] [FORCE=1])
# restore checks the repository and the target time first, and stops
# nothing when they are wrong. Then it stops the app services, backup and
# db, restores the database volume (to the last archived transaction, or to
# the target time), starts db, waits for the end of its recovery and starts
# the stack. It replaces an existing database only with --force.
# The stack is docker-compose.prod.yml's; COMPOSE_FILE and
# COMPOSE_PROJECT_NAME select another, as they do for docker compose.
set -euo pipefail

cd "$(dirname "$0")/.."
export COMPOSE_FILE="${COMPOSE_FILE:-docker-compose.prod.yml}"

# Services that write to the database, stopped during a restore.
WRITERS=(web worker beat backup)
# One line per backup, from `pgbackrest info --output=json`.
BACKUP_LINES='(.[0].backup[] | "\(.label)  \(.type)  finished \(.timestamp.stop | todate)  database \(.info.size / 1048576 | floor) MiB  in the repository \(.info.repository.delta / 1048576 | floor) MiB")'

die() {
    echo "error: $1" >&2
    exit 1
}

# A one-off container of the backup service (the db image, with the data
# volume, the server's socket and the repository).
in_backup() {
    docker compose run --rm --no-deps -T backup "$@"
}

# What the repository holds, as the jq program $1 formats it from
# `pgbackrest info`; the program sees the repository's name (BACKUP_DIR,
# or the S3 bucket) as $repository. One line naming the problem when the
# repository cannot be read.
report() {
    in_backup bash -c 'set -o pipefail; . /usr/local/lib/backup-repository.sh
        repository_info | jq -r --arg repository "${BACKUP_REPOSITORY}" "$0"' "$1"
}

backup_now() {
    echo "Taking a full backup of the database..."
    in_backup pgbackrest backup --type=full
    report '"Done. The backup repository (\($repository)) now holds:", '"${BACKUP_LINES}"
}

backup_list() {
    report '"Backups in the repository (\($repository)), oldest first:", '"${BACKUP_LINES}"', "Archived WAL, for restores to a point in time:", (.[0].archive[] | "  timeline \(.id): \(.min) to \(.max)")'
}

restore() {
    local target="${TO:-}" force="${FORCE:-}"
    while [ $# -gt 0 ]; do
        case "$1" in
            --to) target="${2:?--to needs a time}"; shift 2 ;;
            --to=*) target="${1#--to=}"; shift ;;
            --force) force=1; shift ;;
            *) die "unknown argument $1 (usage: scripts/backup.sh restore [--to TIME] [--force])" ;;
        esac
    done
    case "${force}" in 1 | yes | true) force=1 ;; *) force="" ;; esac

    echo "Checking the backup repository${target:+ and the target time ${target}}..."
    local cluster
    errors=$(mktemp)
    trap 'rm -f "${errors}"' EXIT
    if ! cluster=$(in_backup restore-check "${target}" 2>"${errors}"); then
        die "$(tail -n 1 "${errors}") (nothing was stopped or changed)"
    fi
    local options=()
    if [ "${cluster}" = cluster=present ]; then
        if [ -z "${force}" ]; then
            die "the database volume holds a database, which the restore would replace: run again with --force (make restore FORCE=1) (nothing was stopped or changed)"
        fi
        # Keeps the files that match the backup: faster than a full copy.
        options+=(--delta)
    fi
    if [ -n "${target}" ]; then
        options+=(--type=time "--target=${target}" --target-action=promote)
    fi

    local services stop=()
    services=$(docker compose config --services)
    for service in "${WRITERS[@]}" db; do
        if grep -qx "${service}" <<<"${services}"; then
            stop+=("${service}")
        fi
    done
    echo "Stopping ${stop[*]}..."
    docker compose stop "${stop[@]}"

    echo "Restoring the database volume to ${target:-the last archived transaction}..."
    in_backup pgbackrest restore "${options[@]}"

    echo "Starting db; it replays the archived WAL..."
    docker compose up --detach --wait db
    local recovering=t deadline=$((SECONDS + 600))
    while [ "${recovering}" != f ] && [ "${SECONDS}" -lt "${deadline}" ]; do
        sleep 1
        recovering=$(docker compose exec -T db sh -c \
            'psql --quiet --tuples-only --no-align --username="$POSTGRES_USER" --dbname=postgres --command="select pg_is_in_recovery()"' \
            2>/dev/null || true)
    done
    if [ "${recovering}" != f ]; then
        die "db did not finish its recovery within 10 minutes; see docker compose logs db"
    fi

    echo "Starting the stack..."
    docker compose up --detach --wait
    echo "Restored the database to ${target:-the last archived transaction}; the stack is up."
}

case "${1:-}" in
    now) backup_now ;;
    list) backup_list ;;
    restore) shift; restore "$@" ;;
    *) die "usage: scripts/backup.sh now | list | restore [--to TIME] [--force]" ;;
esac
