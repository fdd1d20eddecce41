#!/usr/bin/env bash
# tools/test-run-tests-exit.sh — the test of tools/run-tests.sh itself: its exit status, the
# leftover sweep before and after the runs, --repeat, and argument passing; without the real
# suite. BDOCKER_TESTS_CMD stands in for each run, and the sweep is pointed at a scratch tree
# under /tmp (cgroup-like directories, bind staging with a real bind mount, a Docker socket
# nobody listens on), so it touches none of the machine's cgroups, mounts or containers.
# Root (the bind mount); prints "N passed, M failed" and exits non-zero if a check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "test-run-tests-exit: run as root" >&2; exit 1; }

passed=0 failed=0
check() { # DESCRIPTION COMMAND... — one assertion; on failure shows the last run's output
    local what=$1; shift
    if "$@"; then
        passed=$((passed + 1)); echo "ok   $what"
    else
        failed=$((failed + 1)); echo "FAIL $what (last run: exit $rc)"
        sed 's/^/       | /' <<<"$out"
    fi
}

scratch=$(mktemp -d /tmp/bdocker-run-tests-exit.XXXXXX)
finish() {
    local mp
    # Lazy-unmount anything still mounted under the scratch tree, then remove it without
    # crossing into another file system.
    while read -r mp; do umount -l "$mp" 2>/dev/null; done < <(awk -v s="$scratch/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system "$scratch"
}
trap finish EXIT

cg=$scratch/cgroup
binds=$scratch/run/bdocker-test/binds
counter=$scratch/counter
# A Unix socket file with nobody listening: listing containers on it fails.
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$scratch/docker.sock"

# Hierarchy roots with tasks files, leftovers of "earlier runs", and names the sweep must not touch.
# bdocker-test-111111 holds a regular file, so it can never be removed: the failing cleanup step
# (on cgroupfs, a cgroup whose task would not move).
make_tree() {
    rm -rf "$cg" "$counter"
    mkdir -p "$cg/memory" "$cg/cpu"
    : >"$cg/memory/tasks"; : >"$cg/cpu/tasks"
    mkdir -p "$cg/memory/bdocker-test-111111/job1" "$cg/cpu/bdocker-e2e/17/abc" "$cg/cpu/bdocker-test-222222"
    echo 4242 >"$cg/memory/bdocker-test-111111/tasks"
    mkdir -p "$cg/memory/other" "$cg/memory/bdocker-testing" "$cg/cpu/docker/bdocker-test-333333"
}
# A tree the sweep can clear completely.
make_clean_tree() { make_tree; rm -rf "$cg/memory/bdocker-test-111111"; }

out= rc=
run() { # BDOCKER_TESTS_CMD [RUN_TESTS_ARGS...] — sets out and rc
    local cmd=$1; shift
    out=$(LEFTOVERS_CGROUP_ROOT=$cg LEFTOVERS_BINDS_GLOB="$scratch/run/bdocker-test*/binds" \
        BDOCKER_TEST_DOCKER_URL=unix://$scratch/docker.sock RUN_TESTS_LOCK=$scratch/lock \
        BDOCKER_TESTS_CMD=$cmd C=$counter CG=$cg timeout 120 bash tools/run-tests.sh "$@" 2>&1)
    rc=$?
}
has() { grep -qF -- "$1" <<<"$out"; }
gone() { [[ ! -e $1 ]]; }

# --- (a) a passing run exits 0 although cleanup steps fail --------------------------------------
make_tree
run true
check "passing run exits 0 although a leftover cgroup cannot be removed" test "$rc" -eq 0
check "  ... and it says which one" has "could not remove $cg/memory/bdocker-test-111111"
check "  ... and that the engine could not be listed" has "cannot list containers on unix://$scratch/docker.sock"
check "  ... and prints the summary" has "run-tests: 1 run(s): 1 passed, 0 failed"
check "the sweep moved the leftover's task to the hierarchy root" grep -qx 4242 "$cg/memory/tasks"
check "the sweep removed the other leftovers, deepest first" \
    bash -c "[[ ! -e $cg/memory/bdocker-test-111111/job1 && ! -e $cg/cpu/bdocker-e2e && ! -e $cg/cpu/bdocker-test-222222 ]]"
check "the sweep left names that are not the tests' alone" \
    bash -c "[[ -d $cg/memory/other && -d $cg/memory/bdocker-testing && -d $cg/cpu/docker/bdocker-test-333333 ]]"

# --- (b) a failing run exits non-zero, with or without failing cleanup ----------------------------
make_tree
run false
check "failing run exits non-zero although cleanup also fails" test "$rc" -ne 0
check "  ... and says the run failed" has "run-tests: run 1/1 FAILED (BDOCKER_TESTS_CMD exit 1)"
make_clean_tree
run 'exit 3'
check "failing run exits non-zero when cleanup succeeds" test "$rc" -eq 1
check "  ... and cleanup ran (nothing left)" bash -c "[[ -z \$(ls -d $cg/*/bdocker-test-* $cg/*/bdocker-e2e* 2>/dev/null) ]]"

# --- a skipped test fails the run; the requirement switch reaches the tests --------------------
make_clean_tree
run 'echo "➜ Test pullsFromTheRegistry() skipped: \"needs registry\""'
check "a run whose tests pass but one is skipped exits non-zero" test "$rc" -ne 0
check "  ... and says why" has "tests were skipped (above): this command allows no skip"
make_clean_tree
run '[[ $BDOCKER_TEST_REQUIRE_ALL == 1 ]]'
check "the tests run with BDOCKER_TEST_REQUIRE_ALL=1 (no requirement may skip)" test "$rc" -eq 0

# --- the sweep runs before the tests, and at exit ------------------------------------------------
make_tree
run '[[ ! -e $CG/cpu/bdocker-e2e && ! -e $CG/memory/bdocker-test-111111/job1 ]]'
check "leftovers are gone before the tests start" test "$rc" -eq 0
make_clean_tree
run 'mkdir -p $CG/memory/bdocker-test-444444/job9'
check "what a run leaves is swept at exit" bash -c "[[ $rc -eq 0 && ! -e $cg/memory/bdocker-test-444444 ]]"

# --- bind staging: lazily unmounted, then rmdir only --------------------------------------------
make_clean_tree
mkdir -p "$scratch/home/data" "$binds/job1/vol" "$binds/job2"
echo precious >"$scratch/home/data/file"
if mount --bind "$scratch/home/data" "$binds/job1/vol"; then
    run true
    check "bind staging: the stale mount is gone" bash -c "! mountpoint -q $binds/job1/vol"
    check "bind staging: its directories are removed, binds/ itself kept" bash -c "[[ ! -e $binds/job1 && ! -e $binds/job2 && -d $binds ]]"
    check "bind staging: the mounted data is untouched" grep -qx precious "$scratch/home/data/file"
else
    echo "skip bind staging checks: mount --bind not permitted here"
fi
echo keep >"$binds/stray-file"
run true
check "bind staging: a stray file is reported, not deleted, and does not fail a passing run" \
    bash -c "[[ $rc -eq 0 && -e $binds/stray-file ]] && grep -qF 'could not empty $binds' <<<\"\$1\"" _ "$out"
rm -f "$binds/stray-file"

# --- --repeat --------------------------------------------------------------------------------
make_clean_tree
run 'n=$(( $(cat $C 2>/dev/null || echo 0) + 1 )); echo $n >$C; [ $n -ne 2 ]' --repeat 3
check "--repeat 3 with run 2 failing exits non-zero" test "$rc" -ne 0
check "  ... and reports each run" bash -c 'grep -qF "run 1/3 passed" <<<"$1" && grep -qF "run 2/3 FAILED" <<<"$1" && grep -qF "run 3/3 passed" <<<"$1"' _ "$out"
check "  ... and the summary" has "run-tests: 3 run(s): 2 passed, 1 failed (run 2)"
make_clean_tree
run 'n=$(( $(cat $C 2>/dev/null || echo 0) + 1 )); echo $n >$C' --repeat=2
check "--repeat=2, all passing, exits 0 after 2 runs" bash -c "[[ $rc -eq 0 && \$(cat $counter) == 2 ]]"
check "  ... and the summary" has "run-tests: 2 run(s): 2 passed, 0 failed"
# The issue: a failed run's leftover must not turn the next, green run red.
make_clean_tree
run 'if [ ! -e $C ]; then : >$C; mkdir -p $CG/memory/bdocker-test-555555/job1; exit 1; fi; [ ! -e $CG/memory/bdocker-test-555555 ]' --repeat 2
check "a failed run's leftover cgroup is swept before the next run, which passes" \
    bash -c 'grep -qF "run 1/2 FAILED" <<<"$1" && grep -qF "run 2/2 passed" <<<"$1"' _ "$out"

# --- arguments --------------------------------------------------------------------------------
make_clean_tree
run '[ "$*" = "--filter Store" ]' --repeat 1 --filter Store
check "other arguments reach the test command (--repeat before them)" test "$rc" -eq 0
run '[ "$*" = "--filter Store" ]' --filter Store --repeat 2
check "other arguments reach the test command (--repeat after them)" bash -c "[[ $rc -eq 0 ]] && grep -qF '2 run(s): 2 passed' <<<\"\$1\"" _ "$out"
for bad in "--repeat 0" "--repeat x" "--repeat"; do
    rm -f "$counter"
    # shellcheck disable=SC2086  # split on purpose
    run ': >$C' $bad
    check "'$bad' is a usage error (exit 2) and runs nothing" bash -c "[[ $rc -eq 2 && ! -e $counter ]]"
done

# --- signals and the lock ---------------------------------------------------------------------
make_clean_tree
run 'kill -TERM $PPID; mkdir -p $CG/memory/bdocker-test-666666'
check "a run stopped by SIGTERM exits 143 and still sweeps" bash -c "[[ $rc -eq 143 && ! -e $cg/memory/bdocker-test-666666 ]]"
make_clean_tree
(run ': >$C.started; while [ ! -e $C.release ]; do sleep 0.1; done') &
holder=$!
for _ in $(seq 100); do [[ -e $counter.started ]] && break; sleep 0.1; done
run ': >$C.second'
check "a second run-tests while one runs is refused and runs nothing" \
    bash -c "[[ $rc -eq 1 && ! -e $counter.second ]] && grep -qF 'another tools/run-tests.sh' <<<\"\$1\"" _ "$out"
: >"$counter.release"
wait "$holder"
echo 999999999 >"$scratch/lock"
run true
check "a lock left by a dead run is taken over" test "$rc" -eq 0
check "the lock is released at exit" test ! -e "$scratch/lock"

echo "$passed passed, $failed failed"
((failed == 0))
