#!/usr/bin/env bash
# tools/slurm.sh — a single-node Slurm for bdocker's end-to-end tests (Debian 12, root).
#
#   tools/slurm.sh up       install munge, slurmctld, slurmd and slurm-client if missing, write
#                           /etc/slurm/slurm.conf (partition bdocker; Prolog, Epilog and
#                           TaskProlog = the bdocker scripts), start munged, slurmctld and slurmd
#                           with a clean environment, resume a drained node, write
#                           /run/bdocker-slurm/env
#   tools/slurm.sh down     stop only the daemons `up` started, by pid (config and state are kept)
#   tools/slurm.sh status   show daemons and node (exit 0 = up and usable, 3 = not)
#
# Environment (read by `up`; NONE = no such script):
#   BDOCKER_SLURM_PROLOG      default /usr/local/libexec/bdocker/slurm/prolog.sh
#   BDOCKER_SLURM_EPILOG      default /usr/local/libexec/bdocker/slurm/epilog.sh
#   BDOCKER_SLURM_TASKPROLOG  default /usr/local/libexec/bdocker/slurm/taskprolog.sh
# Tests then do:  . /run/bdocker-slurm/env   (BDOCKER_SLURM_* for sbatch, scontrol, the jobcomp file)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

PACKAGES=(munge slurmctld slurmd slurm-client)
CONF=/etc/slurm/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PIDFILE=$MUNGE_RUN/munged.pid
PARTITION=bdocker

PROLOG=${BDOCKER_SLURM_PROLOG:-/usr/local/libexec/bdocker/slurm/prolog.sh}
EPILOG=${BDOCKER_SLURM_EPILOG:-/usr/local/libexec/bdocker/slurm/epilog.sh}
TASKPROLOG=${BDOCKER_SLURM_TASKPROLOG:-/usr/local/libexec/bdocker/slurm/taskprolog.sh}

RUN_DIR=/run/bdocker-slurm
LOG_DIR=/var/log/bdocker-slurm
STATE_DIR=/var/spool/bdocker-slurm
ENV_FILE=$RUN_DIR/env
STARTED_FILE=$RUN_DIR/started   # lines "<daemon> <pid>" for daemons this script started
CTLD_PIDFILE=$RUN_DIR/slurmctld.pid
SLURMD_PIDFILE=$RUN_DIR/slurmd.pid

START_TIMEOUT=30
NODE_TIMEOUT=60
STOP_TIMEOUT=30

HOST=$(hostname -s)

log() { echo "slurm: $*" >&2; }
die() { echo "slurm: ERROR: $*" >&2; exit 1; }
USAGE_LINES=17
process_name() { case $1 in munge) echo munged ;; *) echo "$1" ;; esac; }
# shellcheck source=tools/lib/services.sh
. "$(dirname "$0")/lib/services.sh"
. "$(dirname "$0")/lib/template.sh"

# The daemons' environment is inherited by every prolog, task and epilog: keep it minimal.
clean_env() { env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 HOME=/root "$@"; }

log_tail() { # FILE
    echo "---- last lines of $1:" >&2
    tail -n 25 "$1" >&2 2>/dev/null || echo "(no $1)" >&2
}

