#!/bin/sh
# Run tox from a private venv, so a bare CI runner (or a laptop) needs only a python3.
#
#   sh ci/tox.sh -e lint,type        PYTHON=/path/to/python3 picks the interpreter
#
# The venv lives under .tox/ (already ignored by git) and is reused while it works.
set -eu

cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
tools=.tox/ci-bootstrap

if ! "$tools/bin/tox" --version >/dev/null 2>&1; then
    rm -rf "$tools"
    "$python" -m venv "$tools" >/dev/null \
        || { echo "ci/tox.sh: '$python -m venv' failed (is the venv module installed?)" >&2; exit 1; }
    "$tools/bin/python" -m pip --disable-pip-version-check -q install "tox>=4" \
        || { echo "ci/tox.sh: installing tox into $tools failed" >&2; exit 1; }
fi
exec "$tools/bin/tox" "$@"
