#!/usr/bin/env bash
# Checks a restore before anything is stopped (scripts/backup.sh runs it in
# a backup container): the repository is readable and holds a backup, and
# the target time, when given, lies between the end of the oldest backup
# and now. Prints "cluster=present" or "cluster=absent" (whether the data
# volume holds a database that the restore would replace); otherwise exits
# non-zero with one line naming the problem.
# Usage: restore-check ["2026-12-01 10:15:00+00"]
set -euo pipefail

target="${1:-}"

fail() {
    echo "$1" >&2
    exit 1
}

if ! info=$(pgbackrest info --output=json 2>&1); then
    fail "cannot read the backup repository (BACKUP_DIR): ${info}"
fi
status=$(jq -r '.[0].status.message' <<<"${info}")
# 1 and 2: no stanza or no backup yet. Anything else (damaged files, another
# cipher) means the repository cannot be used.
code=$(jq -r '.[0].repo[0].status.code // .[0].status.code' <<<"${info}")
if [ "${code}" != 0 ] && [ "${code}" != 1 ] && [ "${code}" != 2 ]; then
    fail "cannot read the backup repository (BACKUP_DIR): $(jq -r '.[0].repo[0].status.message' <<<"${info}" | head -n 2 | paste -sd ' ')"
fi
if [ "$(jq '[.[].backup[]] | length' <<<"${info}")" = 0 ]; then
    fail "the backup repository (BACKUP_DIR) holds no backup (${status})"
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
