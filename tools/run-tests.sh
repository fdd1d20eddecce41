#!/usr/bin/env bash
# tools/run-tests.sh — run every bdocker test on a Debian 12 machine, as root.
#
#   bash tools/run-tests.sh [--repeat N] [SWIFT_TEST_ARGS...]
#
# Brings up the test environment (packages, a private dockerd, a local registry with a busybox
# image, test users) with tools/test-env.sh, builds everything once, then per run: removes what
# earlier runs left behind (tools/lib/leftovers.sh: test cgroups, test containers on the test
# engine, bind staging), runs the whole Swift suite, then the end-to-end runs under a real Grid
# Engine (tools/e2e-gridengine.sh) and a real Slurm (tools/e2e-slurm.sh), the short crash soak (tools/soak.sh --short), the fuzz
# targets (tools/fuzz.sh) and the test of this script
# (tools/test-run-tests-exit.sh). The environment guarantees every requirement, so a skipped
# Swift test fails the run. At exit it sweeps again and stops only the services this command
# started. Extra arguments go to `swift test` (e.g. --filter Store) and skip the
# end-to-end runs. --repeat N does N runs (one build), prints each run's result and a summary.
#
# Exit status: 0 when every run passed, 1 when one failed, 2 for a bad command line (or the
# failing step's status if the environment or the build fails). Cleanup never changes it: the
# EXIT handler ignores its own errors and exits with the status it was given.
#
# BDOCKER_TESTS_CMD (for tools/test-run-tests-exit.sh, the test of this script): when set, each
# run executes this shell command (with the extra arguments as $1...) instead of the Swift suite
# and the end-to-end run, and the environment and the build are skipped; the leftover sweep, the
# repeat loop and the exit handling are the real ones. RUN_TESTS_LOCK (default
# /run/bdocker-run-tests.pid) is the file that keeps two of these from sweeping each other.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/lib/leftovers.sh
. tools/lib/leftovers.sh

