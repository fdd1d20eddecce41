#!/usr/bin/env bash
# tools/soak.sh — crash soak of both daemons. Jobs go through configure / pull / run / clean the
# way the prolog, the job and the epilog drive them (root for configure and clean, the test users
# for the rest, each job with an SGE spool directory and a live "shepherd" process), a few at a
# time, while a loop kill -9s the working daemon and the accounting daemon at random moments and
# a supervisor restarts them. In the middle the accounting daemon stays down for --down-seconds.
# Then, without kills, the accounting file's filesystem (a small tmpfs) is filled: the last jobs'
# records must be answered 503, kept, and written once each when the space returns.
#
# At the end there must be exactly one record per job in the store and one line per job in the
# file (no duplicate, no torn line, the file equal to `bdocker-acct export`), every record
# delivered once by the working node, and nothing left: no cgroup, container, staging mount or
# token file. Prints the counts, then "soak: N passed, M failed"; exit 0 only if all passed.
#
#   tools/soak.sh [--short] [--jobs N] [--containers N] [--down-seconds S] [--parallel P]
#                 [--disk-full-jobs D] [--logs DIR] [BIN_DIR]
#
#   defaults: 100 jobs, 3 containers each, 60 s accounting outage, 4 jobs at a time, the last 5
#   jobs in the disk-full phase (which runs them one at a time). --short: 10 jobs, 2 containers,
#   10 s, 3 at a time, 2 disk-full jobs (under a minute here). --logs DIR keeps the daemons' logs and the failed attempts there.
#   BIN_DIR holds bdockerd, bdocker and bdocker-acct (default: `swift build --show-bin-path`).
#
# Root. Uses the test environment (tools/test-env.sh up: private Docker engine, registry, users);
# touches only what it makes: cgroup parent /bdocker-soak-<pid>, a work directory under /tmp,
# its mounts, containers labelled with its jobs, processes it started (by pid).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH="/opt/swift/usr/bin:$PATH:/usr/sbin:/sbin"

usage() { sed -n '/^#   tools\/soak.sh/,/^#   BIN_DIR/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
jobs=100 containers=3 down=60 parallel=4 diskfull=5 logs= bin=
while (($#)); do
    case $1 in
    --short) jobs=10 containers=2 down=10 parallel=3 diskfull=2 ;;
    --jobs) jobs=${2:?}; shift ;;
    --containers) containers=${2:?}; shift ;;
    --down-seconds) down=${2:?}; shift ;;
    --parallel) parallel=${2:?}; shift ;;
    --disk-full-jobs) diskfull=${2:?}; shift ;;
    --logs) logs=${2:?}; shift ;;
    -h | --help) usage ;;
    -*) echo "soak: unknown option $1" >&2; usage ;;
    *) bin=$1 ;;
    esac
    shift
done
for n in "$jobs" "$containers" "$down" "$parallel" "$diskfull"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "soak: '$n' is not a whole number" >&2; exit 2; }
done
((jobs >= 2 && parallel >= 1 && diskfull >= 1 && diskfull < jobs)) ||
    { echo "soak: need at least 2 jobs, 1 at a time, and 1 to $((jobs - 1)) disk-full jobs" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "soak: run as root" >&2; exit 1; }
bin=${bin:-$(swift build --show-bin-path)}
bin=${bin%/}
for b in bdockerd bdocker bdocker-acct; do
    [[ -x $bin/$b ]] || { echo "soak: no $b in $bin (swift build first)" >&2; exit 1; }
done

if ! out=$(tools/test-env.sh up 2>&1); then echo "$out" >&2; exit 1; fi
# shellcheck disable=SC1091
. /run/bdocker-test/env
read -ra users <<<"$BDOCKER_TEST_USERS"
docker_cli() { /usr/bin/docker -H "$BDOCKER_TEST_DOCKER_URL" "$@"; }
# shellcheck source=tools/lib/leftovers.sh
. tools/lib/leftovers.sh   # leftovers_remove_cgroup_tree, leftovers_mounts_under
# shellcheck source=tools/lib/daemon-configs.sh
. tools/lib/daemon-configs.sh

