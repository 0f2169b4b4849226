#!/usr/bin/env bash
# Builds a stand-in for python:<version>-slim-<release> where no container
# registry is reachable: a minimal Debian root filesystem with Debian's
# Python, imported as an image. Needs root, debootstrap and a Debian mirror.
#
#   make-base-image.sh IMAGE_NAME [MIRROR] [RELEASE]
#
# RELEASE is trixie (Debian 13, Python 3.13; the default) or bookworm
# (Debian 12, Python 3.11: the base of the PostgreSQL 15 stand-in).
#
# Like the official image it has `python` on PATH, Python's C headers
# (python3-dev: the official image builds C extensions such as psycopg2
# with them) and runs as root. The
# machine's CA bundle goes in too, and PIP_CERT / SSL_CERT_FILE /
# REQUESTS_CA_BUNDLE name it: where TLS goes through an intercepting proxy,
# its CA is only in that bundle, and apt-get and pip in builds need it.
set -euo pipefail

name=$1
mirror=${2:-http://deb.debian.org/debian}
release=${3:-trixie}
ca_bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/python-base-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,python3-dev,ca-certificates \
    "$release" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    exit 1
}
rm -f "$rootfs.log"

ln -sf python3 "$rootfs/usr/bin/python"
# The machine's bundle replaces the image's: same public CAs, plus the proxy's.
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
echo "deb $mirror $release main" >"$rootfs/etc/apt/sources.list"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

bundle=/etc/ssl/certs/ca-certificates.crt
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PIP_CERT=$bundle SSL_CERT_FILE=$bundle REQUESTS_CA_BUNDLE=$bundle" \
    --change 'CMD ["python3"]' \
    --message "Debian $release with Debian's Python (stand-in for python:slim-$release)" \
    - "$name" >/dev/null
echo "$name"
