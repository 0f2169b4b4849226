#!/usr/bin/env bash
# Waits until the database has every migration of this code applied, then
# runs its arguments, if any:
#   scripts/wait_for_migrations.sh [COMMAND [ARGUMENT...]]
# On Docker Swarm and Kubernetes the migrate job and the new code's
# containers start together: without this wait, a new web container could
# serve (and a new worker run tasks) on the old schema until the job is
# done. Bounded by MIGRATIONS_WAIT_SECONDS (default 600): a deploy whose
# migrations never come fails, naming those missing.
set -euo pipefail

cd "$(dirname "$0")/.."

limit="${MIGRATIONS_WAIT_SECONDS:-600}"
deadline=$((SECONDS + limit))
answer=$(mktemp)
trap 'rm -f "${answer}"' EXIT
waiting=""
until python src/manage.py migrate --check >"${answer}" 2>&1; do
    if [ "${SECONDS}" -ge "${deadline}" ]; then
        echo "error: the migrations of this code were not applied within ${limit} s (MIGRATIONS_WAIT_SECONDS); is the migrate job running?" >&2
        if [ -s "${answer}" ]; then
            # migrate --check could not tell: the database's error.
            tail -n 5 "${answer}" >&2
        else
            echo "The first of those not applied:" >&2
            python src/manage.py showmigrations --plan 2>&1 | grep -F '[ ]' | head -n 5 >&2 || true
        fi
        exit 1
    fi
    if [ -z "${waiting}" ]; then
        echo "Waiting for the migrations of this code to be applied (the migrate job)..."
        waiting=1
    fi
    sleep 2
done
if [ -n "${waiting}" ]; then
    echo "Every migration is applied."
fi
rm -f "${answer}"
trap - EXIT
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
