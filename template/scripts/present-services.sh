#!/usr/bin/env bash
# Sourced, not run, by scripts/backup.sh and scripts/import-data.sh.

# Sets PRESENT to those of the given services that the stack has: a service
# made without Celery beat has no beat service.
present_services() {
    local services service
    services=$(docker compose config --services)
    PRESENT=()
    for service in "$@"; do
        if grep -qx "${service}" <<<"${services}"; then
            PRESENT+=("${service}")
        fi
    done
}
