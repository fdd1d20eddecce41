#!/bin/sh
# bdocker prolog for Slurm. slurmd runs it as root on each node of a job before the job's first
# task (slurm.conf):
#     Prolog=/usr/local/libexec/bdocker/slurm/prolog.sh
#     PrologFlags=Alloc          (run it at allocation, before the batch script)
#     ProctrackType=proctrack/linuxproc
# It gathers what Slurm says of the job into a root-only spool directory, SPOOL/<SLURM_JOB_ID>:
#     job     this job's line of scontrol show job -o $SLURM_JOB_ID (partition, limits, user,
#             array ids)
#     config  scontrol show config                 (bdocker refuses proctrack/cgroup)
#     node    $SLURMD_NODENAME
#     key     the bdocker job: "<job> <task>" (an array task is <array job id> <task id>)
#     reason  only when the job could not be set up: why (world-readable, for the TaskProlog)
# and runs `bdocker configure --spool` on it: the node's bdockerd registers the job, creates
# its cgroup tree and writes the job's token file into the user's HOME. The epilog cleans by
# the key and removes the directory.
#
# Optional site settings, one KEY=value per line (no quotes), in /etc/default/bdocker:
#     BDOCKER_BIN=/usr/local/bin/bdocker                 (the default)
#     BDOCKER_CONF_FILE=/etc/configure_bdocker.cfg       (the default)
#     BDOCKER_SLURM_SPOOL=/run/bdocker/slurm             (the default)
# They are deliberately NOT taken from the environment, which this root script never trusts.
#
# Always exit 0: a failing Prolog makes Slurm DRAIN the node and requeue the job held. When
# configure fails, the job has no token and the TaskProlog (taskprolog.sh) fails its first
# task instead: the job ends FAILED (Reason=NonZeroExitCode, ExitCode=100:0) with the reason
# (SPOOL/<SLURM_JOB_ID>/reason) in its output, and the node keeps running other jobs.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
cd / || exit 0
umask 077

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

log() { logger -t bdocker -p "daemon.$1" -- "slurm prolog: $2" 2>/dev/null || true; }
dir=
fail() { # one line for the admin (syslog) and, through the TaskProlog, the job's output
    echo "bdocker prolog: $1" >&2
    log err "$1"
    # The TaskProlog, which fails the job, prints this reason into the job's output.
    if [ -n "$dir" ] && [ -d "$dir" ]; then
        printf '%s\n' "$1" >"$dir/reason" && chmod 644 "$dir/reason"
    fi
    exit 0
}

case $ID in '' | *[!0-9]*) fail "SLURM_JOB_ID '$ID' is not a job id" ;; esac
[ -n "$USER_NAME" ] || USER_NAME=$(getent passwd "${SLURM_JOB_UID:-}" | cut -d: -f1)
[ -n "$USER_NAME" ] || fail "job $ID: no SLURM_JOB_USER and uid '${SLURM_JOB_UID:-}' unknown"
[ -x "$BIN" ] || fail "job $ID of $USER_NAME not set up: $BIN is missing or not executable"

# Owned by root and written by root alone: what bdockerd reads here must not be the user's. The
# directories can be passed (0711) so the TaskProlog can read a failure's reason; the job's
# files are root's only (umask 077).
# Parents made here get 0755: /run/bdocker is also bdockerd's socket directory, which users
# must be able to pass.
(umask 022 && mkdir -p "$SPOOL") && chown root:root "$SPOOL" && chmod 711 "$SPOOL" || fail "job $ID: cannot make $SPOOL"
rm -rf "$SPOOL/$ID"   # a stale one (job ids restart with a new StateSaveLocation)
mkdir "$SPOOL/$ID" && chmod 711 "$SPOOL/$ID" || fail "job $ID: cannot make $SPOOL/$ID"
dir=$SPOOL/$ID
timeout 60 scontrol show job -o "$ID" >"$dir/all" 2>"$dir/scontrol.err" ||
    fail "job $ID of $USER_NAME not set up: scontrol show job failed: $(tail -n 1 "$dir/scontrol.err")"
# An array's first job id names the whole array, one line per task: keep this job's line. Exactly
# one line may start so; a second could only come from a job name holding a newline.
grep "^JobId=$ID " "$dir/all" >"$dir/job"
[ "$(wc -l <"$dir/job")" -eq 1 ] || fail "job $ID of $USER_NAME not set up: scontrol show job -o $ID has $(wc -l <"$dir/job") lines for it, not one"
rm -f "$dir/all"
timeout 60 scontrol show config >"$dir/config" 2>>"$dir/scontrol.err" ||
    fail "job $ID of $USER_NAME not set up: scontrol show config failed: $(tail -n 1 "$dir/scontrol.err")"
printf '%s\n' "${SLURMD_NODENAME:-$(hostname -s)}" >"$dir/node"

# Slurm's Prolog has no SLURM_ARRAY_* variables: an array task's ids come from the job line,
# whose start Slurm writes before any field a user chooses (bdockerd checks them again).
JOB=$ID TASK=
line=$(cat "$dir/job")
case $line in
"JobId=$ID ArrayJobId="*)
    JOB=$(printf '%s\n' "$line" | sed -n 's/^JobId=[0-9]* ArrayJobId=\([0-9][0-9]*\) ArrayTaskId=\([0-9][0-9]*\) .*/\1/p')
    TASK=$(printf '%s\n' "$line" | sed -n 's/^JobId=[0-9]* ArrayJobId=\([0-9][0-9]*\) ArrayTaskId=\([0-9][0-9]*\) .*/\2/p')
    [ -n "$JOB" ] && [ -n "$TASK" ] || fail "job $ID: cannot read its array ids from scontrol"
    ;;
esac
echo "$JOB $TASK" >"$dir/key"
KEY=$JOB${TASK:+.$TASK}

# Give the root client only what configure reads, not this script's environment.
set -- configure --config "$CONF" --user "$USER_NAME" --job-id "$JOB" --spool "$dir"
[ -z "$TASK" ] || set -- "$@" --task-id "$TASK"
if out=$(env -i PATH="$PATH" LANG=C.UTF-8 HOME=/root "$BIN" "$@" 2>&1); then
    log info "job $KEY (Slurm job $ID) of $USER_NAME configured: $out"
    exit 0
fi
fail "job $KEY (Slurm job $ID) of $USER_NAME not set up: bdocker configure failed: $(printf '%s\n' "$out" | tail -n 1 | sed 's/^bdocker: //')"
