# shellcheck shell=bash
# tools/lib/services.sh — what tools/test-env.sh and tools/gridengine.sh share: starting and
# stopping only the processes they started, recorded as lines "<service> <pid>" in
# $STARTED_FILE, and their up/down/status command line. Sourced; the sourcing script defines
# log, die, RUN_DIR, STARTED_FILE, STOP_TIMEOUT and process_name (SERVICE -> /proc comm name).

# A pid counts as ours only if it is alive (not a zombie) with the expected name, so a stale
# pidfile whose pid was reused by something else is never signalled.
alive_as() { # NAME PID
    local name=$1 pid=$2 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]]
}

read_pid() { [[ -r $1 ]] && tr -dc '0-9' <"$1"; }

record_started() { # SERVICE PID — keep other services' lines, replace this one's
    local tmp
    tmp=$(mktemp "$RUN_DIR/started.XXXXXX")
    { [[ -f $STARTED_FILE ]] && grep -v "^$1 " "$STARTED_FILE" || true; echo "$1 $2"; } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$STARTED_FILE"
}

forget_started() { # SERVICE
    [[ -f $STARTED_FILE ]] || return 0
    local tmp
    tmp=$(mktemp "$RUN_DIR/started.XXXXXX")
    grep -v "^$1 " "$STARTED_FILE" >"$tmp" || true
    mv -f "$tmp" "$STARTED_FILE"
}

started_pid() { # SERVICE — pid recorded by an earlier `up`, if that process still lives
    local pid
    [[ -r $STARTED_FILE ]] || return 1
    pid=$(awk -v s="$1" '$1 == s {print $2}' "$STARTED_FILE")
    [[ -n $pid ]] && alive_as "$(process_name "$1")" "$pid" && echo "$pid"
}

stop_pid() { # NAME PID — SIGTERM, wait, SIGKILL
    local name=$1 pid=$2 i
    alive_as "$name" "$pid" || { log "$name (pid $pid) is not running any more"; return 0; }
    log "stopping $name (pid $pid) with SIGTERM"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 4; i++)); do
        alive_as "$name" "$pid" || { log "$name stopped"; return 0; }
        sleep 0.25
    done
    log "$name (pid $pid) still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do alive_as "$name" "$pid" || return 0; sleep 0.25; done
    die "$name (pid $pid) survived SIGKILL"
}

missing_packages() { # PACKAGE... — prints those not installed, space-separated
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    echo "${missing[*]}"
}

# `SCRIPT up|down|status`: root, one invocation at a time, then cmd_up/cmd_down/cmd_status.
# The usage text is the script's header comment (lines 2 to USAGE_LINES).
services_main() {
    if [[ $# -ne 1 || ! $1 =~ ^(up|down|status)$ ]]; then
        sed -n "2,${USAGE_LINES}p" "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
    fi
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    mkdir -p "$RUN_DIR"
    # fd 9 holds the lock; the daemons started are given it closed.
    exec 9>"$RUN_DIR/lock"
    flock -w 300 9 || die "another $(basename "$0") is running (lock $RUN_DIR/lock)"
    "cmd_$1"
}
