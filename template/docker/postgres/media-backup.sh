#!/usr/bin/env bash
# Copies of the media files (media_backend: local), kept in the backup
# repository next to pgBackRest's backups: BACKUP_DIR/media/<start time,
# UTC>.tar.zst. One host directory then holds everything a lost stack
# needs, and `docker compose down -v`, which deletes the media volume, never
# touches it. The backup service makes a copy after each scheduled full
# backup of the database (backup-scheduler.sh); scripts/backup.sh runs the
# other commands in one-off containers of that service.
#   media-backup copy [--if-mounted]  archives the media volume, then keeps
#                                     the last BACKUP_RETENTION_FULL copies
#   media-backup list                 the copies, oldest first, with times and sizes
#   media-backup check [NAME]         before a restore: the copy to use (the
#                                     latest, or NAME), readable to its end,
#                                     and whether the volume holds files
#   media-backup restore NAME DIR     replaces DIR's contents with the copy
# A copy is written under a hidden temporary name and renamed when complete:
# a half-written copy is never listed, restored or counted for retention.
set -uo pipefail

# Where docker-compose.prod.yml mounts the media volume, read-only, in the
# backup service.
media=/srv/media
copies=/var/lib/pgbackrest/media
# Only files named like this are copies: nothing else an operator keeps in
# the directory is listed or expired.
copy_name='^[0-9]{8}T[0-9]{6}Z\.tar\.zst$'
# Uploaded files are the users' own: copies are readable by their owner only,
# like pgBackRest's files.
umask 077

log() {
    printf '%s %s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2"
}

# For the checks that scripts/backup.sh reads: one line on stderr.
fail() {
    echo "$1" >&2
    exit 1
}

# 8.2 MiB, 491 KiB, 512 B
size_of() {
    local size
    size=$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$1")")
    echo "${size%%[A-Za-z]*} ${size##*[0-9]}"
}

# The copies' names, oldest first (the names sort by time).
names() {
    find "${copies}" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null | grep -E "${copy_name}" | sort
}

copy() {
    if [ ! -d "${media}" ]; then
        # The scheduler calls this after every full backup; a stack whose
        # media files are in S3 has no volume here and nothing to copy.
        if [ "${1:-}" = --if-mounted ]; then
            return 0
        fi
        log ERROR "no media volume at ${media}: this stack's media files are not in a volume"
        return 1
    fi
    # The same retention as the database's full backups: a restore of the
    # database to its oldest backup finds media files of the same age.
    local keep="${PGBACKREST_REPO1_RETENTION_FULL:-7}"
    if ! [[ "${keep}" =~ ^[1-9][0-9]*$ ]]; then
        log ERROR "BACKUP_RETENTION_FULL=${keep} is not a positive whole number; media copy not made"
        return 1
    fi
    if ! mkdir -p "${copies}"; then
        log ERROR "media copy failed: cannot create ${copies} in the backup repository"
        return 1
    fi
    # Left by a copy whose container was killed; a day old, it is not in progress.
    find "${copies}" -maxdepth 1 -name '.*.partial' -mmin +1440 -delete

    local name partial started=${SECONDS}
    name="$(date -u +%Y%m%dT%H%M%SZ).tar.zst"
    partial=$(mktemp --suffix=.partial "${copies}/.${name%.tar.zst}.XXXXXX") || {
        log ERROR "media copy failed: cannot write to ${copies}"
        return 1
    }
    log INFO "media copy started"
    # Numeric owners: the image has no user named like the app's, and a
    # restore must give the files back to the app's user id.
    tar --create --numeric-owner --directory="${media}" . | zstd --quiet --stdout >"${partial}"
    local status=("${PIPESTATUS[@]}")
    # tar's status 1: a file changed while it was read (an upload in
    # progress). The copy holds it as read and everything else whole.
    if [ "${status[0]}" -gt 1 ] || [ "${status[1]}" -ne 0 ] || ! sync "${partial}"; then
        rm -f "${partial}"
        log ERROR "media copy failed (tar exit status ${status[0]}, zstd ${status[1]}); no copy was made"
        return 1
    fi
    if [ "${status[0]}" = 1 ]; then
        log INFO "media files changed while they were copied; the copy holds them as they were read"
    fi
    if ! mv "${partial}" "${copies}/${name}"; then
        rm -f "${partial}"
        log ERROR "media copy failed: cannot rename ${partial}"
        return 1
    fi
    log INFO "media copy done: media/${name}, $(size_of "${copies}/${name}") in $((SECONDS - started)) s"

    # Every copy but the last ${keep}, oldest first.
    while read -r name; do
        rm -f "${copies}/${name}"
        log INFO "media copy media/${name} expired (BACKUP_RETENTION_FULL=${keep})"
    done < <(names | head -n -"${keep}")
}

list() {
    local name found=""
    while read -r name; do
        found=1
        printf '%s  media  finished %s  in the repository %s\n' \
            "${name%.tar.zst}" "$(date -u -d "@$(stat -c %Y "${copies}/${name}")" +%Y-%m-%dT%H:%M:%SZ)" \
            "$(size_of "${copies}/${name}")"
    done < <(names)
    if [ -z "${found}" ]; then
        echo "  none yet"
    fi
}

# Prints copy=NAME, files=N and media=present|absent (whether the volume
# holds files the restore would replace), or fails with one line.
check() {
    local wanted="${1:-}" name
    if [ -n "${wanted}" ]; then
        name="${wanted%.tar.zst}.tar.zst"
        if ! grep -qE "${copy_name}" <<<"${name}" || [ ! -f "${copies}/${name}" ]; then
            fail "the backup repository (BACKUP_DIR) holds no media copy named \"${wanted}\" (make backup-list lists them)"
        fi
    else
        name=$(names | tail -n 1)
        if [ -z "${name}" ]; then
            fail "the backup repository (BACKUP_DIR) holds no media copy (make backup-media makes one)"
        fi
    fi
    # Read to its end now, so that a damaged copy stops the restore before
    # anything is stopped or deleted.
    local members
    if ! members=$(zstd --quiet --decompress --stdout "${copies}/${name}" | tar --list 2>&1); then
        fail "the media copy ${name%.tar.zst} cannot be read: $(tail -n 1 <<<"${members}")"
    fi
    echo "copy=${name%.tar.zst}"
    echo "files=$(grep -cv '/$' <<<"${members}")"
    if [ -n "$(find "${media}" -mindepth 1 -print -quit)" ]; then
        echo media=present
    else
        echo media=absent
    fi
}

# Run as root (scripts/backup.sh does), so that the files get back their
# owners and modes, the volume's top directory included.
restore() {
    local name="${1:?restore needs a copy name}" target="${2:?restore needs a directory}"
    if [ "$(id -u)" != 0 ]; then
        fail "the media restore runs as root, to give the files back their owners"
    fi
    find "${target}" -mindepth 1 -delete || fail "cannot empty ${target}"
    zstd --quiet --decompress --stdout "${copies}/${name}.tar.zst" \
        | tar --extract --numeric-owner --same-owner --same-permissions --directory="${target}" \
        || fail "extracting the media copy ${name} failed"
    log INFO "media files restored from media/${name}.tar.zst"
}

case "${1:-}" in
    copy) shift; copy "$@" ;;
    list) list ;;
    check) shift; check "$@" ;;
    restore) shift; restore "$@" ;;
    *) fail "usage: media-backup copy [--if-mounted] | list | check [NAME] | restore NAME DIR" ;;
esac
