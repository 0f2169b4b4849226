#!/bin/sh
# Refuses, before anything is built, a development Python of another version
# than the service's: the locks pin packages resolved for that version only,
# and the image runs it.
#
#   scripts/check_python.sh VERSION PYTHON VENV
#
# An existing VENV must have been made with Python VERSION; without one,
# PYTHON (a command or a path) must be that version, since it will make it.
set -eu

wanted=$1
python=$2
venv=$3

version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

if [ -x "$venv/bin/python" ]; then
    found=$(version_of "$venv/bin/python") || found="unknown (its python no longer runs)"
    [ "$found" = "$wanted" ] && exit 0
    echo "$venv was made with Python $found, but this service needs Python $wanted." >&2
    echo "Remove it (rm -rf $venv) and run make again, with PYTHON=/path/to/python$wanted" >&2
    echo "when python$wanted is not on PATH." >&2
    exit 1
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "$python not found: this service needs Python $wanted to make $venv." >&2
    echo "Install it (your system's packages, pyenv or \`uv python install $wanted\`), then run" >&2
    echo "make again with PYTHON=/path/to/python$wanted when it is not on PATH as python$wanted." >&2
    exit 1
fi

found=$(version_of "$python") || found="unknown (it does not run)"
if [ "$found" != "$wanted" ]; then
    echo "PYTHON=$python is Python $found, but this service needs Python $wanted." >&2
    echo "Run make again with PYTHON=/path/to/python$wanted." >&2
    exit 1
fi
