#!/bin/sh
# The official redis image's entrypoint contract: options or a .conf file
# alone mean redis-server; as root, own /data and re-run as redis. The
# official build turns protected mode off (other containers connect without
# a password); Debian's does not, so it is turned off here unless asked for.
set -eu

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

if [ "$1" = redis-server ]; then
    case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
    esac
fi

exec "$@"
