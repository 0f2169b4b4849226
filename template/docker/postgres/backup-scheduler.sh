#!/usr/bin/env bash
# The backup service's command: makes sure the repository has this
# cluster's stanza, takes a first full backup when there is none, then a
# full backup every day at BACKUP_DAILY_AT (HH:MM, UTC). Backups older than
# the last BACKUP_RETENTION_FULL full ones expire after each backup.
# A failed backup is logged at ERROR and retried at the next scheduled time;
# until a backup succeeds, FAILED_MARK makes the service unhealthy
# (backup-status).
set -uo pipefail

FAILED_MARK=/tmp/backup-failed

# shellcheck source=repository.sh
. /usr/local/lib/backup-repository.sh

daily_at="${BACKUP_DAILY_AT:-02:00}"

log() {
    printf '%s %s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2"
}

# An ERROR also goes to Sentry when the image has sentry-event (services
# made with Sentry) and SENTRY_DSN is set.
error() {
    log ERROR "$1"
    if command -v sentry-event >/dev/null && ! sentry-event "backup: $1"; then
        log WARNING "the error could not be sent to Sentry"
    fi
}

# SIGTERM from `docker compose stop` ends the wait below at once.
trap 'log INFO "stopping"; exit 0' TERM INT

pause() {
    sleep "$1" &
    wait $!
}

if ! date -u -d "today ${daily_at}" >/dev/null 2>&1; then
    error "BACKUP_DAILY_AT=${daily_at} is not a time of day (HH:MM, UTC)"
    exit 1
fi

# The server that stays: on a new volume the official entrypoint first
# starts a private one (no TCP, listen_addresses empty) to create the
# database, then stops it. Compose starts backup once db is healthy; Swarm
# starts both at once.
until [ -n "$(psql --quiet --no-align --tuples-only --no-psqlrc --host=/var/run/postgresql \
    --username="${PGBACKREST_PG1_USER}" --dbname=postgres --command="show listen_addresses" 2>/dev/null)" ]; do
    pause 1
done

# Idempotent: creates the stanza, or checks that the existing one belongs to
# this cluster. It fails when the repository cannot be read or written (a
# wrong S3 key in .env), or when it holds another cluster's backups (a new,
# empty database after `down -v`: restore first).
if ! pgbackrest stanza-create; then
    if ! info=$(repository_info 2>&1); then
        error "${info}"
    elif [ "$(jq '.[0].status.code' <<<"${info}")" = 1 ]; then
        # Status 1: no stanza yet, so it could not be written.
        error "cannot write to the backup repository (${BACKUP_REPOSITORY}); see pgBackRest's error above"
    else
        error "the backup repository does not match this database (${BACKUP_REPOSITORY}); restore it (make restore) or move the repository aside"
    fi
    exit 1
fi

# PostgreSQL's checkpointer can begin its first sleep while the server is
# still starting or recovering, and then sleeps checkpoint_timeout (5
# minutes) before it applies archive_timeout: for that long a quiet
# database's commits stay unarchived (seen with PostgreSQL 17 after restores
# and restarts). A CHECKPOINT wakes it; one is asked for whenever the server
# is seen (re)started.
server_started=""
# A server that does not answer within 20 seconds is asked again next time.
server() {
    timeout 20 psql --quiet --no-align --tuples-only --no-psqlrc --host=/var/run/postgresql \
        --username="${PGBACKREST_PG1_USER}" --dbname=postgres --command="$1" 2>/dev/null
}
watch_server() {
    local started
    started=$(server "select pg_postmaster_start_time() where not pg_is_in_recovery()") || return 0
    if [ -n "${started}" ] && [ "${started}" != "${server_started}" ] && server CHECKPOINT >/dev/null; then
        server_started="${started}"
    fi
}

full_backup() {
    log INFO "full backup started"
    if pgbackrest backup --type=full; then
        rm -f "${FAILED_MARK}"
        log INFO "full backup done"
        record_last_backup || log WARNING "the time of the backup could not be recorded for /metrics"
    else
        local status=$?
        echo "exit status ${status} at $(date -u '+%Y-%m-%d %H:%M UTC')" >"${FAILED_MARK}"
        error "full backup failed (exit status ${status}); next attempt at ${daily_at} UTC"
    fi
    media-backup copy --if-mounted # the media volume too, when this stack has one (media-backup.sh)
}

if [ "$(repository_info | jq '[.[].backup[]] | length')" = 0 ]; then
    full_backup
else
    # Backups taken before this container started (`make backup`, another
    # release of the scheduler).
    record_last_backup || log WARNING "the time of the last backup could not be recorded for /metrics"
fi

while true; do
    now=$(date -u +%s)
    next=$(date -u -d "today ${daily_at}" +%s)
    if [ "${next}" -le "${now}" ]; then
        next=$(date -u -d "tomorrow ${daily_at}" +%s)
    fi
    log INFO "next full backup at $(date -u -d "@${next}" '+%Y-%m-%d %H:%M') UTC"
    while [ "$(date -u +%s)" -lt "${next}" ]; do
        watch_server
        pause 10
    done
    full_backup
done
