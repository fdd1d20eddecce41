#!/usr/bin/env bash
# tools/gridengine.sh — a single-node Grid Engine for bdocker's end-to-end tests (Debian 12, root).
#
#   tools/gridengine.sh up       install gridengine-master/-exec/-client if missing, start
#                                sge_qmaster and sge_execd with a clean environment, configure
#                                queue bdocker.q (prolog/epilog = the bdocker scripts), clear
#                                queue error states, write /run/bdocker-sge/env
#   tools/gridengine.sh down     stop only the daemons `up` started, by pid (config is kept)
#   tools/gridengine.sh status   show daemons and queue (exit 0 = up and usable, 3 = not)
#
# Environment (read by `up`):
#   BDOCKER_PROLOG  queue prolog, run as root  (default /usr/local/libexec/bdocker/prolog.sh;
#   BDOCKER_EPILOG  queue epilog, run as root   default /usr/local/libexec/bdocker/epilog.sh;
#                                                NONE = no prolog/epilog)
# Tests then do:  . /run/bdocker-sge/env   (SGE_ROOT, SGE_CELL, BDOCKER_SGE_* for qsub/qacct)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
QMASTER_BIN=/usr/lib/gridengine/sge_qmaster
EXECD_BIN=/usr/lib/gridengine/sge_execd
QMASTER_SPOOL=/var/spool/gridengine/qmaster   # bootstrap: qmaster_spool_dir
EXECD_SPOOL=/var/spool/gridengine/execd       # global config: execd_spool_dir
SPOOLDB=/var/spool/gridengine/spooldb
ADMIN_USER=sgeadmin
PACKAGES=(gridengine-master gridengine-exec gridengine-client)

QUEUE=bdocker.q
HOSTGROUP=@bdhosts
PROLOG=${BDOCKER_PROLOG:-/usr/local/libexec/bdocker/prolog.sh}
EPILOG=${BDOCKER_EPILOG:-/usr/local/libexec/bdocker/epilog.sh}

RUN_DIR=/run/bdocker-sge
LOG_DIR=/var/log/bdocker-sge
ENV_FILE=$RUN_DIR/env
STARTED_FILE=$RUN_DIR/started   # lines "<daemon> <pid>" for daemons this script started

QMASTER_TIMEOUT=30
EXECD_TIMEOUT=60
STOP_TIMEOUT=30

HOST=$(hostname)
QMASTER_PIDFILE=$QMASTER_SPOOL/qmaster.pid

log() { echo "gridengine: $*" >&2; }
die() { echo "gridengine: ERROR: $*" >&2; exit 1; }
USAGE_LINES=15
process_name() { echo "sge_$1"; }
# shellcheck source=tools/lib/services.sh
. "$(dirname "$0")/lib/services.sh"
. "$(dirname "$0")/lib/template.sh"

# The daemons' environment is inherited by every prolog, job and epilog: keep it minimal.
clean_env() {
    env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin SGE_ROOT="$SGE_ROOT" \
        SGE_CELL="$SGE_CELL" LANG=C.UTF-8 HOME=/root "$@"
}

# execd spools under the name it resolves for itself BEFORE host_aliases apply (here
# "localhost", not $HOST), so find its pidfile by looking for the live one.
execd_pid() {
    local f pid
    for f in "$EXECD_SPOOL"/*/execd.pid; do
        pid=$(read_pid "$f" || true)
        [[ -n $pid ]] && alive_as sge_execd "$pid" && { echo "$pid"; return 0; }
    done
    return 1
}
execd_messages() { ls -t "$EXECD_SPOOL"/*/messages 2>/dev/null | head -n 1 || true; }

# Run qconf/qmod quietly (they report success on stderr); show their output only on failure.
q() {
    local out
    out=$("$@" 2>&1) || { echo "$out" >&2; die "failed: $*"; }
}

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
    # Answer the debconf questions (shared by all gridengine packages) up front. The postinst of
    # gridengine-master then initialises the cluster spool (init_cluster) without asking.
    debconf-set-selections <<EOF
