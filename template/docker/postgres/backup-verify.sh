#!/usr/bin/env bash
# The verify service's command (scripts/backup.sh verify): proves that the
# newest backup can be restored, in a throw-away container whose data
# directory is its own, empty, anonymous volume.
#   1. pgbackrest verify: the newest backup's files and the WAL it needs
#      match the checksums that the repository recorded for them;
#   2. the restore of that backup, then the replay of the WAL archived
#      since, up to the last archived transaction;
#   3. an exact count of the rows of every table.
# Archiving stays off in the restored server: it must never write into the
# repository it was restored from. After "ready", the server stays up for
# scripts/backup.sh to run `manage.py migrate --check` against it, until the
# container is stopped.
set -euo pipefail

# shellcheck source=repository.sh
. /usr/local/lib/backup-repository.sh

say() {
    printf 'verify: %s\n' "$1"
}

fail() {
    printf 'error: %s\n' "$1" >&2
    exit 1
}

data="${PGBACKREST_PG1_PATH}"
if [ -s "${data}/PG_VERSION" ]; then
    fail "${data} holds a database: verify restores only into a throw-away container's empty volume"
fi

if ! info=$(repository_info 2>&1); then
    fail "${info}"
fi
label=$(jq -r '[.[].backup[]] | max_by(.timestamp.stop) // empty | .label' <<<"${info}")
if [ -z "${label}" ]; then
    fail "the backup repository holds no backup to verify"
fi

say "checking the files of backup ${label} and the WAL it needs against their checksums"
# verify's exit status is 0 whatever it finds: its report says.
checked=$(pgbackrest verify --set="${label}" --output=text --verbose 2>&1) || true
if ! grep -q '^status: ok' <<<"${checked}"; then
    fail "backup ${label} is damaged; pgbackrest verify reports: $(grep -v '^stanza:' <<<"${checked}" | sed 's/^ *//' | paste -sd ';' | sed 's/;/; /g')"
fi

say "restoring backup ${label} and replaying the WAL archived since"
if ! restored=$(pgbackrest restore --set="${label}" --archive-mode=off --log-level-console=error 2>&1); then
    fail "the restore of backup ${label} failed: ${restored}"
fi

pg_ctl --pgdata="${data}" --silent --wait --timeout=3600 --log=/tmp/postgres.log \
    --options="-c listen_addresses=*" start ||
    fail "the restored server did not start: $(tail -n 5 /tmp/postgres.log)"
trap 'pg_ctl --pgdata="${data}" --silent --mode=fast stop; exit 0' TERM INT

sql() {
    psql --quiet --no-align --tuples-only --no-psqlrc --host=/var/run/postgresql \
        --username="${POSTGRES_USER}" --dbname="${POSTGRES_DB}" "$@"
}

until [ "$(sql --command='select pg_is_in_recovery()')" = f ]; do
    sleep 1
done
last=$(sql --command="select coalesce(to_char(pg_last_xact_replay_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'), 'the end of the backup')")
say "recovered up to the last archived transaction, committed at ${last}"

# One exact count per table: a table the restore lost, or emptied, shows.
counts=$(sql --field-separator=' ' <<'SQL'
select format('select %L, count(*) from %I.%I', schemaname || '.' || relname, schemaname, relname)
from pg_stat_user_tables
order by schemaname, relname
\gexec
SQL
)
say "rows per table in ${POSTGRES_DB}:"
sed 's/^/  /' <<<"${counts}"
say "$(awk 'NF { tables += 1; rows += $2 } END { printf "%d tables, %d rows", tables, rows }' <<<"${counts}")"
say ready

sleep infinity &
wait $!