t0=$(date +%s)
work=$(mktemp -d /tmp/bdocker-soak-$$.XXXXXX) || exit 1
chmod 755 "$work"   # the users reach the socket and read the config through it
ctl=$work/ctl
mkdir -p "$ctl" "$work/spool" "$work/done" "$work/jobs" "$work/shepherds" "$work/acct"
parent=bdocker-soak-$$
mainjobs=$((jobs - diskfull))
# Job numbers of this soak only (SGE-like whole numbers; other runs use others).
jobbase=$((700000000 + ($$ % 100000) * 1000))
job_number() { echo $((jobbase + $1)); }
owner_of() { echo "${users[$(($1 % ${#users[@]}))]}"; }
home_of() { getent passwd "$1" | cut -d: -f6; }

free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]] && { echo "$p"; return 0; }
    done
    return 1
}
aport=$(free_port) || { echo "soak: no free port" >&2; exit 1; }

# The accounting file lives alone on a small tmpfs, so the disk-full phase can fill it.
acctfs=$work/acct
mount -t tmpfs -o size=512k,mode=0755 "soak-$$" "$acctfs" || { echo "soak: cannot mount a tmpfs on $acctfs" >&2; exit 1; }
acctfile=$acctfs/bdocker_accounting
acctdb=$work/astate/accounting.sqlite
sock=$work/run/bdockerd.sock

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/admin_token"; chmod 600 "$work/admin_token"
write_daemon_configs "$work" "$work/wstate/working.sqlite" "$acctdb" "$acctfile" "/$parent" "$(free_port)" "$aport"

# ---------------------------------------------------------------------------------------------
# Daemons: each runs under a supervisor that restarts it whenever it dies (the kill loop's
# kill -9), unless $ctl/hold-<name> exists (the accounting outage) or $ctl/stop (the end).
# The daemon's pid is in $ctl/<name>.pid; every exit is logged in $ctl/<name>.exits.
supervise() { # NAME CONFIG
    local name=$1 cfg=$2 pid rc
    while [[ ! -e $ctl/stop ]]; do
        while [[ -e $ctl/hold-$name && ! -e $ctl/stop ]]; do sleep 0.1; done
        [[ -e $ctl/stop ]] && break
        "$bin/bdockerd" --config "$cfg" 2>>"$work/$name.log" &
        pid=$!
        echo "$pid" >"$ctl/$name.pid"
        wait "$pid"
        rc=$?
        echo "$pid $rc $(date +%s.%N)" >>"$ctl/$name.exits"
        # A daemon that stops by itself (not our kill -9) must not spin: wait a little.
        ((rc == 137)) || sleep 0.5
    done
}
daemon_pid() { # NAME → pid of the running daemon, if it is one
    local pid
    pid=$(cat "$ctl/$1.pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q "^$bin/bdockerd " && echo "$pid"
}
is_up() { # NAME
    case $1 in
    working) curl -sf --max-time 5 --unix-socket "$sock" http://bdockerd/status >/dev/null ;;
    accounting) curl -sf --max-time 5 "http://127.0.0.1:$aport/status" >/dev/null ;;
    esac
}
wait_up() { # NAME [SECONDS]
    local i
    for i in $(seq $((${2:-30} * 10))); do is_up "$1" && return 0; sleep 0.1; done
    return 1
}
kill_daemon() { # NAME COUNTER: kill -9 the running daemon; one line in $ctl/COUNTER
    local pid
    pid=$(daemon_pid "$1") || return 1
    kill -9 "$pid" 2>/dev/null && echo "$1 $pid $(date +%s.%N)" >>"$ctl/$2"
}

