#!/usr/bin/env bash
# Takes an existing deployment's data into this production stack, then
# proves that nothing was lost. For a service that adopted the template: its
# new stack starts on an empty database and media volume while the data sits
# in the old ones.
#
#   scripts/import-data.sh [--database URL [--source-network NETWORK] | --dump FILE]
#                          [--media DIR | --media-volume VOLUME] [--force]
#   make import-data DATABASE=URL [NETWORK=...] | DUMP=FILE  MEDIA=DIR | MEDIA_VOLUME=VOLUME  [FORCE=1]
#
#   --database URL          the old server: postgres://USER:PASSWORD@HOST:5432/NAME. It is
#                           dumped by this stack's PostgreSQL client (which dumps older
#                           servers) in a one-off container of the db image. That container
#                           uses this host's network: HOST is read as it is here
#                           (localhost is this host). Stop the old service's writers first.
#   --source-network NAME   the Docker network the container joins instead, e.g. the old
#                           compose stack's (`docker network ls`), where HOST is the name
#                           of its database service
#   --dump FILE             a dump made with `pg_dump --format=custom` (-Fc)
#   --media DIR             the old media directory on this host
#   --media-volume VOLUME   the old stack's media volume (`docker volume ls`)
#   --force                 replace a database that holds data, and copy over files in
#                           a media volume that holds some
#
# First everything is checked (the source can be read, the target is
# empty), and nothing is stopped when something is wrong. Then web, worker
# and beat are stopped; the database is recreated and loaded with pg_restore
# (owned by this stack's APP_DB_USER, whatever the old owner was); the
# media files are copied into the media volume. The row count of every
# table on the source and on the target, and the sha256 of every media file
# before and after, are compared: on a difference the script stops there,
# with web, worker and beat still stopped. Otherwise the stack starts
# (migrate applies the migrations the new code adds) and
# `manage.py migrate --check` confirms that none is missing.
#
# The dump is kept in a temporary directory until the end: set TMPDIR for
# a large database. The stack is docker-compose.prod.yml's; COMPOSE_FILE
# and COMPOSE_PROJECT_NAME select another, as they do for docker compose.
set -euo pipefail

# Services that write to the database or the media files, stopped during the import.
WRITERS=(web worker beat)
# Tables that `migrate` fills on an empty database: rows there alone do not
# make the target a database worth keeping.
MIGRATE_FILLS="public.django_migrations public.auth_permission public.django_content_type public.django_site"
# The media volume, as the app services mount it.
MEDIA_PATH=/app/media
# One line per table: its qualified name and its exact row count.
COUNT_ROWS="
select format('select %L, count(*) from %I.%I',
              quote_ident(n.nspname) || '.' || quote_ident(c.relname), n.nspname, c.relname)
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
order by 1
\\gexec"
# One line per file of the directory "$1": its sha256 and its path.
CHECKSUMS='cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum'

database="" network=host dump="" media_dir="" media_volume="" force=""

die() {
    echo "error: $1" >&2
    exit 1
}

refuse() {
    die "$1 (nothing was stopped or changed)"
}

usage() {
    die "usage: scripts/import-data.sh [--database URL [--source-network NETWORK] | --dump FILE] [--media DIR | --media-volume VOLUME] [--force]"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --database) database="${2:?--database needs a URL}"; shift 2 ;;
        --source-network) network="${2:?--source-network needs a network}"; shift 2 ;;
        --dump) dump="${2:?--dump needs a file}"; shift 2 ;;
        --media) media_dir="${2:?--media needs a directory}"; shift 2 ;;
        --media-volume) media_volume="${2:?--media-volume needs a volume}"; shift 2 ;;
        --force) force=1; shift ;;
        *) usage ;;
    esac
done
if [ -z "${database}${dump}${media_dir}${media_volume}" ] \
    || { [ -n "${database}" ] && [ -n "${dump}" ]; } \
    || { [ -n "${media_dir}" ] && [ -n "${media_volume}" ]; }; then
    usage
fi
# Paths are the caller's, whatever the directory this script runs in.
dump=${dump:+$(realpath -m "${dump}")}
media_dir=${media_dir:+$(realpath -m "${media_dir}")}

