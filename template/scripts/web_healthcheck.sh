#!/usr/bin/env bash
# web's healthcheck, and its watchdog. Docker Compose restarts a container
# that exits, never one that is merely unhealthy: a stuck gunicorn would go
# on receiving traffic. So once /health/ has answered since the container
# started, WEB_WATCHDOG_FAILURES failed checks in a row (default 3; 0 turns
# the watchdog off) kill gunicorn's master: the container exits and its
# restart policy starts a new one. Where an orchestrator restarts unhealthy
# containers itself (gunicorn is then PID 1, with no init), this is only
# the check.
set -uo pipefail

state=/tmp/web-healthcheck.failures
allowed="${WEB_WATCHDOG_FAILURES:-3}"

# Shorter than the healthcheck's own timeout (5 s), so that a hung server
# is counted here instead of the check being killed.
if timeout 3 "$(dirname "$0")/http_probe.sh" /health/; then
    echo 0 >"${state}"
    exit 0
fi
# Not answered yet since the container started: still starting.
[ -f "${state}" ] || exit 1

failures=$(($(cat "${state}") + 1))
echo "${failures}" >"${state}"
if [ "${allowed}" -gt 0 ] && [ "${failures}" -ge "${allowed}" ]; then
    init=$(cat /proc/1/comm)
    if [ "${init}" = docker-init ] || [ "${init}" = tini ]; then
        read -r master _ </proc/1/task/1/children
        echo "watchdog: /health/ failed ${failures} checks in a row: killing gunicorn (pid ${master}) so that the container restarts" >/proc/1/fd/2
        kill -KILL "${master}"
    fi
fi
exit 1