gridengine-common shared/gridengineconfig boolean true
gridengine-common shared/gridenginecell string $SGE_CELL
gridengine-common shared/gridenginemaster string $HOST
EOF
    export DEBIAN_FRONTEND=noninteractive
    # Without systemd, postinst would start the daemons via init scripts with apt's environment
    # (inherited by every job later). We start them ourselves, so forbid service starts for the
    # install, unless the machine already has its own policy-rc.d (left alone).
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

# The cluster spool is created by gridengine-master's postinst on first install only; redo it if
# it is missing (e.g. the spool was wiped but the package stayed).
ensure_cluster() {
    [[ -x $QMASTER_BIN && -x $EXECD_BIN ]] || die "$QMASTER_BIN or $EXECD_BIN missing"
    if [[ ! -e $SPOOLDB/sge ]]; then
        log "no cluster spool in $SPOOLDB; initialising it"
        install -d -o "$ADMIN_USER" -g "$ADMIN_USER" -m 755 "$SPOOLDB" "$QMASTER_SPOOL" \
            "$QMASTER_SPOOL/job_scripts" "$EXECD_SPOOL" "$COMMON"
        runuser -u "$ADMIN_USER" -- /usr/share/gridengine/scripts/init_cluster \
            "$SGE_ROOT" "$SGE_CELL" "$SPOOLDB" "$ADMIN_USER" >&2
    fi
}

# act_qmaster and host_aliases are read by qmaster at start only. Prints "changed" if either
# file was (re)written, so a running qmaster of ours gets restarted.
write_host_files() {
    local changed='' addr rname want
    if [[ $(cat "$COMMON/act_qmaster" 2>/dev/null) != "$HOST" ]]; then
        echo "$HOST" >"$COMMON/act_qmaster"
        changed=1
    fi
    # Clients are identified by the reverse lookup of their address. If this host's address
    # resolves back to another name (127.0.0.1 -> localhost), qmaster refuses every client
    # ("client IP resolved to host name localhost") unless that name is an alias of $HOST.
    addr=$(getent ahostsv4 "$HOST" | awk 'NR == 1 {print $1}')
    [[ -n $addr ]] || die "hostname $HOST does not resolve (add it to /etc/hosts)"
    rname=$(getent hosts "$addr" | awk 'NR == 1 {print $2}')
    want=
    if [[ -n $rname && $rname != "$HOST" ]]; then want="$HOST $rname"; fi
    if [[ -n $want ]]; then
        if [[ $(cat "$COMMON/host_aliases" 2>/dev/null) != "$want" ]]; then
            echo "$want" >"$COMMON/host_aliases"
            log "host_aliases: $want ($addr reverse-resolves to $rname)"
            changed=1
        fi
    elif [[ -e $COMMON/host_aliases ]]; then
        rm -f "$COMMON/host_aliases"
        changed=1
    fi
    chown "$ADMIN_USER:$ADMIN_USER" "$COMMON/act_qmaster" "$COMMON"/host_aliases 2>/dev/null || true
    chmod 0644 "$COMMON/act_qmaster"
    if [[ -n $changed ]]; then echo changed; fi
}

# ---------------------------------------------------------------------------------------------
qmaster_answers() { qstat -f >/dev/null 2>&1; }