# ---------------------------------------------------------------------------------------------
ensure_packages() {
    local missing
    read -ra missing <<<"$(missing_packages "${PACKAGES[@]}")"
    if ((${#missing[@]} == 0)); then
        log "packages present: ${PACKAGES[*]}"
        return 0
    fi
    log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Without systemd, postinst would start munge and the Slurm daemons through init scripts
    # with apt's environment. We start them ourselves: forbid service starts for the install,
    # unless the machine already has its own policy-rc.d (left alone).
    local policy=/usr/sbin/policy-rc.d added_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0 t0=$SECONDS
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
    if [[ -n $added_policy ]]; then rm -f "$policy"; fi
    ((rc == 0)) || die "apt-get failed (exit $rc)"
    log "packages installed in $((SECONDS - t0))s"
}

# munge's postinst makes the key on first install; a wiped one is made again.
ensure_munge_key() {
    if [[ ! -s $MUNGE_KEY ]]; then
        log "no munge key; creating $MUNGE_KEY"
        install -d -o munge -g munge -m 700 /etc/munge
        mungekey -c -k "$MUNGE_KEY" >&2 || die "mungekey -c failed"
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0600 "$MUNGE_KEY"
}

# Prints "changed" when slurm.conf was (re)written, so that running daemons of ours restart.
write_conf() {
    local addr cpus memory hooks='' tmp
    addr=$(getent ahostsv4 "$HOST" | awk 'NR == 1 {print $1}')
    [[ -n $addr ]] || die "hostname $HOST does not resolve (add it to /etc/hosts)"
    # The node line comes from slurmd -C, which reads this machine's hardware.
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -n 1)
    memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)
    [[ -n $cpus && -n $memory ]] || die "slurmd -C did not describe this node"
    [[ $PROLOG == NONE ]] || hooks+="Prolog=$PROLOG"$'\n'
    [[ $EPILOG == NONE ]] || hooks+="Epilog=$EPILOG"$'\n'
    [[ $TASKPROLOG == NONE ]] || hooks+="TaskProlog=$TASKPROLOG"$'\n'
    local f
    for f in "$PROLOG" "$EPILOG" "$TASKPROLOG"; do
        [[ $f == NONE || -x $f ]] || log "WARNING: $f is not an executable file yet: jobs will fail until it is installed (tools/install.sh)"
    done
    install -d -m 755 /etc/slurm
    tmp=$(mktemp "$RUN_DIR/slurm.conf.XXXXXX")
    render_template "$(dirname "$0")/templates/slurm.conf" "$tmp" HOST="$HOST" ADDR="$addr" CPUS="$cpus" \
        MEMORY="$memory" PARTITION="$PARTITION" STATE_DIR="$STATE_DIR" RUN_DIR="$RUN_DIR" LOG_DIR="$LOG_DIR" \
        HOOKS="${hooks%$'\n'}" || die "cannot render slurm.conf"
    chmod 0644 "$tmp"
    if cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$CONF"
        log "wrote $CONF (prolog=$PROLOG epilog=$EPILOG taskprolog=$TASKPROLOG)"
        echo changed
    fi
}

ensure_dirs() {
    install -d -m 755 "$LOG_DIR" "$STATE_DIR"
    install -d -o slurm -g slurm -m 755 "$STATE_DIR/ctld"
    install -d -m 755 "$STATE_DIR/d"
    [[ -e $LOG_DIR/jobcomp.log ]] || install -o slurm -g slurm -m 644 /dev/null "$LOG_DIR/jobcomp.log"
    [[ -e $LOG_DIR/slurmctld.log ]] || install -o slurm -g slurm -m 640 /dev/null "$LOG_DIR/slurmctld.log"
    chown slurm:slurm "$LOG_DIR/jobcomp.log" "$LOG_DIR/slurmctld.log"
    install -d -o munge -g munge -m 755 "$MUNGE_RUN"
}

# ---------------------------------------------------------------------------------------------
munge_answers() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    local pid i
    if pid=$(started_pid munge); then
        log "reusing running munged (pid $pid)"
        return 0
    fi
    pid=$(read_pid "$MUNGE_PIDFILE" || true)
    if [[ -n $pid ]] && alive_as munged "$pid"; then
        log "WARNING: munged pid $pid was not started by this script; using it (down will not stop it)"
        return 0
    fi
    log "starting munged"
    # munged daemonizes and writes its pid file; it must run as the munge user.
    (cd / && clean_env setsid runuser -u munge -- /usr/sbin/munged </dev/null >>"$LOG_DIR/munged.out" 2>&1 9>&-) ||
        { log_tail "$LOG_DIR/munged.out"; die "munged failed to start"; }
    for ((i = 0; i < START_TIMEOUT * 4; i++)); do
        pid=$(read_pid "$MUNGE_PIDFILE" || true)
        [[ -n $pid ]] && alive_as munged "$pid" && munge_answers && break
        sleep 0.25
    done
    munge_answers || { log_tail "$LOG_DIR/munged.out"; die "munged does not answer"; }
    record_started munge "$pid"
    log "munged up (pid $pid)"
}

start_daemon() { # NAME PIDFILE RESTART(0/1)
    local name=$1 pidfile=$2 restart=$3 pid i
    if pid=$(started_pid "$name"); then
        if ((restart)); then
            log "slurm.conf changed: restarting our $name (pid $pid)"
            stop_pid "$name" "$pid"
            forget_started "$name"
        else
            log "reusing running $name (pid $pid)"
            return 0
        fi
    else
        pid=$(read_pid "$pidfile" || true)
        if [[ -n $pid ]] && alive_as "$name" "$pid"; then
            ((restart)) && die "a $name not started by this script runs (pid $pid) and slurm.conf changed; stop it and rerun"
            log "WARNING: $name pid $pid was not started by this script; using it (down will not stop it)"
            return 0
        fi
    fi
    log "starting $name (log: $LOG_DIR/$name.log)"
    echo "=== $(date -Is) slurm.sh up: $name" >>"$LOG_DIR/$name.out"
    # Both daemonize and write their pid files (slurm.conf's *PidFile).
    (cd / && clean_env setsid "/usr/sbin/$name" </dev/null >>"$LOG_DIR/$name.out" 2>&1 9>&-) ||
        { log_tail "$LOG_DIR/$name.out"; log_tail "$LOG_DIR/$name.log"; die "$name failed to start"; }
    pid=
    for ((i = 0; i < START_TIMEOUT * 4; i++)); do
        pid=$(read_pid "$pidfile" || true)
        [[ -n $pid ]] && alive_as "$name" "$pid" && break
        pid=
        sleep 0.25
    done
    [[ -n $pid ]] || { log_tail "$LOG_DIR/$name.out"; log_tail "$LOG_DIR/$name.log"; die "$name did not stay up"; }
    record_started "$name" "$pid"
    log "$name started (pid $pid)"
}

