#!/bin/sh
# bdocker prolog. Grid Engine runs it as root before every job of the queue:
#     qconf -mattr queue prolog root@/usr/local/libexec/bdocker/prolog.sh <queue>
# It runs `bdocker configure`: the node's bdockerd registers the job and the job's token file
# is written into the user's HOME (configure undoes itself if any step fails).
#
# Optional site settings, one KEY=value per line (no quotes), in /etc/default/bdocker:
#     BDOCKER_BIN=/usr/local/bin/bdocker                 (the default)
#     BDOCKER_CONF_FILE=/etc/configure_bdocker.cfg       (the default)
# They are deliberately NOT taken from the environment: Grid Engine hands the prolog the job's
# environment, which the user sets (qsub -v), and this script runs as root.
#
# Exit 0: the job starts. Exit 100: Grid Engine puts only this job in error state (Eqw, see
# qstat -j); any other non-zero exit would put the whole queue instance in error state (E).

# SGE's PATH is the job's (it starts with the job's TMPDIR and honours qsub -v PATH=...).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
cd / || exit 100   # SGE starts us in the user's HOME

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
JOB=$JOB_ID
[ "${SGE_TASK_ID:-undefined}" = undefined ] || JOB=$JOB_ID.$SGE_TASK_ID

log() { logger -t bdocker -p "daemon.$1" -- "prolog: $2" 2>/dev/null || true; }
fail() { # one line for the user (the job's stderr file) and the admin (syslog), then exit 100
    echo "bdocker prolog: $1" >&2
    log err "$1"
    exit 100
}

[ -x "$BIN" ] || fail "job $JOB of $USER not started: $BIN is missing or not executable"

# Give the root client only what configure reads, not the user's environment.
set -- PATH="$PATH" LANG=C.UTF-8 HOME=/root USER="$USER" JOB_ID="$JOB_ID" \
    SGE_TASK_ID="${SGE_TASK_ID:-undefined}"
[ -z "$SGE_JOB_SPOOL_DIR" ] || set -- "$@" SGE_JOB_SPOOL_DIR="$SGE_JOB_SPOOL_DIR"
if out=$(env -i "$@" "$BIN" configure --config "$CONF" 2>&1); then
    log info "job $JOB of $USER configured: $out"
    exit 0
fi
fail "job $JOB of $USER not started: bdocker configure failed: $(printf '%s\n' "$out" | tail -n 1 | sed 's/^bdocker: //')"
