#!/bin/sh
# The FreeBSD job, run as root inside a FreeBSD VM (GitHub's vmactions/freebsd-vm, or a
# Vagrant box): install Python and tox from packages, then run `tox -e bsd`.
set -eu

cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ci/freebsd.sh: must run as root (jails, epair, raw sockets)" >&2; exit 77; }
[ "$(uname -s)" = FreeBSD ] || { echo "ci/freebsd.sh: this is $(uname -s), not FreeBSD" >&2; exit 2; }

# pkg's own Python has no ensurepip, so tox (which brings virtualenv) comes from pkg too.
ASSUME_ALWAYS_YES=yes pkg install -q python3 py311-tox >/dev/null \
    || { echo "ci/freebsd.sh: pkg install python3 py311-tox failed" >&2; exit 1; }
# The namespace tests need epair(4); -n: no error when it is already loaded or built in.
kldload -n if_epair || { echo "ci/freebsd.sh: cannot load if_epair" >&2; exit 1; }
exec tox -e bsd "$@"
