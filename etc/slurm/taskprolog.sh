#!/bin/sh
# bdocker TaskProlog for Slurm. slurmstepd runs it as the JOB'S USER before every task of every
# step (the batch script, each srun task), with the task's environment (slurm.conf):
#     TaskProlog=/usr/local/libexec/bdocker/slurm/taskprolog.sh
# It runs `bdocker join`, which puts the task ($SLURM_TASK_PID) into the job's COMMON cgroup
# with the job's token, so that what the job's own processes use is told apart from its
# containers, and the monitor can stop the job when the job is over its limits. Its stdout is
# read by Slurm ("print TEXT" goes to the task's output).
#
# Site settings, read from /etc/default/bdocker as in prolog.sh (never from the environment).
#
# When join fails (the prolog could not configure the job, bdockerd is down, the token file
# was removed) the task is not started: exit 100, and Slurm ends the job FAILED with
# ExitCode=100:0 (Reason=NonZeroExitCode), the reason in the job's output (the prolog's, from
# SPOOL/<SLURM_JOB_ID>/reason, when it left one). The node is not drained: only this job fails.

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

# A wide step starts many tasks at once, each joining over its own connection: one refused
# because the user has max_connections_per_user open already is tried again.
tries=0
while :; do
    if out=$("$BIN" join --config "$CONF" --pid "${SLURM_TASK_PID:-}" 2>&1); then
        exit 0
    fi
    tries=$((tries + 1))
    case $out in
    *"cannot reach bdockerd"* | *onnection*) [ "$tries" -ge 3 ] || { sleep "$tries"; continue; } ;;
    esac
    break
done
msg="bdocker join failed: $(printf '%s\n' "$out" | tail -n 1 | sed 's/^bdocker: //')"
# The prolog's reason, when it could not set the job up, says more than the missing token.
reason=$SPOOL/${SLURM_JOB_ID:-none}/reason
[ ! -f "$reason" ] || msg="$(head -c 1000 "$reason" | head -n 1) ($msg)"
msg=$(printf '%s' "$msg" | tr -d '\r\n')
echo "print bdocker: job ${SLURM_JOB_ID:-?} not started on $(hostname -s): $msg"
logger -t bdocker -p user.err -- "slurm taskprolog: job ${SLURM_JOB_ID:-?}: bdocker join failed: $msg" 2>/dev/null || true
exit 100
