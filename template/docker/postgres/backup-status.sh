#!/usr/bin/env bash
# The state of the backups, from the repository (pgbackrest info) and the
# server (pg_stat_archiver): when the last full backup ended, when the last
# WAL segment was archived. Exits non-zero, after one "problem:" line per
# problem, when:
#   - the repository cannot be read;
#   - the scheduler's last backup failed (it leaves FAILED_MARK behind);
#   - the newest backup is more than a day and two hours old: a daily
#     backup was missed;
#   - archiving fails: the server's last failure is newer than its last
#     success, and every commit since is at risk.
# The backup service's healthcheck runs it with --quiet (`docker compose ps`
# shows "unhealthy"); scripts/backup.sh status prints it.
set -euo pipefail

# Healthchecks and `docker compose exec` start commands as root, without the
# entrypoint: through it, this runs as postgres, which owns pgBackRest's
# files, and sees the repository the entrypoint chose (the S3 bucket's
# settings, BACKUP_REPOSITORY).
if [ -z "${BACKUP_REPOSITORY:-}" ]; then
    exec backup-entrypoint.sh "$0" "$@"
fi

# shellcheck source=repository.sh
. /usr/local/lib/backup-repository.sh

FAILED_MARK=/tmp/backup-failed
MAX_AGE_SECONDS=$((26 * 3600))

quiet=""
if [ "${1:-}" = --quiet ]; then
    quiet=1
fi

problems=""
now=$(date -u +%s)

problem() {
    problems+="problem: $1"$'\n'
}

say() {
    if [ -z "${quiet}" ]; then
        printf '%s\n' "$1"
    fi
}

# "2026-12-01 02:00:31 UTC, 3 h 05 min ago"
moment() {
    local seconds=$((now - $1)) age
    if [ "${seconds}" -lt 60 ]; then
        age="${seconds} s"
    elif [ "${seconds}" -lt 3600 ]; then
        age="$((seconds / 60)) min"
    else
        age=$(printf '%d h %02d min' $((seconds / 3600)) $((seconds % 3600 / 60)))
    fi
    printf '%s, %s ago' "$(date -u -d "@$1" '+%Y-%m-%d %H:%M:%S UTC')" "${age}"
}

if ! info=$(repository_info 2>&1); then
    problem "${info}"
else
    last=$(jq -r '[.[].backup[]] | max_by(.timestamp.stop) // empty | "\(.label) \(.timestamp.stop)"' <<<"${info}")
    if [ -z "${last}" ]; then
        say "last full backup:  none yet"
    else
        read -r label stop <<<"${last}"
        say "last full backup:  ${label}, ended $(moment "${stop}")"
        if [ $((now - stop)) -gt "${MAX_AGE_SECONDS}" ]; then
            problem "the newest backup is more than 26 hours old: the daily backup did not run"
        fi
    fi
fi
if [ -f "${FAILED_MARK}" ]; then
    problem "the last scheduled backup failed ($(cat "${FAILED_MARK}")); see docker compose logs backup"
fi

query="select coalesce(last_archived_wal, ''), coalesce(extract(epoch from last_archived_time)::bigint, 0),
              coalesce(last_failed_wal, ''), coalesce(extract(epoch from last_failed_time)::bigint, 0),
              archived_count, failed_count
       from pg_stat_archiver"
if ! archiver=$(psql --quiet --no-align --tuples-only --no-psqlrc --field-separator='|' \
    --host=/var/run/postgresql --username="${PGBACKREST_PG1_USER}" --dbname=postgres --command="${query}" 2>&1); then
    problem "cannot ask the database about archiving: ${archiver}"
else
    IFS='|' read -r archived_wal archived_at failed_wal failed_at archived_count failed_count <<<"${archiver}"
    if [ -n "${archived_wal}" ]; then
        say "last archived WAL: ${archived_wal}, $(moment "${archived_at}")"
    else
        say "last archived WAL: none since the server started"
    fi
    say "archiving:         ${archived_count} segments archived, ${failed_count} attempts failed since the server started"
    if [ "${failed_at}" -gt "${archived_at}" ]; then
        problem "archiving fails: segment ${failed_wal} could not be stored, $(moment "${failed_at}"); see docker compose logs db"
    fi
fi

if [ -z "${problems}" ]; then
    say "status:            ok"
    exit 0
fi
printf '%s' "${problems}"
exit 1
