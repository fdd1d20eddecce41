#!/usr/bin/env bash
# tools/e2e-slurm.sh — bdocker the way a Slurm site runs it: a real slurmd calls the shipped
# etc/slurm/prolog.sh, epilog.sh and taskprolog.sh, real users submit jobs (sbatch, arrays,
# srun steps) that run containers, and qacct reads what the containers used from the same
# SGE-format accounting file Grid Engine jobs go to. Root; prints "N passed, M failed".
#
#   tools/e2e-slurm.sh [BIN_DIR]     (default: the debug build's bin path)
#
# It keeps to its own: daemons on ports 5310/5311 with state in /run/bdocker-e2e-slurm, cgroups
# under /bdocker-e2e-slurm (removed at exit), and the scripts under test copied there with their
# site file (/etc/default/bdocker in a real install) pointed at the run's own, so that a Grid
# Engine run's site file is never touched. Slurm is brought up with tools/slurm.sh and stopped
# again only if this run started it. The test environment (tools/test-env.sh) must be up, or is
# brought up.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[[ $(id -u) -eq 0 ]] || { echo "e2e-slurm: run as root" >&2; exit 1; }
export PATH="/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin"
bin=${1:-$(swift build --show-bin-path)}
[[ -x $bin/bdockerd && -x $bin/bdocker ]] || { echo "e2e-slurm: no bdocker binaries in $bin (swift build first)" >&2; exit 1; }

passed=0 failed=0
check() { # DESCRIPTION COMMAND... — one test assertion
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}

if [[ ! -r /run/bdocker-test/env ]]; then tools/test-env.sh up >/dev/null || exit 1; fi
# shellcheck disable=SC1091
. /run/bdocker-test/env
read -r u1 u2 <<<"$BDOCKER_TEST_USERS"
# shellcheck source=tools/lib/daemon-configs.sh
. tools/lib/daemon-configs.sh