cd "$(dirname "$0")/.."
export COMPOSE_FILE="${COMPOSE_FILE:-docker-compose.prod.yml}"
# shellcheck source=present-services.sh
. scripts/present-services.sh

step() {
    echo
    echo "== $1"
}

# The URL with its password hidden, for messages.
shown_url() {
    sed -E 's#^([a-z]+://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"
}

# The first line of an error output, without the program's prefix.
first_error() {
    grep -v '^\s*$' "$1" | head -n 1 | sed -E 's/^(psql|pg_dump|pg_restore|docker|tar): (error: )?//'
}

mib() {
    awk -v bytes="$1" 'BEGIN { printf "%.1f MiB", bytes / 1048576 }'
}

# --- This stack ---------------------------------------------------------------

if [ -z "$(docker compose ps --quiet db 2>/dev/null)" ] || ! docker compose exec -T db pg_isready --quiet 2>/dev/null; then
    refuse "the stack's db is not running: start the stack first (docker compose -f ${COMPOSE_FILE} up --detach --wait)"
fi
# The db image: this stack's PostgreSQL client, for the one-off containers.
db_image=$(docker compose images --quiet db | head -n 1)
target_user=$(docker compose exec -T db printenv POSTGRES_USER)
app_user=$(docker compose exec -T db printenv APP_DB_USER)
target_db=$(docker compose exec -T db printenv POSTGRES_DB)
work=$(mktemp -d "${TMPDIR:-/tmp}/import-data.XXXXXX")
trap 'rm -rf "${work}"' EXIT

target_psql() {
    docker compose exec -T db psql --quiet --no-psqlrc --tuples-only --no-align --field-separator=$'\t' \
        --set=ON_ERROR_STOP=1 --username="${target_user}" "$@"
}

# A one-off container of the db image connected to the source server. The
# URL goes in through the environment, never on a command line.
source_client() {
    docker run --rm --interactive --network="${network}" --env=SOURCE_URL --env=PGCONNECT_TIMEOUT=10 \
        --entrypoint=sh "${db_image}" -c 'exec "$@" --dbname="${SOURCE_URL}"' sh "$@"
}

source_psql() {
    source_client psql --quiet --no-psqlrc --tuples-only --no-align --field-separator=$'\t' --set=ON_ERROR_STOP=1 "$@"
}

# A one-off container of the db image with the dump file at /import/source.dump.
with_dump() {
    docker run --rm --volume="${dump}:/import/source.dump:ro" --entrypoint="$1" "${db_image}" "${@:2}"
}

# A one-off container of the app image (as the app's user) with the media volume.
in_app() {
    docker compose run --rm --no-deps -T --entrypoint="$1" migrate "${@:2}"
}

# A one-off container of the db image (as root) with the old media at /media.
with_media_source() {
    docker run --rm --volume="${media_source}:/media:ro" --entrypoint="$1" "${db_image}" "${@:2}"
}

# --- Checks: nothing is stopped or changed before they pass ----------------------

step "Checking the source and the target"
echo "Target: database ${target_db} (user ${target_user}) of the stack's db" \
    "($(target_psql --dbname="${target_db}" --command='show server_version'))"

if [ -n "${database}" ]; then
    export SOURCE_URL="${database}"
    if ! version=$(source_psql --command='show server_version' 2>"${work}/errors"); then
        refuse "cannot read the source database $(shown_url "${database}") from a container on the Docker network ${network}: $(first_error "${work}/errors")"
    fi
    echo "Source: $(shown_url "${database}") (PostgreSQL ${version}, through the Docker network ${network})"
elif [ -n "${dump}" ]; then
    if [ ! -f "${dump}" ] || [ ! -r "${dump}" ]; then
        refuse "the dump file ${dump} does not exist or cannot be read"
    fi
    if ! with_dump pg_restore --list /import/source.dump >/dev/null 2>"${work}/errors"; then
        refuse "${dump} is not a dump that pg_restore can read (make it with pg_dump --format=custom): $(first_error "${work}/errors")"
    fi
    echo "Source: the dump ${dump} ($(mib "$(stat -c %s "${dump}")"))"
fi

