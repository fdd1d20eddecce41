#!/bin/sh
# bdocker epilog for Slurm. slurmd runs it as root on each node of a job after the job ends,
# also after scancel, a time limit, a failed prolog or a job killed by bdocker's monitor
# (slurm.conf):
#     Epilog=/usr/local/libexec/bdocker/slurm/epilog.sh
# It runs `bdocker clean` for the job the prolog configured (its key in SPOOL/<SLURM_JOB_ID>/key,
# else the Slurm job id itself) over bdockerd's root-only socket: the job's containers and
# cgroups are removed, its accounting record queued, its token revoked and its token file
# deleted. Nothing in the user's HOME decides which job is cleaned. Then the spool directory
# goes. Site settings: as in prolog.sh (/etc/default/bdocker, never the environment).
#
# It always exits 0: a failing Epilog DRAINS the node, while a clean that could not run can be
# repeated by the admin at any time, as the log line says:
#     bdocker clean --config CONF -u USER --job-id JOB [--task-id TASK]

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
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
SPOOL=$(setting BDOCKER_SLURM_SPOOL /run/bdocker/slurm)
ID=${SLURM_JOB_ID:-}
USER_NAME=${SLURM_JOB_USER:-}

log() { logger -t bdocker -p "daemon.$1" -- "slurm epilog: $2" 2>/dev/null || true; }
done_() { # [WARNING]: one line to slurmd's log and syslog; the job and node are left alone
    [ -z "$1" ] || { echo "bdocker epilog: $1" >&2; log warning "$1"; }
    [ -z "${dir:-}" ] || rm -rf "$dir"
    exit 0
}

case $ID in '' | *[!0-9]*) dir=; done_ "SLURM_JOB_ID '$ID' is not a job id" ;; esac
[ -n "$USER_NAME" ] || USER_NAME=$(getent passwd "${SLURM_JOB_UID:-}" | cut -d: -f1)
dir=$SPOOL/$ID
JOB=$ID TASK=
if [ -f "$dir/key" ]; then
    read -r JOB TASK <"$dir/key" || true
fi
case $JOB$TASK in '' | *[!0-9]*) JOB=$ID TASK= ;; esac
KEY=$JOB${TASK:+.$TASK}
set -- clean --config "$CONF" --user "$USER_NAME" --job-id "$JOB"
[ -z "$TASK" ] || set -- "$@" --task-id "$TASK"
BY_HAND="bdocker $*"

[ -x "$BIN" ] || done_ "job $KEY of $USER_NAME not cleaned: $BIN is missing; as root run: $BY_HAND"

delay=1 waited=0 msg=
while :; do
    # Only what clean reads, not this script's environment (this is root).
    if out=$(env -i PATH="$PATH" LANG=C.UTF-8 HOME=/root "$BIN" "$@" 2>&1); then
        log info "job $KEY (Slurm job $ID) of $USER_NAME cleaned"
        done_ ""
    fi
    msg=$(printf '%s\n' "$out" | tail -n 1 | sed 's/^bdocker: //')
    case $msg in
    "job "*" is not configured on this node"*)
        # configure failed or never ran (the epilog runs after a failed prolog too), or the
        # job was cleaned already.
        log info "job $KEY (Slurm job $ID) of $USER_NAME: nothing to clean ($msg)"
        done_ "" ;;
    "cannot reach bdockerd"*) ;;   # daemon down or restarting: retry below
    *) done_ "job $KEY of $USER_NAME not cleaned: $msg; as root run: $BY_HAND" ;;
    esac
    [ "$waited" -lt 30 ] || break
    sleep "$delay"
    waited=$((waited + delay))
    delay=$((delay * 2))
    [ "$delay" -le 8 ] || delay=8
done
done_ "job $KEY of $USER_NAME not cleaned: bdockerd unreachable for ${waited}s ($msg); once it runs, as root: $BY_HAND"
