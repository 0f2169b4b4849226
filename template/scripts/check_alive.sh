#!/usr/bin/env bash
# Container healthcheck for Celery: exits 0 when <file> was touched less
# than <max-age> seconds ago. The worker touches its file while connected
# to the broker, beat on every scheduler tick (see src/*/celery.py): a
# `stat` instead of a Python start-up and a broker round trip per probe.
# Usage: scripts/check_alive.sh /tmp/celery-worker.alive 60
set -euo pipefail

file="$1"
max_age="${2:-60}"

modified="$(stat -c %Y "${file}")"
(( $(date +%s) - modified < max_age ))