ctld_answers() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

wait_ctld() {
    local i
    for ((i = 0; i < START_TIMEOUT * 4; i++)); do
        ctld_answers && return 0
        sleep 0.25
    done
    log_tail "$LOG_DIR/slurmctld.log"
    die "slurmctld does not answer scontrol ping within ${START_TIMEOUT}s"
}

node_state() { sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n 1; }

# idle, mixed or allocated is usable; a node drained by an earlier failed prolog, or down after
# a restart, is resumed (as gridengine.sh clears queue error states).
wait_node() {
    local i state=
    for ((i = 0; i < NODE_TIMEOUT * 4; i++)); do
        state=$(node_state)
        case $state in
            idle | mixed | allocated | completing) log "node $HOST ready ($state)"; return 0 ;;
            drain* | down* | fail*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.25
    done
    sinfo -N -l >&2 || true
    log_tail "$LOG_DIR/slurmd.log"
    die "node $HOST not usable after ${NODE_TIMEOUT}s (state: ${state:-unknown})"
}

write_env() {
    cat >"$ENV_FILE.tmp" <<EOF
export BDOCKER_SLURM_PARTITION=$PARTITION
export BDOCKER_SLURM_HOST=$HOST
export BDOCKER_SLURM_CONF=$CONF
export BDOCKER_SLURM_JOBCOMP=$LOG_DIR/jobcomp.log
export BDOCKER_SLURM_PROLOG=$PROLOG
export BDOCKER_SLURM_EPILOG=$EPILOG
export BDOCKER_SLURM_TASKPROLOG=$TASKPROLOG
EOF
    chmod 0644 "$ENV_FILE.tmp"
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
    log "wrote $ENV_FILE"
}

# ---------------------------------------------------------------------------------------------
cmd_up() {
    local t0=$SECONDS restart=0 changed
    ensure_packages
    ensure_munge_key
    ensure_dirs
    changed=$(write_conf)
    [[ -z $changed ]] || restart=1
    start_munge
    start_daemon slurmctld "$CTLD_PIDFILE" "$restart"
    wait_ctld
    start_daemon slurmd "$SLURMD_PIDFILE" "$restart"
    wait_node
    write_env
    touch "$STARTED_FILE"
    log "up: ready in $((SECONDS - t0))s — use: . $ENV_FILE"
}

cmd_down() {
    local pid d
    if [[ ! -s $STARTED_FILE ]]; then
        log "down: nothing was started by slurm.sh up; nothing to stop"
    else
        if ctld_answers && [[ -n $(squeue -h -t running,completing 2>/dev/null) ]]; then
            log "WARNING: jobs still run; their slurmstepd processes outlive slurmd"
        fi
        # slurmd first (it reports to slurmctld), then slurmctld, then munge they both use.
        for d in slurmd slurmctld munge; do
            pid=$(awk -v s="$d" '$1 == s {print $2}' "$STARTED_FILE")
            [[ -z $pid ]] || stop_pid "$(process_name "$d")" "$pid"
            forget_started "$d"
        done
    fi
    rm -f "$STARTED_FILE" "$ENV_FILE"
    log "down: done (config kept in $CONF, state in $STATE_DIR)"
}

cmd_status() {
    local ok=1 pid d pidfile state
    for d in munge slurmctld slurmd; do
        case $d in munge) pidfile=$MUNGE_PIDFILE ;; slurmctld) pidfile=$CTLD_PIDFILE ;; slurmd) pidfile=$SLURMD_PIDFILE ;; esac
        pid=$(read_pid "$pidfile" || true)
        if [[ -n $pid ]] && alive_as "$(process_name "$d")" "$pid"; then
            if [[ $(started_pid "$d" || true) == "$pid" ]]; then
                echo "$d: running (pid $pid, started by up)"
            else
                echo "$d: running (pid $pid, NOT started by up)"
            fi
        else
            echo "$d: not running"
            ok=0
        fi
    done
    if ctld_answers; then
        state=$(node_state)
        echo "node:       $HOST ${state:-unknown} (partition $PARTITION)"
        case $state in idle | mixed | allocated | completing) ;; *) echo "            not usable"; ok=0 ;; esac
        echo "prolog:     $(scontrol show config 2>/dev/null | awk '$1 == "Prolog" {print $3}')"
        echo "epilog:     $(scontrol show config 2>/dev/null | awk '$1 == "Epilog" {print $3}')"
        echo "taskprolog: $(scontrol show config 2>/dev/null | awk '$1 == "TaskProlog" {print $3}')"
    else
        echo "node:       slurmctld does not answer"
        ok=0
    fi
    if [[ -f $ENV_FILE ]]; then echo "env file: $ENV_FILE"; else echo "env file: missing"; ok=0; fi
    ((ok)) && return 0 || return 3
}

services_main "$@"
