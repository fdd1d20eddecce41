#!/bin/sh
# bdocker epilog. Grid Engine runs it as root after every job of the queue, also after a
# failed prolog and after qdel:
#     qconf -mattr queue epilog root@/usr/local/libexec/bdocker/epilog.sh <queue>
# It runs `bdocker clean`, which names the job by JOB_ID and SGE_TASK_ID over bdockerd's
# root-only unix socket: the job's containers are removed, its token revoked and its token
# file deleted. Nothing in the user's HOME decides which job is cleaned, so deleting or
# swapping the token file cannot dodge it. Site settings: as in prolog.sh (/etc/default/bdocker,
# never the environment).
#
# It always exits 0. A failing epilog puts the queue instance in error state (exit 1: E, and
# the finished job is queued to run AGAIN) or the job in error state (exit 100), while a clean
# that could not run can be repeated by the admin at any time, as the log line says:
#     bdocker clean --config CONF -u USER --job-id JOB_ID [--task-id TASK]

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin   # SGE's PATH is the job's
export PATH
cd / || exit 0

SITE=/etc/default/bdocker
setting() { # KEY DEFAULT: KEY from the site file if root owns it and only root may write it
    v=
    if [ -n "$(find "$SITE" -maxdepth 0 -type f -user root ! -perm /022 2>/dev/null)" ]; then
        v=$(sed -n "s/^$1=//p" "$SITE" | tail -n 1)
    fi
    echo "${v:-$2}"
}
BIN=$(setting BDOCKER_BIN /usr/local/bin/bdocker)
CONF=$(setting BDOCKER_CONF_FILE /etc/configure_bdocker.cfg)
JOB=$JOB_ID TASK_OPT=
if [ "${SGE_TASK_ID:-undefined}" != undefined ]; then
    JOB=$JOB_ID.$SGE_TASK_ID TASK_OPT=" --task-id $SGE_TASK_ID"
fi
BY_HAND="bdocker clean --config $CONF -u $USER --job-id $JOB_ID$TASK_OPT"

log() { logger -t bdocker -p "daemon.$1" -- "epilog: $2" 2>/dev/null || true; }
warn() { # one line to the job's stderr file and syslog; the job itself is not failed
    echo "bdocker epilog: $1" >&2
    log warning "$1"
    exit 0
}

[ -x "$BIN" ] || warn "job $JOB of $USER not cleaned: $BIN is missing; as root run: $BY_HAND"

delay=1 waited=0
while :; do
    # Only what clean reads, not the user's environment (this is root).
    if out=$(env -i PATH="$PATH" LANG=C.UTF-8 HOME=/root USER="$USER" JOB_ID="$JOB_ID" \
        SGE_TASK_ID="${SGE_TASK_ID:-undefined}" "$BIN" clean --config "$CONF" 2>&1); then
        log info "job $JOB of $USER cleaned"
        exit 0
    fi
    msg=$(printf '%s\n' "$out" | tail -n 1 | sed 's/^bdocker: //')
    case $msg in
    "job "*" is not configured on this node"*)
        # configure failed or never ran (the epilog runs after a failed prolog too), or the
        # job was cleaned already.
        log info "job $JOB of $USER: nothing to clean ($msg)"
        exit 0 ;;
    "cannot reach bdockerd"*) ;;   # daemon down or restarting: retry below
    *) warn "job $JOB of $USER not cleaned: $msg; as root run: $BY_HAND" ;;
    esac
    [ "$waited" -lt 30 ] || break
    sleep "$delay"
    waited=$((waited + delay))
    delay=$((delay * 2))
    [ "$delay" -le 8 ] || delay=8
done
warn "job $JOB of $USER not cleaned: bdockerd unreachable for ${waited}s ($msg); once it runs, as root: $BY_HAND"