start_qmaster() { # RESTART(0/1)
    local pid i
    if pid=$(started_pid qmaster); then
        if (($1)); then
            log "host files changed: restarting our qmaster (pid $pid)"
            stop_pid sge_qmaster "$pid"
            forget_started qmaster
        else
            log "reusing running qmaster (pid $pid)"
        fi
    else
        pid=$(read_pid "$QMASTER_PIDFILE" || true)
        if [[ -n $pid ]] && alive_as sge_qmaster "$pid"; then
            (($1)) && die "a qmaster not started by this script runs (pid $pid) and act_qmaster/host_aliases changed; stop it and rerun"
            log "WARNING: qmaster pid $pid was not started by this script; using it (down will not stop it)"
        fi
    fi
    pid=$(read_pid "$QMASTER_PIDFILE" || true)
    if ! { [[ -n $pid ]] && alive_as sge_qmaster "$pid"; }; then
        # A new spool (no jobseqnum yet) numbers jobs from 1 again, and qacct -j N would also
        # find the old cluster's job N: start a new accounting file, keeping the old one.
        if [[ ! -e $QMASTER_SPOOL/jobseqnum && -s $COMMON/accounting ]] &&
            grep -qv '^#' "$COMMON/accounting"; then
            local old
            old=$COMMON/accounting.$(date +%Y%m%dT%H%M%S)
            mv "$COMMON/accounting" "$old"
            log "new cluster spool: previous accounting file moved to $old"
        fi
        mkdir -p "$LOG_DIR"
        log "starting sge_qmaster (messages: $QMASTER_SPOOL/messages)"
        echo "=== $(date -Is) gridengine.sh up: sge_qmaster" >>"$LOG_DIR/qmaster.out"
        # sge_qmaster daemonizes itself and writes its pid to $QMASTER_PIDFILE.
        (cd / && clean_env setsid "$QMASTER_BIN" </dev/null >>"$LOG_DIR/qmaster.out" 2>&1 9>&-) ||
            { log_tail "$LOG_DIR/qmaster.out"; die "sge_qmaster failed to start"; }
        for ((i = 0; i < QMASTER_TIMEOUT * 4; i++)); do
            pid=$(read_pid "$QMASTER_PIDFILE" || true)
            [[ -n $pid ]] && alive_as sge_qmaster "$pid" && break
            sleep 0.25
        done
        if ! { [[ -n $pid ]] && alive_as sge_qmaster "$pid"; }; then
            log_tail "$QMASTER_SPOOL/messages"
            die "sge_qmaster did not stay up"
        fi
        record_started qmaster "$pid"
    fi
    for ((i = 0; i < QMASTER_TIMEOUT * 4; i++)); do
        qmaster_answers && { log "qmaster up (pid $pid)"; return 0; }
        alive_as sge_qmaster "$pid" || break
        sleep 0.25
    done
    qstat -f >&2 || true
    log_tail "$QMASTER_SPOOL/messages"
    die "qmaster (pid $pid) does not answer qstat within ${QMASTER_TIMEOUT}s"
}

start_execd() { # RESTART(0/1)
    local pid i
    if pid=$(started_pid execd); then
        if (($1)); then
            log "qmaster restarted: restarting our execd (pid $pid)"
            stop_pid sge_execd "$pid"
            forget_started execd
        else
            log "reusing running execd (pid $pid)"
            return 0
        fi
    fi
    if pid=$(execd_pid); then
        log "WARNING: execd pid $pid was not started by this script; using it (down will not stop it)"
        return 0
    fi
    mkdir -p "$LOG_DIR"
    log "starting sge_execd (messages: $EXECD_SPOOL/<its host name>/messages)"
    echo "=== $(date -Is) gridengine.sh up: sge_execd" >>"$LOG_DIR/execd.out"
    (cd / && clean_env setsid "$EXECD_BIN" </dev/null >>"$LOG_DIR/execd.out" 2>&1 9>&-) ||
        { log_tail "$LOG_DIR/execd.out"; die "sge_execd failed to start"; }
    pid=
    for ((i = 0; i < 20 * 4; i++)); do
        pid=$(execd_pid) && break
        sleep 0.25
    done
    [[ -n $pid ]] ||
        { log_tail "$LOG_DIR/execd.out"; log_tail "$(execd_messages)"; die "sge_execd did not stay up"; }
    record_started execd "$pid"
    log "execd started (pid $pid)"
}

