#!/usr/bin/env bash
# tools/demo.sh — run bdocker end to end on this machine (Debian 12, root).
#
# Installs what it needs (Docker engine, local registry with a busybox image, test users) via
# tools/test-env.sh, builds and installs bdocker, starts both daemons with demo configs under
# /run/bdocker-demo, and plays one job's life: the prolog's configure, the job's commands as a
# real non-root user, the epilog's clean. Stops what it started at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root" >&2; exit 1; }
export PATH="/opt/swift/usr/bin:/usr/local/bin:$PATH:/usr/sbin:/sbin"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "test environment (Docker engine, registry, users)"
tools/test-env.sh up
# shellcheck disable=SC1091
. /run/bdocker-test/env

say "build and install bdocker"
swift build
tools/install.sh --bin-dir "$(swift build --show-bin-path)"

demo=/run/bdocker-demo
mkdir -p "$demo"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

sed -e "s#^database = .*#database = $demo/working.sqlite#" \
    -e "s#^base_url = .*#base_url = $BDOCKER_TEST_DOCKER_URL#" \
    -e "s#^enable_cgroups = .*#enable_cgroups = false#" \
    etc/configure_bdocker.cfg > "$demo/working.cfg"
sed -e "s#^database = .*#database = $demo/accounting.sqlite#" \
    -e "s#^bdocker_accounting = .*#bdocker_accounting = $demo/bdocker_accounting#" \
    etc/configure_bdocker_accounting.cfg > "$demo/accounting.cfg"

say "start the daemons"
bdockerd --config "$demo/accounting.cfg" --check-config
bdockerd --config "$demo/working.cfg" --check-config
bdockerd --config "$demo/accounting.cfg" 2>>"$demo/accounting.log" & pids+=($!)
bdockerd --config "$demo/working.cfg" 2>>"$demo/working.log" & pids+=($!)
for port in 5000 5001; do
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/status" >/dev/null && break; sleep 0.2; done
    curl -sf "http://127.0.0.1:$port/status"; echo
done

user=${BDOCKER_TEST_USERS%% *}
job=$((RANDOM + 1000))
export BDOCKER_CONF_FILE=$demo/working.cfg
say "prolog: bdocker configure (job $job, user $user)"
token_file=$(JOB_ID=$job USER=$user bdocker configure)
ls -l "$token_file"

say "epilog: bdocker clean"
JOB_ID=$job USER=$user bdocker clean
test ! -e "$token_file" && echo "token file removed"
say "done"
