#!/usr/bin/env bash
# The backup service's command: makes sure the repository has this
# cluster's stanza, takes a first full backup when there is none, then a
# full backup every day at BACKUP_DAILY_AT (HH:MM, UTC). Backups older than
# the last BACKUP_RETENTION_FULL full ones expire after each backup.
# A failed backup is logged at ERROR and retried at the next scheduled time.
set -uo pipefail

# shellcheck source=repository.sh
. /usr/local/lib/backup-repository.sh

daily_at="${BACKUP_DAILY_AT:-02:00}"

log() {
    printf '%s %s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2"
}

# SIGTERM from `docker compose stop` ends the wait below at once.
trap 'log INFO "stopping"; exit 0' TERM INT

pause() {
    sleep "$1" &
    wait $!
}

if ! date -u -d "today ${daily_at}" >/dev/null 2>&1; then
    log ERROR "BACKUP_DAILY_AT=${daily_at} is not a time of day (HH:MM, UTC)"
    exit 1
fi

until pg_isready --quiet --host=/var/run/postgresql; do
    pause 1
done

# Idempotent: creates the stanza, or checks that the existing one belongs to
# this cluster. It fails when the repository cannot be read or written (a
# wrong S3 key in .env), or when it holds another cluster's backups (a new,
# empty database after `down -v`: restore first).
if ! pgbackrest stanza-create; then
    if ! info=$(repository_info 2>&1); then
        log ERROR "${info}"
    elif [ "$(jq '.[0].status.code' <<<"${info}")" = 1 ]; then
        # Status 1: no stanza yet, so it could not be written.
        log ERROR "cannot write to the backup repository (${BACKUP_REPOSITORY}); see pgBackRest's error above"
    else
        log ERROR "the backup repository does not match this database (${BACKUP_REPOSITORY}); restore it (make restore) or move the repository aside"
    fi
    exit 1
fi

full_backup() {
    log INFO "full backup started"
    if pgbackrest backup --type=full; then
        log INFO "full backup done"
    else
        log ERROR "full backup failed (exit status $?); next attempt at ${daily_at} UTC"
    fi
}

if [ "$(repository_info | jq '[.[].backup[]] | length')" = 0 ]; then
    full_backup
fi

while true; do
    now=$(date -u +%s)
    next=$(date -u -d "today ${daily_at}" +%s)
    if [ "${next}" -le "${now}" ]; then
        next=$(date -u -d "tomorrow ${daily_at}" +%s)
    fi
    log INFO "next full backup at $(date -u -d "@${next}" '+%Y-%m-%d %H:%M') UTC"
    pause $((next - now))
    full_backup
done