parent=/bdocker-e2e-slurm
# This run's cgroups only (an earlier run's, killed before its exit handler): tasks back to the
# hierarchy's root, directories removed deepest first.
remove_own_cgroups() {
    local h dir pid from
    for h in /sys/fs/cgroup/*/; do
        [[ -d $h${parent#/} && ! -L ${h%/} ]] || continue
        from=tasks   # v1 moves threads; the v2 hierarchy Docker also uses moves processes
        [[ -e ${h}tasks ]] || from=cgroup.procs
        while IFS= read -r dir; do
            while read -r pid; do echo "$pid" >>"$h$from" 2>/dev/null || true; done <"$dir/$from"
            rmdir "$dir" 2>/dev/null || true
        done < <(find "$h${parent#/}" -depth -type d)
    done
}
remove_own_cgroups

work=/run/bdocker-e2e-slurm
# Never follow a bind mount (a pinned HOME directory) out of the work directory.
rm -rf --one-file-system "$work"; mkdir -p "$work"; chmod 755 "$work"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/admin_token"; chmod 600 "$work/admin_token"
write_daemon_configs "$work" "$work/state/working.sqlite" "$work/accounting.sqlite" "$work/bdocker_accounting" "$parent" 5310 5311
sed -i 's/^controller = SGEWNController$/controller = SlurmWNController/' "$work/working.cfg"
grep -qx 'controller = SlurmWNController' "$work/working.cfg" || { echo "e2e-slurm: cannot select SlurmWNController" >&2; exit 1; }

# The scripts under test, reading this run's site file. It holds what a site's would, and the
# Slurm spool directory of this run.
scripts=$work/scripts
install -d -m 755 "$scripts"
printf 'BDOCKER_BIN=%s\nBDOCKER_CONF_FILE=%s\nBDOCKER_SLURM_SPOOL=%s\n' "$bin/bdocker" "$work/working.cfg" "$work/spool" >"$work/site"
chmod 644 "$work/site"
for s in prolog epilog taskprolog; do
    sed "s#^SITE=/etc/default/bdocker\$#SITE=$work/site#" "etc/slurm/$s.sh" >"$scripts/$s.sh"
    chmod 755 "$scripts/$s.sh"
    [[ $(grep -c "^SITE=$work/site\$" "$scripts/$s.sh") == 1 ]] || { echo "e2e-slurm: etc/slurm/$s.sh has no SITE= line to point" >&2; exit 1; }
done

wpid= apid=
start_working() { "$bin/bdockerd" --config "$work/working.cfg" 2>>"$work/working.log" & wpid=$!; wait_socket "$work/run/bdockerd.sock"; }
start_accounting() { "$bin/bdockerd" --config "$work/accounting.cfg" 2>>"$work/accounting.log" & apid=$!; wait_port 5311; }
wait_port() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/status" >/dev/null && return 0; sleep 0.1; done; return 1; }
wait_socket() { for _ in $(seq 100); do curl -sf --unix-socket "$1" http://bdockerd/status >/dev/null && return 0; sleep 0.1; done; return 1; }
stop_pid() { [[ -n $1 ]] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; true; }
finish() {
    [[ -n ${jobs_submitted:-} ]] && scancel $jobs_submitted >/dev/null 2>&1
    stop_pid "$wpid"; stop_pid "$apid"
    [[ ${slurm_started:-0} -eq 1 ]] && tools/slurm.sh down >/dev/null 2>&1
    remove_own_cgroups
    true
}
trap finish EXIT

start_accounting || { echo "e2e-slurm: accounting daemon did not start: $(tail -3 "$work/accounting.log")" >&2; exit 1; }
start_working || { echo "e2e-slurm: working daemon did not start: $(tail -3 "$work/working.log")" >&2; exit 1; }

slurm_started=0
tools/slurm.sh status >/dev/null 2>&1 || slurm_started=1
BDOCKER_SLURM_PROLOG=$scripts/prolog.sh BDOCKER_SLURM_EPILOG=$scripts/epilog.sh BDOCKER_SLURM_TASKPROLOG=$scripts/taskprolog.sh \
    tools/slurm.sh up >/dev/null || exit 1
# shellcheck disable=SC1091
. /run/bdocker-slurm/env
# qacct reads the accounting file; it comes with Grid Engine, which gridengine.sh installs.
if ! command -v qacct >/dev/null; then
    ge_started=0
    tools/gridengine.sh status >/dev/null 2>&1 || ge_started=1
    tools/gridengine.sh up >/dev/null || exit 1
    [[ $ge_started -eq 0 ]] || tools/gridengine.sh down >/dev/null 2>&1
fi

jobs_submitted=
submit() { # USER SBATCH-ARGS... → job id (the array job id for an array)
    local user=$1 id; shift
    id=$(su -s /bin/sh "$user" -c "cd ~ && sbatch --parsable --export=ALL,BDOCKER_BIN=$bin/bdocker,BDOCKER_CONF_FILE=$work/working.cfg,IMAGE=$BDOCKER_TEST_IMAGE $*" | cut -d';' -f1)
    jobs_submitted+=" $id"
    echo "$id"
}
wait_gone() { # JOB [SECONDS] — not pending, running or completing (its epilog has run)
    for _ in $(seq $((${2:-120} * 2))); do [[ -z $(squeue -h -j "$1" 2>/dev/null) ]] && return 0; sleep 0.5; done
    return 1
}
job_field() { # JOB FIELD → its value in scontrol show job (Slurm keeps finished jobs for MinJobAge)
    scontrol show job -o "$1" 2>/dev/null | head -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
# A job's accounting records, read through bdocker's own store and parser (bdocker-acct on the
# accounting daemon's database), never by field position in the line; the file itself by qacct.
acct_query() { "$bin/bdocker-acct" sql --database "$work/accounting.sqlite" --format csv "$1" 2>/dev/null | tail -n +2 | tr -d '\r'; }
acct_count() { acct_query "SELECT count(*) FROM records WHERE job_number = $1"; }
acct_field() { acct_query "SELECT $2 FROM records WHERE job_number = $1 ORDER BY task_number" | tr '\n' ' '; }
wait_record() { # JOB COUNT: stored, and every stored line in the file
    for _ in $(seq 40); do
        [[ $(acct_count "$1") -ge $2 && $(acct_query 'SELECT count(*) FROM not_in_file') == 0 ]] && return 0
        sleep 0.5
    done
    return 1
}
qacct_value() { # JOB FIELD → value (qacct -f on bdocker's file)
    qacct -f "$work/bdocker_accounting" -j "$1" 2>/dev/null | awk -v f="$2" '$1 == f {print $2; exit}' | sed 's/[A-Za-z]*$//'
}
no_cgroups_of() { ! ls -d /sys/fs/cgroup/*"$parent/$1"* >/dev/null 2>&1; }
no_containers_of() { [[ -z $(/usr/bin/docker -H "$BDOCKER_TEST_DOCKER_URL" ps -aq --filter "label=bdocker.job=$1") ]]; }
node_usable() { [[ $(sinfo -h -N -n "$BDOCKER_SLURM_HOST" -o %T | head -n 1) =~ ^(idle|mixed|allocated|completing)$ ]]; }
h1=$(getent passwd "$u1" | cut -d: -f6); h2=$(getent passwd "$u2" | cut -d: -f6)
# The jobs' output files (sbatch -o), written as their users: sticky, like /tmp.
out=$work/out
install -d -m 1777 "$out"

jobfile=$work/job.sh
cat >"$jobfile" <<'JOB'
#!/bin/sh
# A scientist's job: pull, a background container, a CPU-burning one writing into HOME, ps, cp,
# and a second step (srun) that lands in the same job tree as the batch script.
B=$BDOCKER_BIN
out=$HOME/e2e-slurm-$SLURM_JOB_ID
mkdir -p "$out"
grep -E '^[0-9]+:[^:]*cpuacct[^:]*:' /proc/$$/cgroup | cut -d: -f3 > "$out/batch-cgroup"
srun -n1 sh -c 'grep -E "^[0-9]+:[^:]*cpuacct[^:]*:" /proc/self/cgroup | cut -d: -f3' > "$out/step-cgroup" || exit 1
$B pull "$IMAGE" >/dev/null || exit 1
bg=$($B run -d "$IMAGE" sleep 300) || exit 1
$B run -v "$out:/out" "$IMAGE" sh -c 'while :; do read -r l < /proc/$$/stat; set -- $l; [ $(( ${14} + ${15} )) -ge 200 ] && break; done; echo burned > /out/result' || exit 1
srun -n1 $B ps -a -q > "$out/ps" || exit 1
$B cp "$bg:/etc/passwd" "$out/copied" || exit 1
echo "$bg" > "$out/bg"
JOB
chmod 755 "$jobfile"

echo "== two users, one job each, at once (two steps each)"
j1=$(submit "$u1" -J e2e-one -n1 -c1 --mem=500M -t 5 -o "$out/%j" "$jobfile")
j2=$(submit "$u2" -J e2e-two -n1 -c1 --mem=500M -t 5 -o "$out/%j" "$jobfile")
check "jobs submitted ($j1, $j2)" test -n "$j1" -a -n "$j2"
both=0
for _ in $(seq 120); do
    [[ $(squeue -h -t running -j "$j1,$j2" 2>/dev/null | wc -l) == 2 ]] && { both=1; break; }
    [[ -z $(squeue -h -j "$j1,$j2" 2>/dev/null) ]] && break
    sleep 0.5
done
check "both jobs ran at the same time" test "$both" = 1
wait_gone "$j1"; wait_gone "$j2"
check "job $j1 COMPLETED (got '$(job_field "$j1" JobState)' $(job_field "$j1" ExitCode))" test "$(job_field "$j1" JobState)" = COMPLETED
check "$u1's container wrote into HOME, owned by $u1" test "$(stat -c %U "$h1/e2e-slurm-$j1/result" 2>/dev/null)" = "$u1"
check "$u2's job copied a file out" test -s "$h2/e2e-slurm-$j2/copied"
check "the batch script ran in the job's COMMON cgroup" test "$(cat "$h1/e2e-slurm-$j1/batch-cgroup" 2>/dev/null)" = "$parent/$j1/COMMON"
check "an srun step ran in the same COMMON cgroup" test "$(cat "$h1/e2e-slurm-$j1/step-cgroup" 2>/dev/null)" = "$parent/$j1/COMMON"
check "$u1 sees its own containers only (from an srun step too)" test "$(wc -l <"$h1/e2e-slurm-$j1/ps" 2>/dev/null)" = 2
check "$u2 does not see $u1's container" bash -c "! grep -q \"\$(cut -c1-12 '$h1/e2e-slurm-$j1/bg')\" '$h2/e2e-slurm-$j2/ps'"
wait_record "$j1" 1; wait_record "$j2" 1
check "one accounting record for job $j1" test "$(acct_count "$j1")" = 1
check "one accounting record for job $j2" test "$(acct_count "$j2")" = 1
cpu=$(qacct_value "$j1" cpu)
check "qacct shows cpu >= 1.5 s for job $j1 (got ${cpu:-none})" awk -v c="${cpu:-0}" 'BEGIN {exit !(c >= 1.5)}'
qacct_is() { qacct -f "$work/bdocker_accounting" -j "$1" | grep -Eq "^$2 +$3 *\$"; }   # JOB FIELD VALUE
check "qacct shows owner $u1" qacct_is "$j1" owner "$u1"
check "qacct shows the partition as the queue ($BDOCKER_SLURM_PARTITION)" qacct_is "$j1" qname "$BDOCKER_SLURM_PARTITION"
check "qacct shows the job name and account" bash -c "$(declare -f qacct_is); work=$work; qacct_is $j2 jobname e2e-two && qacct_is $j2 account slurm"
check "bdocker-acct sums the partition's jobs" \
    bash -c "'$bin/bdocker-acct' summary --database '$work/accounting.sqlite' --queue $BDOCKER_SLURM_PARTITION --by queue | grep -q '^$BDOCKER_SLURM_PARTITION '"
check "no cgroup left for $j1 / $j2" bash -c "$(declare -f no_cgroups_of); parent=$parent; no_cgroups_of $j1 && no_cgroups_of $j2"
check "no container left for $j1 / $j2" bash -c "$(declare -f no_containers_of); BDOCKER_TEST_DOCKER_URL=$BDOCKER_TEST_DOCKER_URL; no_containers_of $j1 && no_containers_of $j2"
check "token files removed" bash -c "! ls $h1/.bdocker_token_$j1 $h2/.bdocker_token_$j2 2>/dev/null"
check "the prolog's spool directories removed" test -z "$(ls -A "$work/spool" 2>/dev/null)"

echo "== an array job of 3 tasks"
cat >"$work/array.sh" <<'JOB'
#!/bin/sh
$BDOCKER_BIN run "$IMAGE" sh -c "echo task $SLURM_ARRAY_TASK_ID" > "$HOME/e2e-slurm-$SLURM_ARRAY_JOB_ID.$SLURM_ARRAY_TASK_ID.out"
JOB
chmod 755 "$work/array.sh"
ja=$(submit "$u1" -a 1-3 -n1 -c1 --mem=200M -t 5 -o /dev/null "$work/array.sh")
wait_gone "$ja"; wait_record "$ja" 3
check "three records for array job $ja" test "$(acct_count "$ja")" = 3
check "tasks 1, 2, 3 each recorded once" test "$(acct_field "$ja" task_number)" = "1 2 3 "
check "each task ran its own container" grep -q 'task 3' "$h1/e2e-slurm-$ja.3.out"
check "qacct finds task 2 of job $ja" bash -c "qacct -f '$work/bdocker_accounting' -j $ja -t 2 | grep -Eq '^taskid +2 *\$'"

echo "== --mem=40M: the monitor kills a job whose containers use more"
cat >"$work/fat.sh" <<'JOB'
#!/bin/sh
# Each container keeps 30 MB in its /dev/shm (charged to its cgroup), under its own 40 MB limit;
# together they are over the job's.
$BDOCKER_BIN run -d "$IMAGE" sh -c 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=30 2>/dev/null; sleep 300' >/dev/null
$BDOCKER_BIN run -d "$IMAGE" sh -c 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=30 2>/dev/null; sleep 300' >/dev/null
sleep 300
JOB
chmod 755 "$work/fat.sh"
jk=$(submit "$u1" -n1 -c1 --mem=40M -t 5 -o /dev/null "$work/fat.sh")
check "killed job $jk ended within 90 s" wait_gone "$jk" 90
wait_record "$jk" 1
check "record shows failed 37" test "$(acct_field "$jk" failed)" = "37 "
check "record shows exit_status 137" test "$(acct_field "$jk" exit_status)" = "137 "
check "Slurm sees job $jk FAILED by signal 9 (got $(job_field "$jk" JobState) $(job_field "$jk" ExitCode))" \
    test "$(job_field "$jk" JobState) $(job_field "$jk" ExitCode)" = "FAILED 0:9"
check "node not drained" node_usable
jn=$(submit "$u2" -n1 -c1 --mem=200M -t 5 -o /dev/null "$work/array.sh")
check "the node still runs jobs" wait_gone "$jn" 60
check "... and the job after the kill COMPLETED" test "$(job_field "$jn" JobState)" = COMPLETED

echo "== scancel of a running job"
cat >"$work/long.sh" <<'JOB'
#!/bin/sh
$BDOCKER_BIN run -d "$IMAGE" sleep 300 > "$HOME/e2e-slurm-$SLURM_JOB_ID.started"
sleep 300
JOB
chmod 755 "$work/long.sh"
jd=$(submit "$u2" -n1 -c1 --mem=200M -t 5 -o /dev/null "$work/long.sh")
for _ in $(seq 120); do [[ -s $h2/e2e-slurm-$jd.started ]] && break; sleep 0.5; done
check "job $jd started its container" test -s "$h2/e2e-slurm-$jd.started"
scancel "$jd"
wait_gone "$jd" 60
wait_record "$jd" 1
check "scancel'd job is CANCELLED (got $(job_field "$jd" JobState))" test "$(job_field "$jd" JobState)" = CANCELLED
check "scancel'd job still has exactly one record" test "$(acct_count "$jd")" = 1
check "scancel'd job's container removed" no_containers_of "$jd"
check "scancel'd job's cgroup removed" no_cgroups_of "$jd"

echo "== slurmd's prolog finds bdockerd down"
stop_pid "$wpid"; wpid=
jf=$(submit "$u1" -n1 -c1 --mem=200M -t 5 -o "$out/%j" "$jobfile")
# The TaskProlog fails the job (its output says so); the epilog then retries clean while
# bdockerd is down, and finds nothing to clean once it is back.
for _ in $(seq 120); do grep -qs 'bdocker join failed' "$out/$jf" && break; sleep 0.5; done
check "the job's output says why it did not start (the prolog's reason)" \
    grep -q 'not set up: bdocker configure failed: cannot reach bdockerd' "$out/$jf"
start_working
wait_gone "$jf" 60
state="$(job_field "$jf" JobState) $(job_field "$jf" ExitCode)"
check "job $jf FAILED with exit code 100 (got $state)" test "$state" = "FAILED 100:0"
check "node not drained (a failed prolog fails only the job)" node_usable
check "no token file left" test ! -e "$h1/.bdocker_token_$jf"
check "no cgroup left" no_cgroups_of "$jf"
check "no record for a job that never ran" test "$(acct_count "$jf")" = 0
jo=$(submit "$u1" -n1 -c1 --mem=200M -t 5 -o /dev/null "$work/array.sh")
wait_gone "$jo" 60
check "with bdockerd back, the next job COMPLETED" test "$(job_field "$jo" JobState)" = COMPLETED
check "every stored record has its line in the accounting file" test "$(acct_query 'SELECT count(*) FROM not_in_file')" = 0
check "the accounting file holds one line per stored record" \
    test "$(grep -vc '^#' "$work/bdocker_accounting")" = "$(acct_query 'SELECT count(*) FROM records')"

jobs_submitted=
rm -rf "$h1"/e2e-slurm-* "$h2"/e2e-slurm-*
echo "e2e-slurm: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