# ---------------------------------------------------------------------------------------------
configure() {
    local tmp slots pro epi
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    slots=$(nproc)
    pro=NONE epi=NONE
    if [[ $PROLOG != NONE ]]; then
        pro="root@$PROLOG"
        [[ -x $PROLOG ]] || log "WARNING: prolog $PROLOG is not an executable file yet: jobs will fail until it is installed (tools/install.sh)"
    fi
    if [[ $EPILOG != NONE ]]; then
        epi="root@$EPILOG"
        [[ -x $EPILOG ]] || log "WARNING: epilog $EPILOG is not an executable file yet: jobs will fail until it is installed (tools/install.sh)"
    fi

    # qmaster's host is an admin host already; submit from here too.
    qconf -sh | grep -qx "$HOST" || q qconf -ah "$HOST"
    qconf -ss 2>/dev/null | grep -qx "$HOST" || q qconf -as "$HOST"

    printf '%s\n' "hostname $HOST" 'load_scaling NONE' 'complex_values NONE' 'user_lists NONE' \
        'xuser_lists NONE' 'projects NONE' 'xprojects NONE' 'usage_scaling NONE' \
        'report_variables NONE' >"$tmp/exechost"
    if qconf -sel 2>/dev/null | grep -qx "$HOST"; then q qconf -Me "$tmp/exechost"
    else q qconf -Ae "$tmp/exechost"; fi

    printf 'group_name %s\nhostlist %s\n' "$HOSTGROUP" "$HOST" >"$tmp/hgrp"
    if qconf -shgrpl 2>/dev/null | grep -qx "$HOSTGROUP"; then q qconf -Mhgrp "$tmp/hgrp"
    else q qconf -Ahgrp "$tmp/hgrp"; fi

    # The queue's full definition is tools/templates/sge-queue.conf (qconf takes no comments).
    # load_thresholds NONE there: the default np_load_avg alarm stops scheduling on a busy 2-core box.
    render_template "$(dirname "$0")/templates/sge-queue.conf" "$tmp/queue" QUEUE="$QUEUE" HOSTGROUP="$HOSTGROUP" \
        SLOTS="$slots" PROLOG="$pro" EPILOG="$epi"
    if qconf -sql 2>/dev/null | grep -qx "$QUEUE"; then q qconf -Mq "$tmp/queue"
    else q qconf -Aq "$tmp/queue"; fi

    # Scheduler every second (default 15 s) so tests do not wait.
    qconf -ssconf | sed 's/^schedule_interval .*/schedule_interval                 0:0:1/' >"$tmp/sconf"
    q qconf -Msconf "$tmp/sconf"

    # Accounting lines flushed at once so qacct sees a job as soon as it ends. -Mconf takes the
    # configuration's name from the file name. Continuation lines are joined first.
    mkdir "$tmp/conf"
    qconf -sconf global | sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*//; ta' |
        sed -e '/^#/d' \
            -e 's/^reporting_params .*/reporting_params             accounting=true reporting=false flush_time=00:00:15 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00/' \
            >"$tmp/conf/global"
    q qconf -Mconf "$tmp/conf/global"
    log "configured: queue $QUEUE@$HOST slots=$slots prolog=$pro epilog=$epi"
}

queue_line() { qstat -f -q "$QUEUE" 2>/dev/null | awk -v q="$QUEUE@$HOST" '$1 == q'; }
# Flags are a 6th column (e.g. "au", "E", "d"); a usable instance has only 5 columns.
queue_states() { queue_line | awk '{print (NF >= 6 ? $6 : "")}'; }

