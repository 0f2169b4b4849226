#!/usr/bin/env bash
# Container healthcheck: exits 0 when GET <path> on the local web server
# answers 200. Plain bash (/dev/tcp), so a probe costs milliseconds: no
# Python start-up, and no curl needed in the image.
# Usage: scripts/http_probe.sh /health/ [port]
set -euo pipefail

path="${1:-/health/}"
port="${2:-8000}"

exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "${path}" >&3
read -r -t 5 _ status _ <&3
[[ "${status}" == "200" ]]
