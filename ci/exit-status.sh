#!/bin/sh
# Exit with the status a VM step recorded (`sh ci/freebsd.sh --status-file FILE`), in a host
# step after the VM action has copied the work tree back, so a failed suite still fails the
# job and its .ci-artifacts/ are already on the runner for upload.
#
#   sh ci/exit-status.sh FILE
set -eu

[ $# = 1 ] || { echo "usage: sh ci/exit-status.sh FILE" >&2; exit 2; }
if [ ! -f "$1" ]; then
    echo "ci/exit-status.sh: $1 is missing: the VM step never recorded the suite's status" >&2
    exit 1
fi
rc=$(cat "$1")
case $rc in
    '' | *[!0-9]*)
        echo "ci/exit-status.sh: $1 holds '$rc', not an exit status" >&2
        exit 1
        ;;
esac
if [ "$rc" != 0 ]; then
    echo "ci/exit-status.sh: the suite failed in the VM (exit $rc); see the uploaded artifacts" >&2
fi
exit "$rc"
