#!/usr/bin/env bash
# tools/e2e-gridengine.sh — bdocker the way a site runs it: a real Grid Engine calls the
# shipped etc/prolog.sh and etc/epilog.sh, real users submit jobs that run containers, and
# qacct reads what the containers used. Root; prints "N passed, M failed".
#
#   tools/e2e-gridengine.sh [BIN_DIR]     (default: the debug build's bin path)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[[ $(id -u) -eq 0 ]] || { echo "e2e: run as root" >&2; exit 1; }
export PATH="/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin"
bin=${1:-$(swift build --show-bin-path)}
[[ -x $bin/bdockerd && -x $bin/bdocker ]] || { echo "e2e: no bdocker binaries in $bin (swift build first)" >&2; exit 1; }

passed=0 failed=0
check() { # DESCRIPTION COMMAND... — one test assertion
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}

tools/test-env.sh up >/dev/null || exit 1
# shellcheck disable=SC1091
. /run/bdocker-test/env
read -r u1 u2 <<<"$BDOCKER_TEST_USERS"

# shellcheck source=tools/lib/leftovers.sh
. tools/lib/leftovers.sh
# shellcheck source=tools/lib/daemon-configs.sh
. tools/lib/daemon-configs.sh
sweep_leftovers   # earlier runs' cgroups, test containers, bind staging; reports, never fails

work=/run/bdocker-e2e
# Never follow a bind mount (a pinned HOME directory) out of the work directory.
rm -rf --one-file-system "$work"; mkdir -p "$work"; chmod 755 "$work"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/admin_token"; chmod 600 "$work/admin_token"
parent=/bdocker-e2e
write_daemon_configs "$work" "$work/state/working.sqlite" "$work/accounting.sqlite" "$work/bdocker_accounting" "$parent" 5300 5301

# The prolog and epilog read their binary and config from /etc/default/bdocker (root-only
# settings, never the job's environment): point them at this build for the run.
site=/etc/default/bdocker
[[ -e $site ]] && cp -p "$site" "$work/default.saved"
printf 'BDOCKER_BIN=%s\nBDOCKER_CONF_FILE=%s\n' "$bin/bdocker" "$work/working.cfg" >"$site"
chmod 644 "$site"