# The kill loop: at random intervals (0.2-2 s) kill -9 one of the two daemons, until
# $ctl/stop-kills exists.
kill_loop() {
    local victim
    while [[ ! -e $ctl/stop-kills ]]; do
        sleep "$((RANDOM % 10 / 5)).$((RANDOM % 10))"   # 0.0-1.9 s ...
        sleep 0.2                                     # ... + 0.2 s
        [[ -e $ctl/stop-kills ]] && break
        if ((RANDOM % 2)) && [[ ! -e $ctl/hold-accounting ]]; then victim=accounting; else victim=working; fi
        kill_daemon "$victim" kills
    done
}

# The accounting outage: once half of the main phase's jobs are done, kill -9 the accounting
# daemon and keep it down for $down seconds while jobs go on being cleaned.
outage() {
    local done_before pid
    while (($(ls "$work/done" | wc -l) < mainjobs / 2)); do sleep 0.2; done
    touch "$ctl/hold-accounting"
    # The supervisor may be restarting it right now: kill until it stays down.
    for _ in $(seq 10); do kill_daemon accounting outage-kills; sleep 0.1; done
    done_before=$(ls "$work/done" | wc -l)
    echo "$(date +%s) start $done_before" >"$ctl/outage"
    sleep "$down"
    if is_up accounting; then echo up >>"$ctl/outage-violations"; fi
    echo "$(date +%s) end $(ls "$work/done" | wc -l)" >>"$ctl/outage"
    rm -f "$ctl/hold-accounting"
}

