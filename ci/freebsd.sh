#!/bin/sh
# The FreeBSD job, run as root inside a FreeBSD VM (GitHub's vmactions/freebsd-vm, or a
# Vagrant box): install Python and tox from packages, then run `tox -e bsd`.
#
#   sh ci/freebsd.sh [--status-file FILE] [TOX ARGS...]
#
# --status-file FILE: write the suite's exit status to FILE and exit 0. The CI job needs it:
# vmactions/freebsd-vm copies the work tree (and .ci-artifacts/) back to the runner only
# after a `run` that succeeded, so the job records the status in the VM and fails in a
# later host step (ci/exit-status.sh FILE), once the artifacts are out.
#
# The package flavour (py311 for python3.11) is the installed python3's, which is the ports
# tree's default; RAWSTACK_PY=py312 (say) installs and uses that flavour instead.
set -eu

cd "$(dirname "$0")/.."
if [ "${1:-}" = --status-file ]; then
    [ $# -ge 2 ] || { echo "ci/freebsd.sh: --status-file needs a FILE" >&2; exit 2; }
    status_file=$2
    shift 2
    mkdir -p "$(dirname "$status_file")"
    rc=0
    sh ci/freebsd.sh "$@" || rc=$?
    echo "$rc" >"$status_file"
    echo "ci/freebsd.sh: suite exit status $rc recorded in $status_file"
    exit 0
fi
[ "$(id -u)" = 0 ] || { echo "ci/freebsd.sh: must run as root (jails, epair, raw sockets)" >&2; exit 77; }
[ "$(uname -s)" = FreeBSD ] || { echo "ci/freebsd.sh: this is $(uname -s), not FreeBSD" >&2; exit 2; }

pkg_install() {
    ASSUME_ALWAYS_YES=yes pkg install -q "$@" >/dev/null \
        || { echo "ci/freebsd.sh: pkg install $* failed" >&2; exit 1; }
}

# pkg's own Python has no ensurepip, so tox (which brings virtualenv) comes from pkg too.
if [ -n "${RAWSTACK_PY:-}" ]; then
    case $RAWSTACK_PY in
        py3[0-9] | py3[0-9][0-9]) ;;
        *) echo "ci/freebsd.sh: RAWSTACK_PY=$RAWSTACK_PY is not a flavour such as py312" >&2; exit 2 ;;
    esac
    py=$RAWSTACK_PY                          # py312
    python=python3.${py#py3}                 # python3.12
    pkg_install "python3${py#py3}"           # the package is python312
else
    pkg_install python3                      # lang/python3: the default flavour
    python=python3
    py=py$(python3 -c 'import sys;print("%d%d"%sys.version_info[:2])')
fi
pkg_install "$py-tox"
# The namespace tests need epair(4); -n: no error when it is already loaded or built in.
kldload -n if_epair || { echo "ci/freebsd.sh: cannot load if_epair" >&2; exit 1; }
exec "$python" -m tox -e bsd "$@"
