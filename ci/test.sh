#!/bin/sh
# The whole suite, as CI runs it (.ci/run calls this): set up, then every check, then pytest
# over tests/ (unit and integration; integration tests need root, which CI has).
#
#   sh ci/test.sh [PYTEST ARGS...]      extra arguments go to pytest
#
# Every step runs even when an earlier one failed, so one run reports everything; the exit
# status is 1 if any step failed. JUnit XML, failed tests' peer logs (failures/) and the
# setup log go to $RAWSTACK_CI_ARTIFACTS (default .ci-artifacts/). pytest exit 5 ("no tests collected") is a failure: the suite
# has tests, so collecting none means something is broken.
set -eu

cd "$(dirname "$0")/.."
start=$(date +%s)
ART=${RAWSTACK_CI_ARTIFACTS:-.ci-artifacts}
export RAWSTACK_CI_ARTIFACTS="$ART"
export VAGRANT_CHECKPOINT_DISABLE=1
failed=""

sh ci/setup.sh
rm -rf "$ART"/junit*.xml "$ART/failures"

# step NAME COMMAND...: run one check, record a failure by name and carry on.
step() {
    name=$1
    shift
    echo "== $name"
    if "$@"; then
        return 0
    else
        rc=$?
    fi
    if [ "$name" = rootless ] && [ "$rc" = 77 ]; then
        return 0  # the kernel refuses user namespaces here; ci/rootless.sh said why
    fi
    if [ "$name" = pytest ] && [ "$rc" = 5 ]; then
        echo "ci/test.sh: pytest collected no tests (exit 5); the suite should never be empty" >&2
    else
        echo "ci/test.sh: $name failed (exit $rc)" >&2
    fi
    failed="$failed $name"
}

step ruff .venv/bin/ruff check .
step mypy .venv/bin/mypy --strict  # the file list is [tool.mypy] files in pyproject.toml
step actionlint .venv/bin/actionlint ci/workflows/*.yml .github/workflows/*.yml
step shellcheck shellcheck ci/*.sh .ci/run
step vagrant sh ci/vagrant-validate.sh  # no hypervisor needed
step shaped .venv/bin/python ci/shaped.py -q  # the bsd/darwin lists, shaped like those OSes
# The rootless subset as a freshly created plain user (deleted afterwards): CI is root here.
step rootless sh ci/rootless.sh
# Through ci/shard.py (one shard: all tests) for its failure_logs plugin: each failed
# test's peer logs land in $ART/failures/.
step pytest .venv/bin/python ci/shard.py -n auto \
    --junitxml="$ART/junit.xml" -o junit_logging=all -o junit_log_passing_tests=false \
    tests examples "$@"
# The fixtures with --netns-peer-start=shared (every node's peers in one process): the
# suites that start, probe and use fixture peers in every topology, in that mode (the
# mechanism itself is tested in tests/integration/test_harness_shared_peers.py).
step shared .venv/bin/python -m pytest -q -p no:cacheprovider -n auto \
    --netns-peer-start=shared tests/integration/test_harness_backend.py \
    tests/integration/test_declared_peers.py tests/integration/test_matrix_peers.py \
    tests/integration/test_serve_all.py

elapsed=$(($(date +%s) - start))
if [ -n "$failed" ]; then
    echo "ci/test.sh: FAILED:$failed (${elapsed}s; artifacts in $ART/)" >&2
    exit 1
fi
echo "ci/test.sh: all passed (${elapsed}s)"