# ---------------------------------------------------------------------------------------------
# One job, as Grid Engine runs it: a shepherd process and a spool directory, the prolog
# (bdocker configure as root), the job (pull, containers: attached `echo x` and detached
# `sleep` with a bind of a HOME directory, left running), the epilog (bdocker clean as root).
# Every step is retried until it succeeds, as a retried prolog/epilog and a retrying job would;
# each failed attempt is one line in $work/attempts (job, step, class, message).
note_failure() { # JOB STEP MESSAGE
    local class=down msg=${3//$'\n'/ }
    # The daemon was down, restarting, or died during the call.
    [[ $msg =~ cannot\ reach\ bdockerd|reading\ the\ reply|was\ cut\ off|connection|Connection|EOF|closed|reset ]] || class=other
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$class" "${msg:0:300}" >>"$work/attempts"
}
as_root() { # JOB USER bdocker-args... (what the prolog/epilog run: env -i, HOME=/root)
    local job=$1 user=$2; shift 2
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root USER="$user" JOB_ID="$job" \
        SGE_TASK_ID=undefined SGE_JOB_SPOOL_DIR="$work/spool/$job" "$bin/bdocker" "$@" --config "$work/working.cfg"
}
as_user() { # JOB USER bdocker-args...
    local job=$1 user=$2; shift 2
    setpriv --reuid="$user" --regid="$user" --init-groups env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
        HOME="$(home_of "$user")" USER="$user" JOB_ID="$job" SGE_TASK_ID=undefined \
        BDOCKER_CONF_FILE="$work/working.cfg" "$bin/bdocker" "$@"
}
step_deadline=600   # seconds one step may keep failing before the job gives it up

drive_job() { # INDEX [JOB_NAME]
    local i=$1 job user home spool shepherd out rc c tries start configured=0 name=${2:-soak-$1}
    job=$(job_number "$i"); user=$(owner_of "$i"); home=$(home_of "$user"); spool=$work/spool/$job
    exec >>"$work/jobs/$job.log" 2>&1
    mkdir -p "$spool"
    sleep 100000 &   # the shepherd: alive from prolog to epilog, moved into the job's COMMON cgroup
    shepherd=$!
    echo "$shepherd" >"$work/shepherds/$job"
    echo "$shepherd" >"$spool/pid"
    printf 'job_id=%s\njob_owner=%s\njob_name=%s\nqueue=soak.q\nhost=%s\naccount=soak\nsubmission_time=%s\n' \
        "$job" "$user" "$name" "$(hostname)" "$(date +%s)" >"$spool/config"

    # Prolog. A configure whose reply was lost (daemon killed after its commit) is found
    # "already configured" on retry: the prolog fails, the job does not run, the epilog cleans.
    tries=0 start=$SECONDS
    while :; do
        tries=$((tries + 1))
        if out=$(as_root "$job" "$user" configure 2>&1); then configured=1; break; fi
        if [[ $out == *"is already configured on this node"* ]]; then
            if ((tries > 1)); then echo "$job" >>"$ctl/prolog-lost-reply"; else note_failure "$job" configure "$out"; fi
            break
        fi
        note_failure "$job" configure "$out"
        ((SECONDS - start < step_deadline)) || { echo "$job configure" >>"$ctl/gave-up"; break; }
        sleep 0.3
    done

    # The job.
    if ((configured)); then
        setpriv --reuid="$user" --regid="$user" --init-groups mkdir -p "$home/soak-$job"
        retry_user "$job" "$user" pull "$BDOCKER_TEST_IMAGE"
        for c in $(seq "$containers"); do
            if ((c % 2)); then
                retry_user "$job" "$user" run "$BDOCKER_TEST_IMAGE" sh -c 'echo x'
            else
                retry_user "$job" "$user" run -d -v "$home/soak-$job:/out" "$BDOCKER_TEST_IMAGE" sleep 100000
            fi
        done
    fi

    # Epilog. A clean whose reply was lost is found "not configured" on retry: done.
    tries=0 start=$SECONDS
    while :; do
        tries=$((tries + 1))
        if out=$(as_root "$job" "$user" clean 2>&1); then break; fi
        if [[ $out == *"is not configured on this node"* ]]; then
            ((tries > 1)) && echo "$job" >>"$ctl/epilog-lost-reply" || note_failure "$job" clean "$out"
            break
        fi
        note_failure "$job" clean "$out"
        ((SECONDS - start < step_deadline)) || { echo "$job clean" >>"$ctl/gave-up"; break; }
        sleep 0.3
    done
    kill "$shepherd" 2>/dev/null; wait "$shepherd" 2>/dev/null
    touch "$work/done/$job"
}
retry_user() { # JOB USER bdocker-args...: until it succeeds (an attached `echo x` must print x)
    local job=$1 user=$2 out start=$SECONDS
    while :; do
        if out=$(as_user "$@" 2>&1) && { [[ $3 != run || $4 == -d ]] || [[ $out == x ]]; }; then return 0; fi
        note_failure "$job" "$3" "${out:-no output}"
        ((SECONDS - start < step_deadline)) || { echo "$job $3" >>"$ctl/gave-up"; return 1; }
        sleep 0.3
    done
}

run_jobs() { # FIRST LAST [JOB_NAME]: jobs FIRST..LAST, $parallel at a time
    local i pids=() p started=0 before
    before=$(ls "$work/done" | wc -l)
    for i in $(seq "$1" "$2"); do
        while ((started - ($(ls "$work/done" | wc -l) - before) >= parallel)); do sleep 0.2; done
        drive_job "$i" ${3:+"$3"} &
        pids+=($!)
        started=$((started + 1))
    done
    # Each job marks itself done last (bash may already have forgotten an early pid's status).
    while (($(ls "$work/done" | wc -l) - before < started)); do sleep 0.2; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
}

# ---------------------------------------------------------------------------------------------
# Reading the results.
acct_sql() { "$bin/bdocker-acct" sql --database "$acctdb" --format csv "$1" 2>>"$work/acct-sql.err" | tail -n +2 | tr -d '\r'; }
notify() { # → the outbox summary JSON of the working node
    curl -s --max-time 120 -X PUT --unix-socket "$sock" http://bdockerd/notify_accounting
}
outbox_count() { # JSON STATE
    sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" <<<"$1"
}
file_lines() { # complete (newline-terminated) record lines; a torn last line is not one
    [[ -f $acctfile ]] || { echo 0; return; }
    echo $(($(tr -cd '\n' <"$acctfile" | wc -c) - $(grep -c '^#' "$acctfile")))
}
# Waits until the store has COUNT records, all of them in the file, and nothing is pending.
deliver_all() { # COUNT SECONDS
    local s
    for _ in $(seq "$2"); do
        s=$(notify)
        [[ $(outbox_count "$s" pending) == 0 && $(acct_sql "SELECT count(*) FROM records") == "$1" &&
            $(acct_sql "SELECT count(*) FROM not_in_file") == 0 ]] && return 0
        sleep 1
    done
    return 1
}
soak_containers() { # ids of containers on the test engine labelled with one of this soak's jobs
    docker_cli ps -a --filter label=bdocker.job --format '{{.ID}} {{.Label "bdocker.job"}}' 2>/dev/null |
        awk -v lo="$jobbase" -v hi="$((jobbase + jobs))" '$2 > lo && $2 <= hi {print $1}'
}
soak_cgroups() { # directories left under the soak's cgroup parent, in every hierarchy
    find /sys/fs/cgroup/*/"$parent" -mindepth 1 -type d 2>/dev/null
}
soak_tokens() {
    local i
    for i in $(seq "$jobs"); do
        ls "$(home_of "$(owner_of "$i")")/.bdocker_token_$(job_number "$i")" 2>/dev/null
    done
}

# ---------------------------------------------------------------------------------------------
# Exit: stop everything started here (by pid), remove everything made here. Never changes the
# exit status.
kill_loop_pid= outage_pid= wsup= asup=
finish() {
    local rc=$? p i h
    set +e
    trap - EXIT INT TERM
    touch "$ctl/stop" "$ctl/stop-kills" 2>/dev/null
    for p in $kill_loop_pid $outage_pid; do kill "$p" 2>/dev/null; done
    for p in $(jobs -p); do [[ $p == "$wsup" || $p == "$asup" ]] || kill "$p" 2>/dev/null; done
    for p in "$work"/shepherds/*; do [[ -f $p ]] && kill "$(cat "$p")" 2>/dev/null; done
    # The supervisors exit once their daemon has stopped.
    for i in $(seq 100); do
        for p in working accounting; do
            h=$(daemon_pid "$p") && kill "$( ((i < 80)) && echo -TERM || echo -KILL)" "$h" 2>/dev/null
        done
        [[ -z $wsup$asup ]] && break
        kill -0 "$wsup" 2>/dev/null || kill -0 "$asup" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -n $logs ]]; then
        mkdir -p "$logs" && cp -p "$work"/*.log "$work"/attempts "$acctfile" "$logs/" 2>/dev/null
        cp -rp "$ctl" "$work/jobs" "$logs/" 2>/dev/null
    fi
    local ids
    ids=$(soak_containers)
    [[ -z $ids ]] || docker_cli rm -f $ids >/dev/null 2>&1
    while read -r p; do [[ -n $p ]] && umount -l "$p" 2>/dev/null; done < <(leftovers_mounts_under "$work")
    for h in /sys/fs/cgroup/*/; do
        h=${h%/}
        [[ -d $h/$parent ]] && leftovers_remove_cgroup_tree "$h" "$h/$parent" 2>/dev/null
    done
    for i in $(seq "$jobs"); do
        h=$(home_of "$(owner_of "$i")")
        rm -f "$h/.bdocker_token_$(job_number "$i")"
        rm -rf --one-file-system "$h/soak-$(job_number "$i")"
    done
    [[ -z $(leftovers_mounts_under "$work") ]] && rm -rf --one-file-system "$work"
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0 failed=0
check() { # DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}
eq() { [[ $1 == "$2" ]]; }
count_lines() { [[ -s $1 ]] && wc -l <"$1" || echo 0; }

echo "soak: $jobs jobs x $containers containers, $parallel at a time; accounting down ${down}s mid-run;" \
    "last $diskfull jobs with the accounting file's filesystem full (work $work, cgroup /$parent, port $aport)"

# (bash's "Killed" notices go to the supervisors' own log)
supervise accounting "$work/accounting.cfg" 2>>"$ctl/supervise.log" &
asup=$!
supervise working "$work/working.cfg" 2>>"$ctl/supervise.log" &
wsup=$!
wait_up accounting || { echo "soak: the accounting daemon did not start: $(tail -3 "$work/accounting.log")" >&2; exit 1; }
wait_up working || { echo "soak: the working daemon did not start: $(tail -3 "$work/working.log")" >&2; exit 1; }

# == Phase 1: jobs under kill -9, with the accounting outage in the middle.
kill_loop &
kill_loop_pid=$!
outage &
outage_pid=$!
run_jobs 1 "$mainjobs"
wait "$outage_pid"; outage_pid=
touch "$ctl/stop-kills"
wait "$kill_loop_pid"; kill_loop_pid=
t1=$(date +%s)
echo "soak: phase 1 ($mainjobs jobs under kill -9) took $((t1 - t0)) s"

both_up() { wait_up working && wait_up accounting; }
check "both daemons run again after the last kill" both_up
check "all $mainjobs records of phase 1 delivered, in the store and in the file" deliver_all "$mainjobs" 120

# == Phase 2: the accounting file's filesystem full (no kills).
dd if=/dev/zero of="$acctfs/filler" bs=4096 2>/dev/null   # until ENOSPC
size_full=$(stat -c %s "$acctfile")
lines_full=$(file_lines)
echo "soak: $acctfs full ($(df --output=avail -B1 "$acctfs" | tail -1 | tr -d ' ') bytes free); the accounting file has $lines_full lines, $size_full bytes"
# Each of these jobs' lines is longer than a page, so none fits in the slack of the file's last
# page: every append must meet the full filesystem.
long_name=soak-diskfull-$(head -c 4200 /dev/zero | tr '\0' x)
# One at a time, so what each job is answered does not depend on which of two concurrent cleans
# reaches the accounting daemon first (see the pending check below).
parallel=1 run_jobs "$((mainjobs + 1))" "$jobs" "$long_name"
summary=$(notify)
sleep 1
summary=$(notify)
pending_full=$(outbox_count "$summary" pending)
stored_full=$(acct_sql "SELECT count(*) FROM records")
unwritten_full=$(acct_sql "SELECT count(*) FROM not_in_file")
resend() { # → HTTP status of sending a stored record not yet in the file to the accounting daemon again
    local line
    line=$(acct_sql "SELECT line FROM records WHERE appended_at IS NULL ORDER BY id LIMIT 1")
    printf '{"admin_token":"%s","accounting":"%s"}' "$(cat "$work/admin_token")" "$(sed 's/[\\"]/\\&/g' <<<"$line")" |
        curl -s --max-time 60 -o "$work/probe.json" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
            --data-binary @- "http://127.0.0.1:$aport/set_accounting"
}
probe=$(resend)
size_after=$(stat -c %s "$acctfile")
echo "soak: full: outbox pending $pending_full, store $stored_full records ($unwritten_full not in the file)," \
    "file $(file_lines) lines + $((size_after - size_full)) bytes of a partial line; a resend answers $probe: $(cut -c1-160 "$work/probe.json")"
check "full disk: the accounting daemon answers 503 (got $probe)" eq "$probe" 503
# The store is the truth: the first record after the disk filled is committed and acknowledged
# before its append meets the full disk; every later one (the jobs ran one at a time, so each
# arrives after that append failed) is answered 503 and stays pending.
check "full disk: the records after the first are answered 503 and stay pending (want $((diskfull - 1)), got ${pending_full:-?})" \
    eq "${pending_full:-?}" "$((diskfull - 1))"
check "full disk: the $diskfull records are stored but not in the file (got ${unwritten_full:-?})" eq "$unwritten_full" "$diskfull"
check "full disk: the store keeps all $jobs records (got $stored_full)" eq "$stored_full" "$jobs"
check "full disk: no new complete line in the file" eq "$(file_lines)" "$lines_full"
check "full disk: the daemon logged the failed appends" grep -q "No space left on device" "$work/accounting.log"
# The accounting daemon restarted while the disk is still full must come back and answer 503.
kill_daemon accounting kills-full
restarted=no; wait_up accounting 15 && restarted=yes
probe2=$(resend)
echo "soak: full: after kill -9 the accounting daemon is up again: $restarted; a resend answers $probe2$(
    [[ $restarted == yes ]] || echo "; its log: $(grep -v HummingbirdCore "$work/accounting.log" | tail -1 | cut -c1-300)")"
check "full disk: the accounting daemon restarts while the disk is full" eq "$restarted" yes
check "full disk: after the restart it answers 503 again (got $probe2)" eq "$probe2" 503

rm -f "$acctfs/filler"
check "space back: every record delivered and written" deliver_all "$jobs" 60
t2=$(date +%s)

# == The end state.
summary=$(notify)
records=$(acct_sql "SELECT count(*) FROM records")
distinct=$(acct_sql "SELECT count(DISTINCT job_number) FROM records")
ours=$(acct_sql "SELECT count(*) FROM records WHERE job_number > $jobbase AND job_number <= $((jobbase + jobs))")
unwritten=$(acct_sql "SELECT count(*) FROM not_in_file")
lines=$(file_lines)
dup_lines=$(grep -v '^#' "$acctfile" | sort | uniq -d | wc -l)
dup_jobs=$(grep -v '^#' "$acctfile" | cut -d: -f6 | sort | uniq -d | wc -l)
bad_fields=$(grep -v '^#' "$acctfile" | awk -F: 'NF != 45' | wc -l)
torn=0; [[ -s $acctfile && $(tail -c 1 "$acctfile" | od -An -c | tr -d ' ') != '\n' ]] && torn=1
"$bin/bdocker-acct" export --database "$acctdb" -o "$work/export" 2>>"$work/acct-sql.err"
same_export=no; cmp -s "$work/export" "$acctfile" && same_export=yes
delivered=$(outbox_count "$summary" delivered) pending=$(outbox_count "$summary" pending) rejected=$(outbox_count "$summary" rejected)
left_cgroups=$(soak_cgroups | wc -l)
left_containers=$(soak_containers | wc -l)
left_container_list=$(docker_cli ps -a --filter label=bdocker.job --format '{{.ID}} job {{.Label "bdocker.job"}} {{.Status}}, created {{.CreatedAt}}' 2>/dev/null |
    awk -v lo="$jobbase" -v hi="$((jobbase + jobs))" '$3 > lo && $3 <= hi')
left_mounts=$(leftovers_mounts_under "$work/binds" | wc -l)
left_tokens=$(soak_tokens | wc -l)
left_configured=$(sqlite3 2>/dev/null "file:$work/wstate/working.sqlite?mode=ro" "SELECT count(*) FROM jobs WHERE state = 'configured'" || echo '?')
kills_w=$(cat "$ctl/kills" 2>/dev/null | grep -c '^working')
kills_a=$(cat "$ctl/kills" 2>/dev/null | grep -c '^accounting')
own_exits() { awk '$2 != 137' "$ctl/$1.exits" 2>/dev/null | wc -l; }   # exits not by kill -9 (the last is the stop at exit)
read -r o_start o_what o_done0 < <(head -1 "$ctl/outage" 2>/dev/null) || true
read -r o_end o_what2 o_done1 < <(sed -n 2p "$ctl/outage" 2>/dev/null) || true
down_failures=$(awk -F'\t' '$3 == "down"' "$work/attempts" 2>/dev/null | wc -l)
other_failures=$(awk -F'\t' '$3 == "other"' "$work/attempts" 2>/dev/null | wc -l)

echo "soak: counts"
echo "  records in store      $records (distinct jobs $distinct, this soak's $ours; not in file $unwritten)"
echo "  lines in file         $lines (duplicate lines $dup_lines, duplicate jobs $dup_jobs, not 45 fields $bad_fields, torn last line $torn; file = bdocker-acct export: $same_export)"
echo "  working node outbox   delivered $delivered, pending $pending, rejected $rejected"
echo "  leftovers             cgroups $left_cgroups, containers $left_containers, staging mounts $left_mounts, token files $left_tokens, jobs still configured $left_configured"
[[ -z $left_container_list ]] || sed 's/^/    container left: /' <<<"$left_container_list"
echo "  kills (kill -9)       working $kills_w, accounting $kills_a, + accounting outage ${down}s (jobs done $o_done0 -> $o_done1 while down)"
echo "  daemon restarts       working $(count_lines "$ctl/working.exits"), accounting $(count_lines "$ctl/accounting.exits"); exits not by our kill -9: working $(own_exits working), accounting $(own_exits accounting)"
echo "  failed attempts       $down_failures while a daemon was down or died, $other_failures other; prolog failed after a lost configure reply: $(count_lines "$ctl/prolog-lost-reply"), clean reply lost: $(count_lines "$ctl/epilog-lost-reply"); steps given up: $(count_lines "$ctl/gave-up")"
if ((other_failures)); then
    echo "  other failures (job, step, message; numbers and ids elided):"
    awk -F'\t' '$3 == "other" {print $2 ": " $4}' "$work/attempts" |
        sed -E 's/[0-9a-f]{12,}/ID/g; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -10 | sed 's/^/    /'
fi
echo "  time                  phase 1 $((t1 - t0)) s, disk full $((t2 - t1)) s, total $(($(date +%s) - t0)) s"

check "exactly $jobs records in the store" eq "$records" "$jobs"
check "one record per job of this soak ($jobs distinct)" eq "$distinct:$ours" "$jobs:$jobs"
check "exactly $jobs lines in the file" eq "$lines" "$jobs"
check "every stored record is in the file (not_in_file 0)" eq "$unwritten" 0
check "no duplicate line or job in the file" eq "$dup_lines:$dup_jobs" 0:0
check "no torn line: every line has 45 fields and ends with a newline" eq "$bad_fields:$torn" 0:0
check "the file is what bdocker-acct export rebuilds from the store" eq "$same_export" yes
check "the working node delivered exactly $jobs records, none pending or rejected" eq "$delivered:$pending:$rejected" "$jobs:0:0"
check "no cgroup left under /$parent" eq "$left_cgroups" 0
check "no container of this soak left on the engine" eq "$left_containers" 0
check "nothing mounted under the bind staging" eq "$left_mounts" 0
check "no token file left in the users' HOMEs" eq "$left_tokens" 0
check "every job finished its steps (none given up)" eq "$(count_lines "$ctl/gave-up")" 0
kills_outage=$(count_lines "$ctl/outage-kills")
check "both daemons were killed (working $kills_w, accounting $kills_a + $kills_outage)" test "$kills_w" -gt 0 -a "$((kills_a + kills_outage))" -gt 0
check "the accounting daemon stayed down ${down}s while $((${o_done1:-0} - ${o_done0:-0})) job(s) finished" \
    test -n "${o_end:-}" -a ! -e "$ctl/outage-violations"
check "no daemon exited except by kill -9" eq "$(own_exits working):$(own_exits accounting)" 0:0

# A check whose command line could not even be expanded never ran: count it as failed.
expected=$(grep -cE '^check "' "$repo/tools/soak.sh")
if ((passed + failed < expected)); then
    echo "FAIL $((expected - passed - failed)) check(s) did not run (see the errors above)"
    failed=$((expected - passed))
fi
echo "soak: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
