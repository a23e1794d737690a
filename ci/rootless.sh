#!/bin/sh
# Run the harness as a plain user: create a fresh user, give it a copy of this checkout with
# its own venv (installed offline from wheels of the packages .venv holds), run a command as
# that user, check it left no process behind, then delete the user and everything it made.
#
#   sh ci/rootless.sh                  the rootless tests, the demo and an integration subset
#   RAWSTACK_ROOTLESS_SUITE=all ...    the whole integration suite instead of the subset
#   sh ci/rootless.sh COMMAND...       any command, run as the user from its checkout
#   RAWSTACK_ROOTLESS_KEEP=1 ...       keep the user (prints its name) for a look around
#
# Needs root (it creates the user) and `sh ci/setup.sh` done. Exit: the command's status, or 1
# when the user still had processes after it (a rootless run must leave none).
set -eu

cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "ci/rootless.sh: needs root (it creates and removes a plain user)" >&2
    exit 77
fi
user="rsrootless$$"
wheels=$(mktemp -d /tmp/rawstack-rootless-wheels.XXXXXX)
home=""
# shellcheck disable=SC2317 # called by the trap below
cleanup() {
    rm -rf "$wheels"
    if [ -n "$home" ] && [ "${RAWSTACK_ROOTLESS_KEEP:-}" != 1 ]; then
        # What the user made outside its home (pytest's /tmp/pytest-of-USER, listings).
        find /tmp /var/tmp /dev/shm -mindepth 1 -maxdepth 1 -user "$user" \
            -exec rm -rf {} + 2>/dev/null || true
        userdel -r "$user" 2>/dev/null || userdel -f -r "$user" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

# Wheels of exactly what .venv holds: the user's venv installs them with no index.
# stderr: pip asks git about the editable checkout, which a fresh machine may lack.
.venv/bin/pip freeze --all --exclude-editable >"$wheels/requirements.txt" 2>/dev/null
.venv/bin/pip wheel -q --disable-pip-version-check --no-deps -w "$wheels" \
    -r "$wheels/requirements.txt" 2>/dev/null
chmod -R a+rX "$wheels"

useradd -m -s /bin/sh "$user"
home=$(getent passwd "$user" | cut -d: -f6)
# The checkout as the user sees it, without the venv, caches or artifacts (.gitignore's
# list). tar, not `git ls-files`: a fresh machine or an unpacked sdist has no git.
mkdir "$home/rawstack"
tar -cf - --exclude=./.git --exclude=./.venv --exclude=./.tox --exclude=./.ci-artifacts \
    --exclude=./build --exclude=./dist --exclude=./.vagrant --exclude='*_cache' \
    --exclude=.hypothesis --exclude=__pycache__ --exclude='*.egg-info' --exclude='.coverage*' \
    --exclude='junit*.xml' . | tar -xf - -C "$home/rawstack"
chown -R "$user:" "$home/rawstack"

as_user() {
    # setpriv, not su: no PAM session, the user's own uid, gid and groups only.
    # shellcheck disable=SC2016 # $HOME and $@ expand in the user's shell
    setpriv --reuid="$user" --regid="$user" --init-groups --reset-env \
        env HOME="$home" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        sh -c 'cd "$HOME/rawstack" && exec "$@"' sh "$@"
}
as_user python3 -m venv .venv
as_user .venv/bin/pip install -q --disable-pip-version-check --no-index \
    --find-links "$wheels" -r "$wheels/requirements.txt"
as_user .venv/bin/pip install -q --disable-pip-version-check --no-index \
    --find-links "$wheels" --no-build-isolation --no-deps -e .

# Where the kernel refuses this user a user namespace (a sysctl, seccomp, or a chroot, as in a
# debootstrap root), there is nothing to run: one line why, exit 77 (ci/test.sh skips).
if ! why=$(as_user unshare --user --map-root-user --net --mount true 2>&1); then
    echo "ci/rootless.sh: skipped: no user namespace for a plain user here ($why)" >&2
    exit 77
fi

rc=0
if [ "$#" != 0 ]; then
    as_user "$@" || rc=$?
else
    pytest() { as_user .venv/bin/pytest -q -p no:cacheprovider "$@"; }
    # 1. The mechanism, by the plain user itself (root mode: no run of its own around it).
    # Serial: its tests count the user's processes, which a parallel test would change.
    pytest --netns-mode=root tests/integration/test_rootless_namespaces.py || rc=1
    # 2. The demo, and the harness's own tests, in rootless mode (the default for a user).
    as_user .venv/bin/netns-harness demo || rc=1
    if [ "${RAWSTACK_ROOTLESS_SUITE:-}" = all ]; then
        pytest -n auto -rs tests/integration || rc=1
    else
        pytest -n 2 -rs tests/integration/test_harness_backend.py \
            tests/integration/test_cleanup_sigkill.py tests/integration/test_ping_raw.py \
            tests/integration/test_harness_xdist.py tests/integration/test_harness_capture.py \
            tests/integration/test_chao_link.py tests/integration/test_forked_clients.py \
            tests/integration/test_harness_pooled_namespaces.py || rc=1
    fi
    # 3. Outside any user namespace the user's raw socket is refused: exit 77, one line.
    out=$(as_user .venv/bin/rawstack ping -c 1 -W 1 127.0.0.1 2>&1) && prc=0 || prc=$?
    if [ "$prc" != 77 ]; then
        echo "ci/rootless.sh: rawstack ping as a plain user exited $prc, not 77: $out" >&2
        rc=1
    fi
fi

# A rootless run ends with its pid namespace: nothing of the user's may still run.
left=$(ps -o pid=,args= -u "$user" || true)
if [ -n "$left" ]; then
    echo "ci/rootless.sh: processes of $user left after the run:" >&2
    echo "$left" >&2
    rc=1
fi
if [ "${RAWSTACK_ROOTLESS_KEEP:-}" = 1 ]; then
    echo "ci/rootless.sh: kept user $user (home $home); remove it with: userdel -r $user" >&2
fi
exit "$rc"
