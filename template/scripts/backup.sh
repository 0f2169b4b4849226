#!/usr/bin/env bash
# Backups of the production database. pgBackRest runs in one-off containers
# of the stack's backup service; the repository is BACKUP_DIR on the host,
# or an S3-compatible bucket when BACKUP_S3_BUCKET is set in .env.
#   scripts/backup.sh now        a full backup now             (make backup)
#   scripts/backup.sh list       the backups, times and sizes  (make backup-list)
#   scripts/backup.sh status     the last backup, the last archived WAL, and
#                                whether anything fails        (make backup-status)
#   scripts/backup.sh verify     restores the newest backup into a throw-away
#                                database and checks it        (make backup-verify)
#   scripts/backup.sh restore [--to "2026-12-01 10:15:00+00"] [--force]
#                                                              (make restore [TO=...] [FORCE=1])
# And of the media volume (media_backend local), copied into BACKUP_DIR/media:
#   scripts/backup.sh media-now  a copy of the media files now (make backup-media)
#   scripts/backup.sh restore-media [--from NAME] [--force]
#                                                              (make restore-media [FROM=...] [FORCE=1])
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
# shellcheck source=present-services.sh
. scripts/present-services.sh

# Services that write to the database, stopped during a restore.
WRITERS=(web worker beat backup)
# One line per backup, from `pgbackrest info --output=json`.
BACKUP_LINES='(.[0].backup[] | "\(.label)  \(.type)  finished \(.timestamp.stop | todate)  database \(.info.size / 1048576 | floor) MiB  in the repository \(.info.repository.delta / 1048576 | floor) MiB")'

die() {
    echo "error: $1" >&2
    exit 1
}

# Stops those of the given services that the stack has (beat and proxy are
# optional); their names are left in STOPPED. A restore stops the proxy
# first: clients are refused while the site is away, and a proxy left
# running would turn unhealthy (its healthcheck goes through web), which
# fails the stack's start afterwards.
stop_services() {
    present_services "$@"
    STOPPED=("${PRESENT[@]}")
    echo "Stopping ${STOPPED[*]}..."
    docker compose stop "${STOPPED[@]}"
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
    in_backup bash -c '. /usr/local/lib/backup-repository.sh && record_last_backup'
    report '"Done. The backup repository (\($repository)) now holds:", '"${BACKUP_LINES}"
}

backup_list() {
    report '"Backups in the repository (\($repository)), oldest first:", '"${BACKUP_LINES}"', "Archived WAL, for restores to a point in time:", (.[0].archive[] | "  timeline \(.id): \(.min) to \(.max)")'
    media_list
}

backup_status() {
    if [ -z "$(docker compose ps --quiet --status=running backup)" ]; then
        die "the backup service is not running, so nothing is backed up: start the stack (docker compose up -d)"
    fi
    echo "Backups of the database, as the backup service sees them:"
    docker compose exec -T backup backup-status
}

# Runs manage.py migrate --check in a one-off app container, against the
# server at host $1 instead of the stack's database: same credentials, same
# database name (the restored one has the roles and databases of the backup).
migrate_check_against() {
    docker compose run --rm --no-deps -T --env VERIFY_HOST="$1" migrate python - <<'PYTHON'
import os
import urllib.parse

url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
credentials = url.netloc.rpartition("@")[0]
os.environ["DATABASE_URL"] = url._replace(netloc=f"{credentials}@{os.environ['VERIFY_HOST']}:5432").geturl()
os.execvp("python", ["python", "src/manage.py", "migrate", "--check"])
PYTHON
}

