#!/usr/bin/env bash
# tools/bench.sh — the benchmark suite: every figure of docs/PERFORMANCE.md next to the
# machine's own limit for the same work, measured in the same run. Prints a table and writes
# the figures as JSON. Not a test: numbers, no pass/fail. Root (cgroup-free, but the node bench
# configures jobs for a real user and bench-run.sh runs containers); release build.
#
#   bash tools/bench.sh [--quick] [--json FILE]
#
# --quick: smaller sizes (configure/ps at 100 and 1,000 jobs, 1,000 notifications, 5 container
# runs) for a look in about two minutes. Default JSON file: bench-results.json in the current
# directory.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 json=$PWD/bench-results.json
while (($#)); do
    case $1 in
        --quick) quick=1; shift ;;
        --json) json=$2; shift 2 ;;
        *) echo "usage: bash tools/bench.sh [--quick] [--json FILE]" >&2; exit 2 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root" >&2; exit 1; }
export PATH="/opt/swift/usr/bin:$PATH"
tools/test-env.sh up >/dev/null
# shellcheck disable=SC1091
. /run/bdocker-test/env

swift build -c release --product bdockerd >/dev/null
swift build -c release --product bdocker >/dev/null
swift build -c release --product bdocker-acct >/dev/null
swift build -c release --product bdocker-bench >/dev/null
bin=$(swift build -c release --show-bin-path)
lines=$(mktemp /tmp/bdocker-bench-results.XXXXXX)
trap 'rm -f "$lines"' EXIT

if ((quick)); then sizes=100,1000 monitor_jobs=(1000) notifications=1000 records=100000 runs=5
else sizes=100,1000,10000,100000 monitor_jobs=(1000 10000) notifications=4000 records=1000000 runs=20; fi

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), /var/tmp on $(stat -f -c %T /var/tmp)"
echo "== configure and ps against a real bdockerd, by live jobs in its store"
"$bin/bdocker-bench" node --jobs "$sizes" --json "$lines"
echo "== monitor tick"
for n in "${monitor_jobs[@]}"; do "$bin/bdocker-bench" monitor "$n" 10 --json "$lines"; done
echo "== accounting"
"$bin/bdocker-bench" accounting --notifications "$notifications" --export-records "$records" --json "$lines"
echo "== bdocker run vs docker run"
run_out=$(bash tools/bench-run.sh "$runs" "$bin")
echo "$run_out"
ratio=$(awk '/^ratio/ {print $NF}' <<<"$run_out")
bdocker_ms=$(awk -F'median ' '/^bdocker run/ {split($2, a, " "); print a[1]}' <<<"$run_out")
docker_ms=$(awk -F'median ' '/^docker run/ {split($2, a, " "); print a[1]}' <<<"$run_out")
printf '{"limit":%s,"limit_name":"docker run of the same image","name":"bdocker run, trivial container","unit":"ms","value":%s}\n' \
    "$docker_ms" "$bdocker_ms" >>"$lines"

# The table, and the JSON document (one array of figures plus the machine).
python3 - "$lines" "$json" <<'PY'
import json, os, platform, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
print(f"{'figure':60} {'value':>12}  {'limit':>12}  ratio")
for r in rows:
    limit = r.get("limit")
    ratio = f"{r['value'] / limit:.2f}" if limit else ""
    lim = f"{limit:.3f}" if limit is not None else ""
    print(f"{r['name']:60} {r['value']:>12.3f}  {lim:>12}  {ratio}  {r['unit']}")
doc = {"machine": {"cores": os.cpu_count(), "kernel": platform.release()}, "figures": rows}
json.dump(doc, open(sys.argv[2], "w"), indent=1)
print(f"\nJSON: {sys.argv[2]}")
PY