usage() { sed -n '4p' "$0" | sed 's/^# *//' >&2; exit 2; }
repeat=1
swift_args=()
while (($#)); do
    case $1 in
        --repeat) (($# >= 2)) || usage; repeat=$2; shift 2 ;;
        --repeat=*) repeat=${1#--repeat=}; shift ;;
        *) swift_args+=("$1"); shift ;;
    esac
done
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "run-tests: --repeat needs a positive number, not '$repeat'" >&2; usage; }

[[ $(id -u) -eq 0 ]] || { echo "run-tests: run as root (the tests create cgroups, users' files and containers)" >&2; exit 1; }
export PATH="/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin"
fake=${BDOCKER_TESTS_CMD:-}
[[ -n $fake ]] || command -v swift >/dev/null || { echo "run-tests: swift is not on PATH" >&2; exit 1; }

# One run-tests at a time: each one's sweep would remove the other's containers and cgroups.
# A pid file rather than flock, so the daemons a run starts cannot inherit and keep the lock.
lock=${RUN_TESTS_LOCK:-/run/bdocker-run-tests.pid}
take_lock() {
    local pid
    for _ in 1 2; do
        if (set -o noclobber; echo $$ >"$lock") 2>/dev/null; then return 0; fi
        pid=$(tr -dc '0-9' <"$lock" 2>/dev/null || true)
        if [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q 'run-tests\.sh'; then
            echo "run-tests: another tools/run-tests.sh (pid $pid) is running; wait for it (lock $lock)" >&2
            return 1
        fi
        rm -f "$lock"   # left by a run that was killed
    done
    echo "run-tests: cannot take the lock $lock" >&2
    return 1
}
take_lock || exit 1

# The EXIT handler: keeps the status the run ended with, and nothing in it can change that.
# (Under set -e a failing command in a trap would replace the status: hence set +e, || true.)
started_env=0
finish() {
    local status=$?
    set +e
    trap - EXIT
    sweep_leftovers || true
    if ((started_env)); then tools/test-env.sh down || true; fi
    [[ $(cat "$lock" 2>/dev/null) == "$$" ]] && rm -f "$lock"
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bin=
if [[ -z $fake ]]; then
    # Leave an environment that was already up as it was; otherwise stop what this run
    # started, even when `up` itself, the build or a test fails.
    if ! tools/test-env.sh status >/dev/null 2>&1; then started_env=1; fi
    tools/test-env.sh up
    # shellcheck disable=SC1091
    . /run/bdocker-test/env
    swift build --build-tests
    # The install test makes man pages with swift-argument-parser's generate-manual.
    swift build --product generate-manual
    bin=$(swift build --show-bin-path)
fi

# The Swift suite (or BDOCKER_TESTS_CMD), with its output kept to look for skips. The environment
# above promises every requirement, so here a skipped test is a failure: BDOCKER_TEST_REQUIRE_ALL
# makes `.requires(...)` run the test (it then fails naming what is missing), and any skip that
# still shows in the output fails the run. Sets `failure`.
swift_suite() {
    local log status=0
    log=$(mktemp /tmp/bdocker-swift-test.XXXXXX)
    if [[ -n $fake ]]; then
        BDOCKER_TEST_REQUIRE_ALL=1 bash -c "$fake" run-tests "${swift_args[@]}" 2>&1 | tee "$log" || status=$?
        ((status == 0)) || failure="BDOCKER_TESTS_CMD exit $status"
    else
        BDOCKER_TEST_REQUIRE_ALL=1 swift test --skip-build "${swift_args[@]}" 2>&1 | tee "$log" || status=$?
        ((status == 0)) || failure="swift test exit $status"
    fi
    if grep -aE '(Test|Suite) .* skipped' "$log" >&2; then
        failure="${failure:+$failure; }tests were skipped (above): this command allows no skip"
    fi
    rm -f "$log"
}

# One run: the Swift suite, then (without extra arguments) the end-to-end run and the fuzz
# targets. Sets `failure`.
run_suite() {
    failure=
    swift_suite
    if [[ -z $fake ]] && ((${#swift_args[@]} == 0)); then
        # bdocker under a real Grid Engine (prolog/epilog, qsub, qacct).
        tools/e2e-gridengine.sh "$bin" || failure="${failure:+$failure; }e2e exit $?"
        # The same under a real Slurm (Prolog, Epilog, TaskProlog, sbatch, srun, scancel, qacct).
        tools/e2e-slurm.sh "$bin" || failure="${failure:+$failure; }e2e-slurm exit $?"
        # Both daemons killed at random under a stream of jobs: exactly-once, nothing left.
        tools/soak.sh --short "$bin" || failure="${failure:+$failure; }soak exit $?"
        # The parsers of user-controlled input under libFuzzer, a fixed number of inputs each.
        tools/fuzz.sh "${BDOCKER_FUZZ_RUNS:-20000}" || failure="${failure:+$failure; }fuzz exit $?"
        # This script's own exit status, sweep and lock, on a scratch tree.
        bash tools/test-run-tests-exit.sh || failure="${failure:+$failure; }test-run-tests-exit exit $?"
    fi
    [[ -z $failure ]]
}

failed_runs=()
for ((run = 1; run <= repeat; run++)); do
    ((repeat == 1)) || echo "run-tests: === run $run/$repeat ==="
    # What an earlier run (this one's predecessor, or a killed one) left must not fail this one.
    sweep_leftovers || echo "run-tests: some leftovers could not be removed (above); running anyway" >&2
    if run_suite; then
        echo "run-tests: run $run/$repeat passed"
    else
        echo "run-tests: run $run/$repeat FAILED ($failure)"
        failed_runs+=("$run")
    fi
done
summary="run-tests: $repeat run(s): $((repeat - ${#failed_runs[@]})) passed, ${#failed_runs[@]} failed"
((${#failed_runs[@]} == 0)) || summary+=" (run ${failed_runs[*]})"
echo "$summary"
((${#failed_runs[@]} == 0)) || exit 1
