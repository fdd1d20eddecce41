#!/usr/bin/env bash
# tools/run-tests.sh — run every bdocker test on a Debian 12 machine, as root.
#
# Brings up the test environment (packages, a private dockerd, a local registry with a busybox
# image, test users) with tools/test-env.sh, builds everything, runs the whole Swift suite, then
# the end-to-end run under a real Grid Engine (tools/e2e-gridengine.sh), and stops only the
# services this run started. Extra arguments go to `swift test` (e.g. --filter Store) and skip
# the end-to-end run.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) -eq 0 ]] || { echo "run-tests: run as root (the tests create cgroups, users' files and containers)" >&2; exit 1; }
export PATH="/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin"
command -v swift >/dev/null || { echo "run-tests: swift is not on PATH" >&2; exit 1; }

# The tests make their cgroups under parents named /bdocker-test-*: remove any that a test
# process could not (rmdir only takes empty ones, and only ours match the name).
sweep_cgroups() { for d in /sys/fs/cgroup/*/bdocker-test-*; do [[ -d $d ]] && rmdir "$d" 2>/dev/null; done; true; }

# Leave an environment that was already up as it was; otherwise stop what this run started,
# even when the build or a test fails.
if tools/test-env.sh status >/dev/null 2>&1; then
    tools/test-env.sh up
    trap sweep_cgroups EXIT
else
    tools/test-env.sh up
    trap 'sweep_cgroups; tools/test-env.sh down || true' EXIT
fi
# shellcheck disable=SC1091
. /run/bdocker-test/env

swift build --build-tests
swift test --skip-build "$@"
# bdocker under a real Grid Engine (prolog/epilog, qsub, qacct); skipped when a --filter was given.
if [[ $# -eq 0 ]]; then
    tools/e2e-gridengine.sh "$(swift build --show-bin-path)"
fi
