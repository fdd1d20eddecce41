#!/usr/bin/env bash
# tools/demo.sh — bdocker end to end on this machine (Debian 12, root), the way a site runs it.
#
# Installs and starts what it needs: a Docker engine and a local registry with a busybox image
# (tools/test-env.sh), Grid Engine with bdocker's prolog and epilog on its queue
# (tools/gridengine.sh), bdocker itself (tools/install.sh) and both daemons. Then a test user
# submits a real job that pulls an image, runs a container that burns CPU and writes into HOME
# through -v, lists it and copies a file out; it prints the job's line from the bdocker
# accounting file and what `qacct -f` reads from it. Then the same job under Slurm
# (tools/slurm.sh, with bdocker's Prolog, Epilog and TaskProlog, and a second working daemon as
# a Slurm node has it), its record in the same accounting file, and `bdocker-acct summary` over
# both systems. Stops the bdocker daemons it started.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root" >&2; exit 1; }
export PATH="/opt/swift/usr/bin:/usr/local/bin:$PATH:/usr/sbin:/sbin"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Docker engine, registry with a busybox image, test users"
tools/test-env.sh up
# shellcheck disable=SC1091
. /run/bdocker-test/env
user=${BDOCKER_TEST_USERS%% *}
home=$(getent passwd "$user" | cut -d: -f6)

say "build and install bdocker"
swift build
tools/install.sh --bin-dir "$(swift build --show-bin-path)"

# Demo configs and state under /run/bdocker-demo: the site's /etc files are left alone.
demo=/run/bdocker-demo
mkdir -p "$demo"; chmod 755 "$demo"
sed -e "s#^database = .*#database = $demo/working.sqlite#" -e "s#^base_url = .*#base_url = $BDOCKER_TEST_DOCKER_URL#" \
    -e "s#^monitoring_time = .*#monitoring_time = 2#" etc/configure_bdocker.cfg >"$demo/working.cfg"
sed -e "s#^database = .*#database = $demo/accounting.sqlite#" \
    -e "s#^bdocker_accounting = .*#bdocker_accounting = $demo/bdocker_accounting#" \
    etc/configure_bdocker_accounting.cfg >"$demo/accounting.cfg"
chmod 644 "$demo"/*.cfg
site=/etc/default/bdocker
saved=
if [[ -e $site ]]; then saved=$demo/default.saved; cp -p "$site" "$saved"; fi
printf 'BDOCKER_BIN=/usr/local/bin/bdocker\nBDOCKER_CONF_FILE=%s\n' "$demo/working.cfg" >"$site"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n $saved ]]; then cp -p "$saved" "$site"; else rm -f "$site"; fi
}
trap cleanup EXIT

say "start both bdocker daemons"
bdockerd --config "$demo/accounting.cfg" --check-config
bdockerd --config "$demo/working.cfg" --check-config
bdockerd --config "$demo/accounting.cfg" 2>>"$demo/accounting.log" & pids+=($!)
bdockerd --config "$demo/working.cfg" 2>>"$demo/working.log" & pids+=($!)
# The accounting daemon listens on TCP; the working node on its unix socket only.
working_socket=$(sed -n 's/^socket *= *//p' "$demo/working.cfg")
for target in "http://127.0.0.1:5001/status" "--unix-socket $working_socket http://bdockerd/status"; do
    # shellcheck disable=SC2086
    for _ in $(seq 100); do curl -sf $target >/dev/null && break; sleep 0.1; done
    # shellcheck disable=SC2086
    curl -sf $target; echo
done

say "Grid Engine with bdocker's prolog and epilog"
BDOCKER_PROLOG=/usr/local/libexec/bdocker/prolog.sh BDOCKER_EPILOG=/usr/local/libexec/bdocker/epilog.sh tools/gridengine.sh up
# shellcheck disable=SC1091
. /run/bdocker-sge/env

job_script=$demo/job.sh
cat >"$job_script" <<JOB
#!/bin/sh
# The scientist's job. The prolog made \$HOME/.bdocker_token_<job id>; bdocker finds it.
set -e
JOB_ID=\${JOB_ID:-\$SLURM_JOB_ID}   # Grid Engine's, else Slurm's
mkdir -p "\$HOME/demo-\$JOB_ID"
echo "--- bdocker pull"; bdocker pull $BDOCKER_TEST_IMAGE
echo "--- bdocker run -d (a container to look at)"; id=\$(bdocker run -d $BDOCKER_TEST_IMAGE sleep 120); echo "\$id"
echo "--- bdocker run (burns 3 s of CPU, writes into HOME through -v)"
bdocker run -v "\$HOME/demo-\$JOB_ID:/out" -w /out $BDOCKER_TEST_IMAGE sh -c \
  'while :; do read -r l < /proc/\$\$/stat; set -- \$l; [ \$(( \${14} + \${15} )) -ge 300 ] && break; done; id > result.txt; echo burned 3 CPU seconds'
ls -l "\$HOME/demo-\$JOB_ID"
echo "--- bdocker ps -a"; bdocker ps -a
echo "--- bdocker cp"; bdocker cp "\$id:/etc/passwd" "\$HOME/demo-\$JOB_ID/passwd.copy"; ls -l "\$HOME/demo-\$JOB_ID/passwd.copy"
JOB
chmod 755 "$job_script"

