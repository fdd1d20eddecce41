#!/usr/bin/env bash
# tools/bench-run.sh — a full `bdocker run` of a trivial container (create, start, stream the
# output, exit) versus `docker run` of the same image on the same engine: N runs each, medians
# and their ratio printed. Root; uses the test environment (tools/test-env.sh).
#
#   tools/bench-run.sh [RUNS=20] [BIN_DIR=$(swift build --show-bin-path)]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
bin=${2:-$(swift build --show-bin-path)}
[[ $(id -u) -eq 0 ]] || { echo "bench-run: run as root" >&2; exit 1; }
tools/test-env.sh up >/dev/null
# shellcheck disable=SC1091
. /run/bdocker-test/env
user=${BDOCKER_TEST_USERS%% *}
work=$(mktemp -d /tmp/bdocker-bench-XXXXXX)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/admin_token"; chmod 600 "$work/admin_token"
sed -e "s#^database = .*#database = $work/w.sqlite#" -e "s#^base_url = .*#base_url = $BDOCKER_TEST_DOCKER_URL#" \
    -e "s#^admin_token_file = .*#admin_token_file = $work/admin_token#" -e "s#^socket = .*#socket = $work/run/bdockerd.sock#" \
    -e "s#^bind_staging = .*#bind_staging = $work/binds#" \
    -e "s#^parent_cgroup = .*#parent_cgroup = /bdocker-bench#" etc/configure_bdocker.cfg > "$work/w.cfg"
mkdir -p "$work/run"; chmod 755 "$work" "$work/run"; chmod 644 "$work/w.cfg"
"$bin/bdockerd" --config "$work/w.cfg" 2>"$work/d.log" & dpid=$!
job=$((RANDOM + 100000))
cleanup() {
    JOB_ID=$job USER=$user "$bin/bdocker" clean --config "$work/w.cfg" >/dev/null 2>&1 || true
    kill "$dpid" 2>/dev/null; wait "$dpid" 2>/dev/null || true
    for h in /sys/fs/cgroup/*/; do rmdir "$h/bdocker-bench" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf --unix-socket "$work/run/bdockerd.sock" http://bdockerd/status >/dev/null && break; sleep 0.1; done
JOB_ID=$job USER=$user "$bin/bdocker" configure --config "$work/w.cfg" >/dev/null
as_user() { setpriv --reuid="$user" --regid="$user" --init-groups env HOME="/home/$user" JOB_ID=$job BDOCKER_CONF_FILE="$work/w.cfg" "$@"; }
as_user "$bin/bdocker" pull "$BDOCKER_TEST_IMAGE" >/dev/null
docker_cli() { /usr/bin/docker -H "$BDOCKER_TEST_DOCKER_URL" "$@"; }

time_runs() { # label command...
    local label=$1; shift
    for _ in $(seq "$runs"); do
        local t0 t1
        t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
        echo $(( (t1 - t0) / 1000 ))
    done | sort -n | awk -v label="$label" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%s: median %.1f ms (min %.1f, max %.1f) over %d runs\n", label, m/1000, a[1]/1000, a[NR]/1000, NR; print m > "/dev/stderr"}'
}
exec 3>&1
bm=$( { time_runs "bdocker run" as_user "$bin/bdocker" run "$BDOCKER_TEST_IMAGE" echo hi 1>&3; } 2>&1 )
dm=$( { time_runs "docker run " docker_cli run --label bdocker.bench=1 "$BDOCKER_TEST_IMAGE" echo hi 1>&3; } 2>&1 )
docker_cli ps -aq --filter label=bdocker.bench=1 | xargs -r /usr/bin/docker -H "$BDOCKER_TEST_DOCKER_URL" rm -f >/dev/null
awk -v b="$bm" -v d="$dm" 'BEGIN {printf "ratio bdocker/docker (medians): %.2f\n", b/d}'
