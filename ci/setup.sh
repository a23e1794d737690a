#!/bin/sh
# Prepare a Debian 12 machine (as root, starting from nothing but sh) to run rawstack and its
# tests: Debian packages, then .venv with rawstack installed editable.
#
#   sh ci/setup.sh [GROUP...]     groups: core, check, bench (default: all of them)
#
# Idempotent and quiet: apt is skipped when every package is already installed, pip when
# pyproject.toml and ci/requirements-ci.txt have not changed since the last install. Output
# of each step goes to $RAWSTACK_CI_ARTIFACTS/setup.log; a failure prints one line naming the
# step and the log. RAWSTACK_SETUP_VERBOSE=1 shows everything instead.
set -eu

cd "$(dirname "$0")/.."
artifacts=${RAWSTACK_CI_ARTIFACTS:-.ci-artifacts}
case $artifacts in /*) ;; *) artifacts=$PWD/$artifacts ;; esac
log=$artifacts/setup.log
venv=.venv

# core: what the code and the integration tests call (the harness itself needs no binaries,
#   pyroute2 speaks netlink; the tests use these as independent oracles and tools; gcc
#   compiles iputils' own statistics code as the oracle of rawstack ping's arithmetic).
# check: what ci/test.sh runs besides pytest (vagrant-libvirt lets ci/vagrant-validate.sh
#   check the Vagrantfile's libvirt block without libvirtd).
# bench: the HTTP benchmark's reference server and load generator, and (from pip, the bench
#   extra) matplotlib for the report's plots plus the Python HTTP servers it is measured
#   against (uvicorn, httptools, uvloop, gunicorn).
pkgs_core="python3-venv iproute2 procps util-linux iputils-ping curl socat tcpdump tshark nmap gcc libc6-dev"
pkgs_check="shellcheck vagrant vagrant-libvirt"
pkgs_bench="nginx-light wrk"

# die CODE MESSAGE
die() {
    echo "ci/setup.sh: $2" >&2
    exit "$1"
}

# Run a step quietly; on failure say which step failed and where its output is.
run() {
    what=$1
    shift
    if [ "${RAWSTACK_SETUP_VERBOSE:-0}" = 1 ]; then
        "$@" || { rc=$?; die 1 "$what failed (exit $rc)"; }
    else
        "$@" >>"$log" 2>&1 || { rc=$?; die 1 "$what failed (exit $rc); see $log"; }
    fi
}

pip_install() {
    "$venv/bin/python" -m pip --disable-pip-version-check --no-input -q install "$@"
}

pkgs=""
extras="test,dev"
[ $# -gt 0 ] || set -- core check bench
for group in "$@"; do
    case $group in
        core) pkgs="$pkgs $pkgs_core" ;;
        check) pkgs="$pkgs $pkgs_check" ;;
        bench) pkgs="$pkgs $pkgs_bench"; extras="$extras,bench" ;;
        *) die 2 "unknown group '$group' (expected core, check or bench)" ;;
    esac
done

[ "$(id -u)" = 0 ] || die 77 "must run as root (apt-get and network namespaces need it)"
command -v apt-get >/dev/null 2>&1 || die 2 "apt-get not found: this script sets up Debian"
mkdir -p "$artifacts"
: >"$log"

missing=""
for p in $pkgs; do
    # Status is "install ok installed" only for a fully configured package.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $p"
done

if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer before apt can prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" >"$artifacts/debconf"
    run "debconf-set-selections" debconf-set-selections "$artifacts/debconf"
    rm -f "$artifacts/debconf"
    run "apt-get update" apt-get update -q
    # shellcheck disable=SC2086 # the package list is meant to split into words
    run "apt-get install$missing" apt-get install -y -q --no-install-recommends $missing
fi

if ! "$venv/bin/python" -c "" >/dev/null 2>&1; then
    rm -rf "$venv"
    run "python3 -m venv $venv" python3 -m venv "$venv"
fi

# The stamp records what was installed, so a rerun with nothing changed costs no pip call.
want="$(cat pyproject.toml ci/requirements-ci.txt | cksum) $extras"
stamp=$venv/.rawstack-setup
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] \
    || ! "$venv/bin/python" -c "import rawstack, rawstack_harness" >/dev/null 2>&1; then
    run "pip install -e .[$extras]" pip_install -e ".[$extras]"
    run "pip install -r ci/requirements-ci.txt" pip_install -r ci/requirements-ci.txt
    echo "$want" >"$stamp"
fi

# Each run's peer host (and every peer with --netns-peer-start=exec) is a fresh interpreter;
# with bytecode compiled once here a spawn never compiles sources (which would cost ~40 ms
# each where PYTHONDONTWRITEBYTECODE is set).
# compileall only rewrites what is stale, so reruns cost next to nothing.
run "compile rawstack's bytecode" "$venv/bin/python" -m compileall -q rawstack harness
