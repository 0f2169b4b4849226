#!/usr/bin/env bash
# The official postgres image's entrypoint contract, reduced to what a
# service's compose file relies on: as root, own $PGDATA and re-run as
# postgres; on an empty $PGDATA, initdb with POSTGRES_USER (default postgres)
# and POSTGRES_PASSWORD (required), create POSTGRES_DB (default: the user),
# run /docker-entrypoint-initdb.d's scripts, listen on every address with
# password (scram-sha-256) authentication.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

# `postgres --version` and the like only print: no set-up.
for arg; do
    case "$arg" in -V | --version | '-?' | --help | --describe-config | -C) exec "$@" ;; esac
done

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the official image refuses to start without it too)}"
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
        -D "$PGDATA"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
    # A private start on the socket only, to create the database.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
            --set=db="$db" <<<'CREATE DATABASE :"db";'
    fi
    # Then the image's initialisation scripts, in name order: executable
    # .sh files run, others are sourced; .sql files go to psql.
    export POSTGRES_USER="$user" POSTGRES_DB="$db"
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
        *.sh) if [ -x "$script" ]; then "$script"; else . "$script"; fi ;;
        *.sql) psql -v ON_ERROR_STOP=1 --username="$user" --dbname="$db" -f "$script" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo 'PostgreSQL init process complete; ready for start up.'
fi

exec "$@"