say "qsub as $user"
: >"$demo/job.out"; : >"$demo/job.err"; chown "$user" "$demo/job.out" "$demo/job.err"
job=$(su -s /bin/sh "$user" -c "cd ~ && SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL qsub -terse -N bdocker-demo -o $demo/job.out -e $demo/job.err -v BDOCKER_CONF_FILE=$demo/working.cfg $job_script")
echo "submitted job $job"
for _ in $(seq 240); do qstat -u '*' | awk 'NR>2 {print $1}' | grep -qx "$job" || break; sleep 0.5; done
say "the job's output"
cat "$demo/job.out" "$demo/job.err" 2>/dev/null || true

say "the job's line in the bdocker accounting file ($demo/bdocker_accounting)"
for _ in $(seq 40); do grep -q "^[^#]*:$job:" "$demo/bdocker_accounting" 2>/dev/null && break; sleep 0.5; done
grep -v '^#' "$demo/bdocker_accounting" | awk -F: -v j="$job" '$6 == j'

say "qacct -f $demo/bdocker_accounting -j $job"
qacct -f "$demo/bdocker_accounting" -j "$job"

say "what the queue's own accounting saw of the same job (the containers are not in it)"
qacct -j "$job" | grep -E '^(cpu|maxvmem|ru_wallclock)' || true
rm -rf "${home:?}/demo-$job"

say "a Slurm node's bdockerd: controller SlurmWNController, records to the same accounting daemon"
# Its own socket, state and cgroup parent, so that it runs beside the Grid Engine node's.
sed -e 's/^controller = SGEWNController$/controller = SlurmWNController/' \
    -e "s#^socket = .*#socket = $demo/slurm/bdockerd.sock#" -e "s#^bind_staging = .*#bind_staging = $demo/slurm/binds#" \
    -e "s#^database = .*#database = $demo/working-slurm.sqlite#" -e 's#^parent_cgroup = .*#parent_cgroup = /bdocker-slurm#' \
    "$demo/working.cfg" >"$demo/working-slurm.cfg"
chmod 644 "$demo/working-slurm.cfg"
install -d -m 755 "$demo/slurm"
bdockerd --config "$demo/working-slurm.cfg" --check-config
bdockerd --config "$demo/working-slurm.cfg" 2>>"$demo/working-slurm.log" & pids+=($!)
for _ in $(seq 100); do curl -sf --unix-socket "$demo/slurm/bdockerd.sock" http://bdockerd/status >/dev/null && break; sleep 0.1; done
curl -sf --unix-socket "$demo/slurm/bdockerd.sock" http://bdockerd/status; echo
# The Slurm scripts read the same site file: now it names this node's config.
printf 'BDOCKER_BIN=/usr/local/bin/bdocker\nBDOCKER_CONF_FILE=%s\n' "$demo/working-slurm.cfg" >"$site"

say "Slurm with bdocker's Prolog, Epilog and TaskProlog"
BDOCKER_SLURM_PROLOG=/usr/local/libexec/bdocker/slurm/prolog.sh BDOCKER_SLURM_EPILOG=/usr/local/libexec/bdocker/slurm/epilog.sh \
    BDOCKER_SLURM_TASKPROLOG=/usr/local/libexec/bdocker/slurm/taskprolog.sh tools/slurm.sh up
# shellcheck disable=SC1091
. /run/bdocker-slurm/env

say "sbatch as $user (partition $BDOCKER_SLURM_PARTITION)"
: >"$demo/slurm-job.out"; chown "$user" "$demo/slurm-job.out"
sjob=$(su -s /bin/sh "$user" -c "cd ~ && sbatch --parsable -J bdocker-demo -n1 -c1 --mem=1G -t 10 -o $demo/slurm-job.out --export=ALL,BDOCKER_CONF_FILE=$demo/working-slurm.cfg $job_script")
echo "submitted job $sjob"
for _ in $(seq 240); do [[ -z $(squeue -h -j "$sjob" 2>/dev/null) ]] && break; sleep 0.5; done
scontrol show job "$sjob" | grep -E 'JobState|ExitCode' || true
say "the job's output"
cat "$demo/slurm-job.out" 2>/dev/null || true

say "the Slurm job's line in the same accounting file (queue = the partition)"
for _ in $(seq 40); do grep -q "^$BDOCKER_SLURM_PARTITION:[^:]*:[^:]*:[^:]*:[^:]*:$sjob:" "$demo/bdocker_accounting" 2>/dev/null && break; sleep 0.5; done
grep -v '^#' "$demo/bdocker_accounting" | awk -F: -v j="$sjob" -v q="$BDOCKER_SLURM_PARTITION" '$6 == j && $1 == q'

say "qacct -f $demo/bdocker_accounting -j $sjob -q $BDOCKER_SLURM_PARTITION"
qacct -f "$demo/bdocker_accounting" -j "$sjob" -q "$BDOCKER_SLURM_PARTITION"

say "bdocker-acct summary --by queue: both batch systems"
bdocker-acct summary --database "$demo/accounting.sqlite" --by queue
rm -rf "${home:?}/demo-$sjob"
say "done"
