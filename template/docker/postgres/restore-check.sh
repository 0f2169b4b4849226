#!/usr/bin/env bash
# Checks a restore before anything is stopped (scripts/backup.sh runs it in
# a backup container): the repository (BACKUP_DIR or the S3 bucket) is
# readable and holds a backup, and the target time, when given, lies
# between the end of the oldest backup and now. Prints "cluster=present" or
# "cluster=absent" (whether the data volume holds a database that the
# restore would replace); otherwise exits non-zero with one line naming the
# problem.
# Usage: restore-check ["2026-12-01 10:15:00+00"]
set -euo pipefail

# shellcheck source=repository.sh
. /usr/local/lib/backup-repository.sh

target="${1:-}"

fail() {
    echo "$1" >&2
    exit 1
}

# repository_info has said why on stderr.
info=$(repository_info) || exit 1
status=$(jq -r '.[0].status.message' <<<"${info}")
if [ "$(jq '[.[].backup[]] | length' <<<"${info}")" = 0 ]; then
    fail "the backup repository (${BACKUP_REPOSITORY}) holds no backup (${status})"
fi

if [ -n "${target}" ]; then
    if ! when=$(date -u -d "${target}" +%s 2>/dev/null); then
        fail "cannot read the target time \"${target}\"; write it like \"2026-12-01 10:15:00+00\""
    fi
    if [ "${when}" -gt "$(date -u +%s)" ]; then
        fail "the target time \"${target}\" is in the future"
    fi
    oldest=$(jq '[.[].backup[].timestamp.stop] | min' <<<"${info}")
    if [ "${when}" -lt "${oldest}" ]; then
        fail "the target time \"${target}\" is before the end of the oldest backup ($(date -u -d "@${oldest}" '+%Y-%m-%d %H:%M:%S+00'))"
    fi
fi

if [ -s "${PGBACKREST_PG1_PATH}/PG_VERSION" ]; then
    echo cluster=present
else
    echo cluster=absent
fi
