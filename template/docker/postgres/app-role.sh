#!/usr/bin/env bash
# The app's database role: APP_DB_USER, with APP_DB_PASSWORD, owner of
# POSTGRES_DB and of what is in it, and nothing more: not a superuser, so a
# flaw in the app cannot read other databases, run programs on the
# database's host (COPY ... TO PROGRAM) or turn off the checks.
#
# Run by the official entrypoint when it creates the cluster (it is in
# /docker-entrypoint-initdb.d), and by `make db-app-role` on a database made
# before the role existed: then it also hands that database's tables,
# views and sequences over from the superuser. Running it again only sets
# the password.
set -euo pipefail

fail() {
    printf 'error: %s\n' "$1" >&2
    exit 1
}

for name in POSTGRES_USER POSTGRES_DB APP_DB_USER APP_DB_PASSWORD; do
    if [ -z "${!name:-}" ]; then
        fail "${name} is not set (.env)"
    fi
done
if [ "${APP_DB_USER}" = "${POSTGRES_USER}" ]; then
    fail "APP_DB_USER and POSTGRES_USER are both ${APP_DB_USER}: the app's role must not be the superuser; give APP_DB_USER another name (.env)"
fi

psql --quiet --no-psqlrc --set=ON_ERROR_STOP=1 --username="${POSTGRES_USER}" --dbname="${POSTGRES_DB}" \
    --set=role="${APP_DB_USER}" --set=password="${APP_DB_PASSWORD}" --set=db="${POSTGRES_DB}" <<'SQL'
select exists (select from pg_roles where rolname = :'role') as role_exists \gset
\if :role_exists
alter role :"role" with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'password';
\else
create role :"role" with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password :'password';
\endif
alter database :"db" owner to :"role";
alter schema public owner to :"role";
-- Tables, views and sequences of their own (those of a table's column
-- follow the table).
select format('alter table %I.%I owner to %I', namespace.nspname, class.relname, :'role')
from pg_class class
join pg_namespace namespace on namespace.oid = class.relnamespace
left join pg_depend owned on owned.objid = class.oid and owned.deptype in ('a', 'i')
    and owned.classid = 'pg_class'::regclass and owned.refclassid = 'pg_class'::regclass
where namespace.nspname = 'public'
    and class.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
    and owned.objid is null
    and class.relowner <> (select oid from pg_roles where rolname = :'role')
\gexec
SQL
echo "app-role: ${APP_DB_USER} owns ${POSTGRES_DB} and is not a superuser"