wait_queue() {
    local i line states
    qmod -c "$QUEUE" >/dev/null 2>&1 || true   # clear E states left by failed prologs/epilogs
    qmod -e "$QUEUE" >/dev/null 2>&1 || true   # and a disabled instance
    for ((i = 0; i < EXECD_TIMEOUT * 4; i++)); do
        line=$(queue_line)
        if [[ -n $line ]]; then
            states=$(queue_states)
            if [[ -z $states ]]; then log "queue ready: $line"; return 0; fi
            if [[ $states == *E* ]]; then qmod -c "$QUEUE" >/dev/null 2>&1 || true; fi
        fi
        sleep 0.25
    done
    qstat -f >&2 || true
    log_tail "$(execd_messages)"
    log_tail "$QMASTER_SPOOL/messages"
    die "queue instance $QUEUE@$HOST not usable after ${EXECD_TIMEOUT}s (states: ${states:-no instance})"
}

write_env() {
    cat >"$ENV_FILE.tmp" <<EOF
export SGE_ROOT=$SGE_ROOT
export SGE_CELL=$SGE_CELL
case ":\$PATH:" in *:/usr/bin:*) ;; *) export PATH="\$PATH:/usr/bin" ;; esac
export BDOCKER_SGE_QUEUE=$QUEUE
export BDOCKER_SGE_HOST=$HOST
export BDOCKER_SGE_ACCOUNTING=$COMMON/accounting
export BDOCKER_SGE_PROLOG=$PROLOG
export BDOCKER_SGE_EPILOG=$EPILOG
EOF
    chmod 0644 "$ENV_FILE.tmp"
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
    log "wrote $ENV_FILE"
}

# ---------------------------------------------------------------------------------------------
cmd_up() {
    local t0=$SECONDS restart=0 changed
    ensure_packages
    ensure_cluster
    changed=$(write_host_files)
    [[ -z $changed ]] || restart=1
    start_qmaster "$restart"
    start_execd "$restart"
    configure
    wait_queue
    write_env
    touch "$STARTED_FILE"
    log "up: ready in $((SECONDS - t0))s — use: . $ENV_FILE"
}

cmd_down() {
    local pid
    if [[ ! -s $STARTED_FILE ]]; then
        log "down: nothing was started by gridengine.sh up; nothing to stop"
    else
        if qmaster_answers && [[ -n $(qstat -u '*' -s rs 2>/dev/null) ]]; then
            log "WARNING: jobs still run; their shepherds outlive execd"
        fi
        # execd first (it reports to qmaster on shutdown), then qmaster.
        pid=$(awk '$1 == "execd" {print $2}' "$STARTED_FILE")
        [[ -z $pid ]] || stop_pid sge_execd "$pid"
        pid=$(awk '$1 == "qmaster" {print $2}' "$STARTED_FILE")
        [[ -z $pid ]] || stop_pid sge_qmaster "$pid"
    fi
    rm -f "$STARTED_FILE" "$ENV_FILE"
    log "down: done (cluster config kept in $SPOOLDB)"
}

cmd_status() {
    local ok=1 pid d states
    for d in qmaster execd; do
        if [[ $d == qmaster ]]; then pid=$(read_pid "$QMASTER_PIDFILE" || true)
        else pid=$(execd_pid || true); fi
        if [[ -n $pid ]] && alive_as "sge_$d" "$pid"; then
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
    if qmaster_answers; then
        echo "queue:   $(queue_line || true)"
        states=$(queue_states)
        [[ -n $(queue_line) && -z $states ]] || { echo "         not usable (states: ${states:-no instance})"; ok=0; }
        echo "prolog:  $(qconf -sq "$QUEUE" 2>/dev/null | awk '$1 == "prolog" {print $2}')"
        echo "epilog:  $(qconf -sq "$QUEUE" 2>/dev/null | awk '$1 == "epilog" {print $2}')"
    else
        echo "queue:   qmaster does not answer"
        ok=0
    fi
    if [[ -f $ENV_FILE ]]; then echo "env file: $ENV_FILE"; else echo "env file: missing"; ok=0; fi
    ((ok)) && return 0 || return 3
}

services_main "$@"