if [ -n "${database}${dump}" ] && [ -z "${force}" ]; then
    target_psql --dbname="${target_db}" <<<"${COUNT_ROWS}" >"${work}/target-before"
    holding=$(awk -v skip=" ${MIGRATE_FILLS} " '
        $2 > 0 && index(skip, " " $1 " ") == 0 { tables++; if (tables <= 3) listed = listed ", " $1 " " $2 }
        END { if (tables) printf "rows in %d tables: %s%s", tables, substr(listed, 3), (tables > 3 ? ", ..." : "") }' \
        "${work}/target-before")
    if [ -n "${holding}" ]; then
        refuse "the stack's database ${target_db} holds data (${holding}), which the import would replace: run again with --force (make import-data ... FORCE=1)"
    fi
fi

if [ -n "${media_dir}${media_volume}" ]; then
    if ! grep -qx media <<<"$(docker compose config --volumes)"; then
        refuse "this stack keeps its media files in S3, not in a volume: copy them to the bucket with your S3 tools (aws s3 sync, rclone)"
    fi
    if [ -n "${media_dir}" ]; then
        if [ ! -d "${media_dir}" ]; then
            refuse "the media directory ${media_dir} does not exist"
        fi
        media_source=${media_dir}
    else
        if ! docker volume inspect "${media_volume}" >/dev/null 2>&1; then
            refuse "there is no Docker volume ${media_volume} (docker volume ls lists them)"
        fi
        media_source=${media_volume}
    fi
    present=$(in_app find "${MEDIA_PATH}" -type f | wc -l)
    if [ "${present}" -gt 0 ] && [ -z "${force}" ]; then
        refuse "the stack's media volume holds ${present} files, which the import would mix with the old ones: run again with --force (make import-data ... FORCE=1)"
    fi
    echo "Media: from ${media_source} into the media volume (${present} files there now)"
fi

# --- The database ---------------------------------------------------------------

if [ -n "${database}" ]; then
    step "Counting the rows of every table on the source"
    source_psql <<<"${COUNT_ROWS}" >"${work}/source-rows"
    echo "$(wc -l <"${work}/source-rows") tables, $(awk '{ rows += $2 } END { print rows + 0 }' "${work}/source-rows") rows"

    step "Dumping the source with pg_dump $(docker run --rm --entrypoint=pg_dump "${db_image}" --version | awk '{ print $3 }')"
    started=${SECONDS}
    dump="${work}/source.dump"
    if ! source_client pg_dump --format=custom >"${dump}" 2>"${work}/errors"; then
        die "pg_dump failed: $(first_error "${work}/errors") (nothing was stopped or changed)"
    fi
    echo "$(mib "$(stat -c %s "${dump}")") in $((SECONDS - started)) s"
elif [ -n "${dump}" ]; then
    step "Counting the rows of every table in the dump"
    # In COPY's text format every row is one line.
    with_dump pg_restore --data-only --file=- /import/source.dump | awk '
        /^COPY / { table = $2; rows = 0; copying = 1; next }
        copying && /^\\\.$/ { print table "\t" rows; copying = 0; next }
        copying { rows++ }' | LC_ALL=C sort >"${work}/source-rows"
    echo "$(wc -l <"${work}/source-rows") tables, $(awk '{ rows += $2 } END { print rows + 0 }' "${work}/source-rows") rows"
fi

# The proxy first: clients are refused while the data is replaced, and a
# proxy left running would turn unhealthy (its healthcheck goes through
# web), which fails the stack's start afterwards.
present_services proxy "${WRITERS[@]}"
stop=("${PRESENT[@]}")
step "Stopping ${stop[*]}"
docker compose stop "${stop[@]}"

if [ -n "${dump}" ]; then
    step "Loading the dump into ${target_db} as ${app_user}"
    started=${SECONDS}
    target_psql --dbname=template1 --set=db="${target_db}" <<<'
        drop database if exists :"db" with (force);
        create database :"db" template template0;'
    # Handed to the app's role, as a new stack's database is.
    docker compose exec -T db app-role >/dev/null
    # Owned by the app's role; the old server's roles, grants, tablespaces
    # and subscriptions stay behind.
    if ! docker compose run --rm --no-deps -T --volume="${dump}:/import/source.dump:ro" --entrypoint=pg_restore backup \
        --username="${target_user}" --dbname="${target_db}" --no-owner --role="${app_user}" \
        --no-privileges --no-tablespaces --no-subscriptions --exit-on-error /import/source.dump 2>"${work}/errors"; then
        die "pg_restore failed: $(first_error "${work}/errors"); ${stop[*]} are left stopped: fix the cause and run again with --force"
    fi
    target_psql --dbname="${target_db}" --command='analyze' >/dev/null
    echo "Loaded in $((SECONDS - started)) s"

    step "Row counts of every table, source and target"
    target_psql --dbname="${target_db}" <<<"${COUNT_ROWS}" >"${work}/target-rows"
    if ! LC_ALL=C join -t $'\t' -a 1 -a 2 -e missing -o 0,1.2,2.2 \
        <(LC_ALL=C sort "${work}/source-rows") <(LC_ALL=C sort "${work}/target-rows") | awk -F '\t' '
        BEGIN { printf "  %-50s %12s %12s\n", "table", "source", "target" }
        { same = $2 == $3; differ += !same; rows += $2
          printf "  %-50s %12s %12s  %s\n", $1, $2, $3, same ? "ok" : "DIFFERENT" }
        END { if (differ) { printf "%d of %d tables differ\n", differ, NR; exit 1 }
              printf "%d tables, %d rows: every count is the same\n", NR, rows }'; then
        die "the row counts differ (above); ${stop[*]} are left stopped: if the old service still writes, stop it, then run again with --force"
    fi
fi

# --- Media files ------------------------------------------------------------------

if [ -n "${media_dir}${media_volume}" ]; then
    step "Checksums of the media files in ${media_source}"
    with_media_source sh -c "${CHECKSUMS}" sh /media >"${work}/media-before"
    bytes=$(with_media_source find /media -type f -printf '%s\n' | awk '{ bytes += $1 } END { print bytes + 0 }')
    echo "$(wc -l <"${work}/media-before") files, $(mib "${bytes}")"

    step "Copying the media files into the media volume"
    started=${SECONDS}
    if ! with_media_source tar --create --file=- --directory=/media . 2>"${work}/errors" \
        | in_app tar --extract --file=- --directory="${MEDIA_PATH}" --no-same-owner 2>>"${work}/errors"; then
        die "copying the media files failed: $(first_error "${work}/errors"); ${stop[*]} are left stopped"
    fi
    echo "Copied in $((SECONDS - started)) s"

    step "sha256 of every media file, before (source) and after (media volume)"
    in_app sh -c "${CHECKSUMS}" sh "${MEDIA_PATH}" >"${work}/media-after"
    if ! awk '
        FILENAME == ARGV[1] { after[substr($0, 67)] = $1; next }
        { path = substr($0, 67); found = path in after; files++
          same = found && after[path] == $1; differ += !same
          printf "  %-9s %s  %s\n", same ? "ok" : found ? "DIFFERENT" : "MISSING", $1, path }
        END { if (differ) { printf "%d of %d files differ or are missing\n", differ, files; exit 1 }
              printf "%d files: every checksum is the same\n", files }' "${work}/media-after" "${work}/media-before"; then
        die "the media files differ (above); ${stop[*]} are left stopped"
    fi
    extra=$(($(wc -l <"${work}/media-after") - $(wc -l <"${work}/media-before")))
    if [ "${extra}" -gt 0 ]; then
        echo "The media volume also holds ${extra} files that the source does not have (left as they were)."
    fi
fi

# --- The stack again ----------------------------------------------------------------

step "Starting the stack (migrate applies the migrations that this code adds)"
docker compose up --detach --wait

step "manage.py migrate --check"
if ! docker compose exec -T web python src/manage.py migrate --check; then
    die "the database lacks migrations that this code has (manage.py showmigrations lists them)"
fi
echo "Every migration is applied."
echo
if [ -n "${dump}" ]; then
    echo "Imported: nothing was lost. Take a full backup of the imported database now: make backup"
else
    echo "Imported: nothing was lost."
fi