wpid= apid=
start_working() { "$bin/bdockerd" --config "$work/working.cfg" 2>>"$work/working.log" & wpid=$!; wait_socket "$work/run/bdockerd.sock"; }
start_accounting() { "$bin/bdockerd" --config "$work/accounting.cfg" 2>>"$work/accounting.log" & apid=$!; wait_port 5301; }
wait_port() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/status" >/dev/null && return 0; sleep 0.1; done; return 1; }
wait_socket() { for _ in $(seq 100); do curl -sf --unix-socket "$1" http://bdockerd/status >/dev/null && return 0; sleep 0.1; done; return 1; }
stop_pid() { [[ -n $1 ]] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; true; }
finish() {
    stop_pid "$wpid"; stop_pid "$apid"
    if [[ -e $work/default.saved ]]; then cp -p "$work/default.saved" "$site"; else rm -f "$site"; fi
    [[ ${sge_started:-0} -eq 1 ]] && tools/gridengine.sh down >/dev/null 2>&1
    sweep_test_cgroups "${parent#/}"
    true
}
trap finish EXIT

start_accounting || { echo "e2e: accounting daemon did not start: $(tail -3 "$work/accounting.log")" >&2; exit 1; }
start_working || { echo "e2e: working daemon did not start: $(tail -3 "$work/working.log")" >&2; exit 1; }

sge_started=0
tools/gridengine.sh status >/dev/null 2>&1 || sge_started=1
BDOCKER_PROLOG=$repo/etc/prolog.sh BDOCKER_EPILOG=$repo/etc/epilog.sh tools/gridengine.sh up >/dev/null || exit 1
# shellcheck disable=SC1091
. /run/bdocker-sge/env

jobfile=$work/job.sh
cat >"$jobfile" <<'JOB'
#!/bin/sh
# A scientist's job: pull, a background container, a CPU-burning one writing into HOME, ps, cp.
B=$BDOCKER_BIN
out=$HOME/e2e-$JOB_ID
mkdir -p "$out"
$B pull "$IMAGE" >/dev/null || exit 1
bg=$($B run -d "$IMAGE" sleep 300) || exit 1
$B run -v "$out:/out" "$IMAGE" sh -c 'while :; do read -r l < /proc/$$/stat; set -- $l; [ $(( ${14} + ${15} )) -ge 200 ] && break; done; echo burned > /out/result' || exit 1
$B ps -a -q > "$out/ps"
$B cp "$bg:/etc/passwd" "$out/copied" || exit 1
echo "$bg" > "$out/bg"
JOB
chmod 755 "$jobfile"
common_v="BDOCKER_BIN=$bin/bdocker,BDOCKER_CONF_FILE=$work/working.cfg,IMAGE=$BDOCKER_TEST_IMAGE"

submit() { # USER QSUB-ARGS... → job id
    local user=$1; shift
    su -s /bin/sh "$user" -c "cd ~ && SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL qsub -terse -o /dev/null -e /dev/null -v $common_v $*" | cut -d. -f1
}
wait_gone() { # JOB [SECONDS]
    for _ in $(seq $((${2:-120} * 2))); do qstat -u '*' | awk 'NR>2 {print $1}' | grep -qx "$1" || return 0; sleep 0.5; done
    return 1
}
# A job's accounting records, read through bdocker's own store and parser (bdocker-acct on the
# accounting daemon's database), never by field position in the line. The file itself is
# checked by qacct, and by the not_in_file view (every stored record has its line).
acct_query() { "$bin/bdocker-acct" sql --database "$work/accounting.sqlite" --format csv "$1" 2>/dev/null | tail -n +2 | tr -d '\r'; }
acct_count() { acct_query "SELECT count(*) FROM records WHERE job_number = $1"; }
acct_field() { acct_query "SELECT $2 FROM records WHERE job_number = $1 ORDER BY task_number" | tr '\n' ' '; }
wait_record() { # JOB COUNT: stored, and (the file follows the store) every stored line in the file
    for _ in $(seq 40); do
        [[ $(acct_count "$1") -ge $2 && $(acct_query 'SELECT count(*) FROM not_in_file') == 0 ]] && return 0
        sleep 0.5
    done
    return 1
}
qacct_value() { # JOB FIELD → number (qacct -f on bdocker's file)
    qacct -f "$work/bdocker_accounting" -j "$1" 2>/dev/null | awk -v f="$2" '$1 == f {print $2; exit}' | sed 's/[A-Za-z]*$//'
}
no_cgroups_of() { ! ls -d /sys/fs/cgroup/*"$parent/$1"* >/dev/null 2>&1; }
no_containers_of() { [[ -z $(/usr/bin/docker -H "$BDOCKER_TEST_DOCKER_URL" ps -aq --filter "label=bdocker.job=$1") ]]; }
queue_clean() { ! qstat -f -q "$BDOCKER_SGE_QUEUE" | awk -v q="$BDOCKER_SGE_QUEUE@" 'index($1, q) == 1 {print $NF}' | grep -q 'E'; }

echo "== two users, one job each, at once"
j1=$(submit "$u1" "$jobfile"); j2=$(submit "$u2" "$jobfile")
check "jobs submitted ($j1, $j2)" test -n "$j1" -a -n "$j2"
wait_gone "$j1"; wait_gone "$j2"
h1=$(getent passwd "$u1" | cut -d: -f6); h2=$(getent passwd "$u2" | cut -d: -f6)
check "$u1's container wrote into HOME, owned by $u1" test "$(stat -c %U "$h1/e2e-$j1/result" 2>/dev/null)" = "$u1"
check "$u2's job copied a file out" test -s "$h2/e2e-$j2/copied"
check "$u1 sees its own containers only" test "$(wc -l <"$h1/e2e-$j1/ps")" -eq 2 -a -n "$(cat "$h1/e2e-$j1/bg")"
check "$u2 does not see $u1's container" bash -c "! grep -q \"\$(cut -c1-12 '$h1/e2e-$j1/bg')\" '$h2/e2e-$j2/ps'"
wait_record "$j1" 1; wait_record "$j2" 1
check "one accounting record for job $j1" test "$(acct_count "$j1")" = 1
check "one accounting record for job $j2" test "$(acct_count "$j2")" = 1
cpu=$(qacct_value "$j1" cpu)
check "qacct shows cpu >= 1.5 s for job $j1 (got ${cpu:-none})" awk -v c="${cpu:-0}" 'BEGIN {exit !(c >= 1.5)}'
check "qacct shows owner $u1" bash -c "qacct -f '$work/bdocker_accounting' -j $j1 | grep -q '^owner *$u1'"
check "no cgroup left for $j1 / $j2" bash -c "$(declare -f no_cgroups_of); parent=$parent; no_cgroups_of $j1 && no_cgroups_of $j2"
check "no container left for $j1 / $j2" bash -c "$(declare -f no_containers_of); BDOCKER_TEST_DOCKER_URL=$BDOCKER_TEST_DOCKER_URL; no_containers_of $j1 && no_containers_of $j2"
check "token files removed" bash -c "! ls $h1/.bdocker_token_$j1 $h2/.bdocker_token_$j2 2>/dev/null"

echo "== an array job of 3 tasks"
cat >"$work/array.sh" <<'JOB'
#!/bin/sh
$BDOCKER_BIN run "$IMAGE" sh -c "echo task $SGE_TASK_ID" > "$HOME/e2e-$JOB_ID.$SGE_TASK_ID.out"
JOB
chmod 755 "$work/array.sh"
ja=$(submit "$u1" -t 1-3 "$work/array.sh")
wait_gone "$ja"; wait_record "$ja" 3
check "three records for array job $ja" test "$(acct_count "$ja")" = 3
check "tasks 1, 2, 3 each recorded once" test "$(acct_field "$ja" task_number)" = "1 2 3 "
check "each task ran its own container" bash -c "grep -q 'task 3' $h1/e2e-$ja.3.out"

echo "== h_cpu=0:0:5: the monitor kills the job"
cat >"$work/loop.sh" <<'JOB'
#!/bin/sh
$BDOCKER_BIN run "$IMAGE" sh -c 'while :; do :; done'
JOB
chmod 755 "$work/loop.sh"
jk=$(submit "$u1" -l h_cpu=0:0:5 "$work/loop.sh")
check "killed job $jk ended within 60 s" wait_gone "$jk" 60
wait_record "$jk" 1
check "record shows failed 37" test "$(acct_field "$jk" failed)" = "37 "
check "record shows exit_status 137" test "$(acct_field "$jk" exit_status)" = "137 "
check "queue not in error state" queue_clean
jn=$(submit "$u2" "$work/array.sh")
check "queue still runs jobs" wait_gone "$jn" 60

echo "== qdel of a running job"
cat >"$work/long.sh" <<'JOB'
#!/bin/sh
$BDOCKER_BIN run -d "$IMAGE" sleep 300 > "$HOME/e2e-$JOB_ID.started"
sleep 300
JOB
chmod 755 "$work/long.sh"
jd=$(submit "$u2" "$work/long.sh")
for _ in $(seq 120); do [[ -s $h2/e2e-$jd.started ]] && break; sleep 0.5; done
check "job $jd started its container" test -s "$h2/e2e-$jd.started"
qdel "$jd" >/dev/null
wait_gone "$jd" 60
wait_record "$jd" 1
check "qdel'd job still has its record" test "$(acct_count "$jd")" = 1
check "qdel'd job's container removed" no_containers_of "$jd"
check "qdel'd job's cgroup removed" no_cgroups_of "$jd"

echo "== the prolog finds bdockerd down"
stop_pid "$wpid"; wpid=
jf=$(submit "$u1" "$jobfile")
state=
# The execution daemon reports a failed prolog to the qmaster some 30 s later (its report
# interval); until then the job shows 'r'. Allow four times that.
for _ in $(seq 240); do state=$(qstat -u '*' | awk -v j="$jf" '$1 == j {print $5}'); [[ $state == *E* ]] && break; sleep 0.5; done
check "job $jf is in job error state (got '$state')" test "$state" = Eqw
check "queue not in error state" queue_clean
qdel "$jf" >/dev/null 2>&1; wait_gone "$jf" 30
start_working
check "no token file left" test ! -e "$h1/.bdocker_token_$jf"
check "no cgroup left" no_cgroups_of "$jf"
check "no record for a job that never ran" test "$(acct_count "$jf")" = 0
check "every stored record has its line in the accounting file" test "$(acct_query 'SELECT count(*) FROM not_in_file')" = 0
check "the accounting file holds one line per stored record" \
    test "$(grep -vc '^#' "$work/bdocker_accounting")" = "$(acct_query 'SELECT count(*) FROM records')"

rm -rf "$h1"/e2e-* "$h2"/e2e-*
echo "e2e: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
