#!/usr/bin/env bash
# Sourced by restore-check and backup-scheduler, and by scripts/backup.sh's
# commands in backup containers: pgBackRest's view of the backup
# repository, or one line saying why it cannot be read. BACKUP_REPOSITORY
# (set by the entrypoint) names the repository: BACKUP_DIR or the S3 bucket.

: "${BACKUP_REPOSITORY:=BACKUP_DIR}"

# Prints `pgbackrest info --output=json`. pgBackRest reports a repository
# it cannot read (a wrong S3 key, an unknown bucket, an untrusted
# certificate, damaged files) inside that JSON, with exit status 0: then
# this prints one line naming the repository and the problem to stderr
# instead, and fails. Status codes 1 and 2 (no stanza, no backup yet) are
# those of a new stack, not problems.
repository_info() {
    local info problem
    if ! info=$(pgbackrest info --output=json 2>&1); then
        problem="$(tail -n 1 <<<"${info}")"
    else
        problem=$(jq -r '[.[].repo[]?.status | select(.code > 2) | .message][0] // empty' <<<"${info}")
    fi
    if [ -n "${problem}" ]; then
        echo "cannot read the backup repository (${BACKUP_REPOSITORY}): $(describe_problem "${problem}")" >&2
        return 1
    fi
    printf '%s\n' "${info}"
}

# One line from pgBackRest's message, which for an S3 error spans the whole
# request and response: the failure, the provider's error code and message,
# and the setting to check.
describe_problem() {
    local message="$1" first code text
    first="${message%%$'\n'*}"
    first="${first%:}"
    code=$(sed -n 's:.*<Code>\(.*\)</Code>.*:\1:p' <<<"${message}" | head -n 1)
    text=$(sed -n 's:.*<Message>\(.*\)</Message>.*:\1:p' <<<"${message}" | head -n 1)
    case "${code}" in
        AccessDenied | InvalidAccessKeyId | SignatureDoesNotMatch)
            echo "access denied (${code}: ${text}); check BACKUP_S3_KEY, BACKUP_S3_SECRET and what the key may do in the bucket" ;;
        NoSuchBucket) echo "no such bucket (${code}: ${text}); check BACKUP_S3_BUCKET" ;;
        ?*) echo "${first} (${code}: ${text})" ;;
        *)
            case "${first}" in
                *certificate*) echo "${first}; check BACKUP_S3_CA_FILE" ;;
                *) echo "${first}" ;;
            esac
            ;;
    esac
}

# The end of the newest backup, kept where the app's /metrics reads it
# (backup_last_success_timestamp_seconds, which the BackupTooOld alert
# watches): a setting of the app's database, which its role can read with
# no access to the backups. Nothing is recorded while there is no backup.
record_last_backup() {
    local stop
    stop=$(repository_info | jq '[.[].backup[].timestamp.stop] | max // empty') || return 1
    [ -n "${stop}" ] || return 0
    psql --quiet --no-psqlrc --host=/var/run/postgresql --username="${PGBACKREST_PG1_USER}" --dbname=postgres \
        --command="ALTER DATABASE \"${POSTGRES_DB}\" SET servicekit.last_backup = '${stop}'" >/dev/null
}
