#!/usr/bin/env bash
# Entrypoint of the db and backup containers. First it chooses the backup
# repository: BACKUP_DIR, bind-mounted at /var/lib/pgbackrest (the default
# of pgbackrest.conf), or an S3-compatible bucket when BACKUP_S3_BUCKET is
# set. Docker creates a missing bind-mounted BACKUP_DIR as root, and a
# repository copied from another host keeps its owner: as root, hand the
# directory to postgres. Then `postgres` goes through the official
# entrypoint (initdb on an empty volume), and any other command (the
# scheduler, pgbackrest) runs as postgres, the owner of the data and of the
# backups.
set -euo pipefail

repository=/var/lib/pgbackrest

fail() {
    echo "$1" >&2
    exit 1
}

# pgBackRest reads an option from PGBACKREST_<OPTION> before its
# configuration file. Set here, the bucket's options reach every pgBackRest
# command of both containers: archive-push, which the server runs for each
# WAL segment, inherits them too. BACKUP_REPOSITORY names the repository in
# messages to the operator.
use_s3_bucket() {
    local region="${BACKUP_S3_REGION:-}" endpoint="${BACKUP_S3_ENDPOINT:-}" path="${BACKUP_S3_PATH:-/}"
    local name
    for name in BACKUP_S3_REGION BACKUP_S3_KEY BACKUP_S3_SECRET; do
        if [ -z "${!name:-}" ]; then
            fail "${name} is required when BACKUP_S3_BUCKET is set (.env)"
        fi
    done
    # AWS's endpoint follows from the region; other providers name theirs.
    endpoint="${endpoint:-s3.${region}.amazonaws.com}"
    case "${endpoint}" in
        http://*) fail "BACKUP_S3_ENDPOINT=${endpoint}: pgBackRest reaches S3 over HTTPS only; give an https:// endpoint" ;;
    esac
    endpoint="${endpoint#https://}"
    endpoint="${endpoint%%/*}"
    if [[ ! "${endpoint}" =~ ^([^:]+)(:([0-9]+))?$ ]]; then
        fail "BACKUP_S3_ENDPOINT=${BACKUP_S3_ENDPOINT}: expected HOST, HOST:PORT or https://HOST[:PORT]"
    fi
    export PGBACKREST_REPO1_TYPE=s3
    export PGBACKREST_REPO1_S3_BUCKET="${BACKUP_S3_BUCKET}"
    export PGBACKREST_REPO1_S3_ENDPOINT="${BASH_REMATCH[1]}"
    if [ -n "${BASH_REMATCH[3]}" ]; then
        export PGBACKREST_REPO1_STORAGE_PORT="${BASH_REMATCH[3]}"
    fi
    export PGBACKREST_REPO1_S3_REGION="${region}"
    export PGBACKREST_REPO1_S3_KEY="${BACKUP_S3_KEY}"
    export PGBACKREST_REPO1_S3_KEY_SECRET="${BACKUP_S3_SECRET}"
    # Keys in a bucket have no leading slash, but pgBackRest's path must be absolute.
    export PGBACKREST_REPO1_PATH="/${path#/}"

    case "${BACKUP_S3_URI_STYLE:-host}" in
        host | path) export PGBACKREST_REPO1_S3_URI_STYLE="${BACKUP_S3_URI_STYLE:-host}" ;;
        *) fail "BACKUP_S3_URI_STYLE=${BACKUP_S3_URI_STYLE}: expected host (bucket.endpoint) or path (endpoint/bucket)" ;;
    esac
    case "${BACKUP_S3_VERIFY_TLS:-yes}" in
        yes | true | y | 1) export PGBACKREST_REPO1_STORAGE_VERIFY_TLS=y ;;
        no | false | n | 0) export PGBACKREST_REPO1_STORAGE_VERIFY_TLS=n ;;
        *) fail "BACKUP_S3_VERIFY_TLS=${BACKUP_S3_VERIFY_TLS}: expected yes or no" ;;
    esac
    # docker-compose.prod.yml mounts the CA file here when it is set.
    if [ -n "${BACKUP_S3_CA_FILE:-}" ]; then
        export PGBACKREST_REPO1_STORAGE_CA_FILE="${BACKUP_S3_CA_FILE}"
    fi
    export BACKUP_REPOSITORY="S3 bucket ${BACKUP_S3_BUCKET} at ${endpoint}, path ${PGBACKREST_REPO1_PATH}"
}

# Secrets as files (Docker Swarm and Kubernetes mount them so): NAME_FILE
# names the file that holds NAME. Read here, for every command of the image
# (the official entrypoint knows only POSTGRES_PASSWORD_FILE, and not in
# every process it starts).
for name in POSTGRES_PASSWORD APP_DB_PASSWORD BACKUP_S3_KEY BACKUP_S3_SECRET SENTRY_DSN; do
    file="${name}_FILE"
    if [ -n "${!file:-}" ]; then
        if [ -n "${!name:-}" ]; then
            fail "set ${name} or ${file}, not both"
        fi
        [ -r "${!file}" ] || fail "${file} names ${!file}, which cannot be read"
        export "${name}=$(cat "${!file}")"
        unset "${file}"
    fi
done

if [ -n "${BACKUP_S3_BUCKET:-}" ]; then
    use_s3_bucket
else
    export BACKUP_REPOSITORY=BACKUP_DIR
fi

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
