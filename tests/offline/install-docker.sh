#!/usr/bin/env bash
# Installs and starts a Docker engine for the container tests, on a Debian 12
# machine where none runs (as root). Idempotent: does nothing when `docker info`
# already works.
#
# Debian 12's own docker.io is 20.10 and its docker-compose is v1, too old for
# the rendered compose file (healthcheck start_interval needs Engine >= 25,
# `up --wait` needs Compose v2). Debian 13's docker.io (26.x), docker-compose
# (2.x) and docker-buildx run on Debian 12, so:
#   1. apt-get install Debian 12's docker.io: containerd, runc, docker-proxy,
#      docker-init, iptables and the docker group;
#   2. download Debian 13's docker.io, docker-compose and docker-buildx .debs
#      with apt using a private trixie source list (the machine's own sources
#      are left alone) and unpack them with dpkg -x into $PREFIX;
#   3. start Debian 13's dockerd in the background (log in $PREFIX/dockerd.log)
#      and put the Compose and Buildx plugins in ~/.docker/cli-plugins/.
# It also installs debootstrap, with which the tests make their own base
# image when no container registry is reachable.
set -euo pipefail

PREFIX=${DOCKER_PREFIX:-/opt/docker-trixie}
PLUGINS=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

log() { printf 'install-docker: %s\n' "$*" >&2; }

engine_ok() { docker info >/dev/null 2>&1; }

export DEBIAN_FRONTEND=noninteractive

# debootstrap makes the tests' stand-in base image where no registry is
# reachable (make-base-image.sh, beside this script).
if ! command -v debootstrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

if engine_ok; then
    log "engine already running: $(docker version --format '{{.Server.Version}}')"
    exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "no engine running, and installing one needs root on Debian"
    exit 1
fi

# 1. Debian 12's engine pieces (containerd, runc, proxy, init, iptables).
if ! command -v containerd >/dev/null || ! command -v runc >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
    # Debian's package may have started its 20.10 daemon: stop it, ours replaces it.
    if [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null; then
        if command -v systemctl >/dev/null && systemctl is-active -q docker 2>/dev/null; then
            systemctl stop docker docker.socket || true
        else
            kill "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null || true
            sleep 2
        fi
    fi
fi

# 2. Debian 13's docker.io, docker-compose and docker-buildx, unpacked.
if [ ! -x "$PREFIX/root/usr/sbin/dockerd" ] || [ ! -x "$PREFIX/root/usr/libexec/docker/cli-plugins/docker-compose" ]; then
    # The mirror the machine already uses (deb822 "URIs:" or one-line "deb URL").
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE '^(URIs: *|deb +)https?://[^ ]+/debian/?( |$)' |
        grep -oE 'https?://[^ ]+' | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    apt_dir=$PREFIX/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$PREFIX/root"
    echo "deb $mirror trixie main" >"$apt_dir/sources.list"
    apt_opts=(
        -o "Dir::Etc::SourceList=$apt_dir/sources.list"
        -o "Dir::Etc::SourceParts=-"
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::Cache::Archives=$apt_dir/archives"
        -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
        -o "APT::Sandbox::User=root"
    )
    log "downloading Debian 13's docker.io, docker-compose, docker-buildx from $mirror"
    apt-get "${apt_opts[@]}" update -qq
    (cd "$apt_dir/archives" && apt-get "${apt_opts[@]}" download docker.io docker-compose docker-buildx)
    for deb in "$apt_dir"/archives/*.deb; do
        dpkg -x "$deb" "$PREFIX/root"
    done
    rm -rf "$apt_dir/lists" "$apt_dir"/archives/*.deb
fi

mkdir -p "$PLUGINS"
for plugin in docker-compose docker-buildx; do
    src=$(find "$PREFIX/root/usr/libexec/docker/cli-plugins" -name "$plugin" 2>/dev/null | head -n1)
    [ -n "$src" ] && ln -sf "$src" "$PLUGINS/$plugin"
done

# 3. Start Debian 13's dockerd (it works with Debian 12's containerd and runc).
if ! pgrep -f "^$PREFIX/root/usr/sbin/dockerd" >/dev/null; then
    log "starting $PREFIX/root/usr/sbin/dockerd (log: $PREFIX/dockerd.log)"
    # Its own docker-proxy and docker-init come from the same package when present.
    PATH="$PREFIX/root/usr/sbin:$PREFIX/root/usr/bin:$PREFIX/root/usr/libexec/docker:$PATH" \
        setsid nohup "$PREFIX/root/usr/sbin/dockerd" >>"$PREFIX/dockerd.log" 2>&1 </dev/null &
fi
for _ in $(seq 60); do
    engine_ok && break
    sleep 1
done
if ! engine_ok; then
    log "dockerd did not come up; last lines of its log:"
    tail -n 30 "$PREFIX/dockerd.log" >&2
    exit 1
fi
log "engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