verify() {
    echo "Verifying the newest backup in a throw-away database; the stack keeps running."
    local container
    container=$(docker compose run --detach --no-deps verify)
    # shellcheck disable=SC2064 # the ID now: the variable is gone at exit
    trap "docker rm --force --volumes ${container} >/dev/null" EXIT

    # Its output, as it comes, until the restored server is ready or the
    # container has stopped on an error.
    local output printed=0
    while true; do
        output=$(docker logs "${container}" 2>&1)
        if [ -n "${output}" ]; then
            tail -n "+$((printed + 1))" <<<"${output}"
            printed=$(wc -l <<<"${output}")
        fi
        if grep -qx 'verify: ready' <<<"${output}"; then
            break
        fi
        if [ -z "$(docker ps --quiet --filter "id=${container}" --filter status=running)" ]; then
            exit 1
        fi
        sleep 1
    done

    echo "Checking that the restored database has every migration of this release (manage.py migrate --check)..."
    # The stack's network resolves a container's short ID.
    if ! migrate_check_against "${container:0:12}"; then
        die "the restored database lacks migrations of this release, or the app cannot use it (see above)"
    fi
    echo "Verified: the newest backup restores, its rows are counted above, its migrations are up to date."
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

    stop_services proxy "${WRITERS[@]}" db

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

# --- The media files (media_backend local) ------------------------------------
# Copies of the media volume, made by docker/postgres/media-backup.sh in the
# backup service's container, where the volume is mounted read-only.

# Services that write media files, stopped during a media restore; backup
# too, so that no scheduled copy reads a half-restored volume.
MEDIA_WRITERS=(web worker beat backup)

has_media_volume() {
    local volumes
    volumes=$(docker compose config --volumes)
    grep -qx media <<<"${volumes}"
}

no_media_volume() {
    die "this stack has no media volume: its media files are in an S3 bucket, which it does not copy; the bucket's versioning keeps them (README.md, \"Media files in S3\")$1"
}

media_now() {
    has_media_volume || no_media_volume ""
    echo "Copying the media files into the backup repository..."
    in_backup media-backup copy || die "the media copy failed (see the ERROR above); the repository keeps the copies it had"
    echo "Done. Media copies in the repository (BACKUP_DIR/media), oldest first:"
    in_backup media-backup list
}

media_list() {
    if has_media_volume; then
        echo "Media copies in the repository (BACKUP_DIR/media), oldest first:"
        in_backup media-backup list
    else
        echo "Media files: in an S3 bucket, which this stack does not copy (README.md, \"Media files in S3\")."
    fi
}

restore_media() {
    local from="${FROM:-}" force="${FORCE:-}"
    while [ $# -gt 0 ]; do
        case "$1" in
            --from) from="${2:?--from needs a copy name}"; shift 2 ;;
            --from=*) from="${1#--from=}"; shift ;;
            --force) force=1; shift ;;
            *) die "unknown argument $1 (usage: scripts/backup.sh restore-media [--from NAME] [--force])" ;;
        esac
    done
    case "${force}" in 1 | yes | true) force=1 ;; *) force="" ;; esac
    has_media_volume || no_media_volume " (nothing was stopped or changed)"

    echo "Checking the media copy ${from:-(the latest)}..."
    local report
    media_errors=$(mktemp)
    trap 'rm -f "${media_errors}"' EXIT
    if ! report=$(in_backup media-backup check ${from:+"${from}"} 2>"${media_errors}"); then
        die "$(tail -n 1 "${media_errors}") (nothing was stopped or changed)"
    fi
    local copy files replaced=""
    copy=$(sed -n 's/^copy=//p' <<<"${report}")
    files=$(sed -n 's/^files=//p' <<<"${report}")
    if grep -qx media=present <<<"${report}"; then
        if [ -z "${force}" ]; then
            die "the media volume holds files, which the restore would replace: run again with --force (make restore-media FORCE=1) (nothing was stopped or changed)"
        fi
        replaced=", replacing the files that were there"
    fi

    stop_services proxy "${MEDIA_WRITERS[@]}"

    echo "Restoring the media volume from ${copy}..."
    # As root (not through the image's entrypoint, which runs commands as
    # postgres): the files get back the app's user id. The volume is mounted
    # writable here, beside the service's read-only mount.
    docker compose run --rm --no-deps -T --entrypoint media-backup \
        --volume media:/srv/media-restore backup restore "${copy}" /srv/media-restore \
        || die "restoring ${copy} failed (see above); ${STOPPED[*]} are stopped: run make restore-media FORCE=1 again, or start them (docker compose -f docker-compose.prod.yml up -d)"

    echo "Starting the stack..."
    docker compose up --detach --wait
    echo "Restored ${files} media files from the copy ${copy}${replaced}; the stack is up."
}

case "${1:-}" in
    now) backup_now ;;
    list) backup_list ;;
    status) backup_status ;;
    verify) verify ;;
    restore) shift; restore "$@" ;;
    media-now) media_now ;;
    restore-media) shift; restore_media "$@" ;;
    *) die "usage: scripts/backup.sh now | list | status | verify | restore [--to TIME] [--force] | media-now | restore-media [--from NAME] [--force]" ;;
esac
