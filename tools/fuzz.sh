#!/usr/bin/env bash
# tools/fuzz.sh [RUNS] — run bdocker's libFuzzer targets (tools/fuzz/*.swift) RUNS times each.
#
# Each target is built with swiftc straight from the few pure source files its parser needs
# (not through SwiftPM, whose dependencies would all need fuzzer instrumentation), into a
# scratch directory under /tmp that is removed afterwards unless something failed. Each runs
# RUNS inputs (default 20000) grown from its seed corpus tools/fuzz/corpus/<target>/ (which is
# only read). Prints one line per target, then `fuzz: N passed, M failed`; exits 1 if any
# target failed to build or found a crash (the input is kept and its path printed), 2 on bad
# usage or a toolchain without libFuzzer (which says so, then prints `fuzz: 0 passed, 5 failed`).
#
# Needs only the Swift toolchain: libFuzzer and AddressSanitizer ship in it
# (usr/lib/clang/*/lib/linux/libclang_rt.{fuzzer,asan}-x86_64.a). Swift is looked for on PATH,
# then in /opt/swift/usr/bin.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

runs=${1:-20000}
if [[ $# -gt 1 || ! $runs =~ ^[0-9]+$ ]]; then
    echo "usage: tools/fuzz.sh [RUNS]   (RUNS: inputs per target, default 20000)" >&2
    exit 2
fi

targets=(ini sge-spool slurm-job sge-accounting requests)
# Without a usable toolchain nothing runs: say why, and still end with the summary line.
unusable() { for line in "$@"; do echo "fuzz: $line" >&2; done; echo "fuzz: 0 passed, ${#targets[@]} failed"; exit 2; }

command -v swiftc >/dev/null 2>&1 || export PATH="/opt/swift/usr/bin:$PATH"
swiftc=$(command -v swiftc) || unusable "swiftc is not on PATH nor in /opt/swift/usr/bin; install Swift first"
toolchain=$(dirname "$(dirname "$(readlink -f "$swiftc")")")   # .../usr
arch=$(uname -m)
runtime=$(find "$toolchain/lib/clang" "$toolchain/lib/swift/clang" -name "libclang_rt.fuzzer-$arch.a" 2>/dev/null | head -n 1)
asan=$(find "$toolchain/lib/clang" "$toolchain/lib/swift/clang" -name "libclang_rt.asan-$arch.a" 2>/dev/null | head -n 1)
if [[ -z $runtime || -z $asan ]]; then
    unusable "this Swift toolchain ($toolchain) has no libFuzzer/AddressSanitizer runtime" \
        "(looked for libclang_rt.fuzzer-$arch.a and libclang_rt.asan-$arch.a under $toolchain/lib/clang);" \
        "use a swift.org toolchain for Linux, which ships both"
fi
symbolizer="$toolchain/bin/llvm-symbolizer"
[[ -x $symbolizer ]] && export ASAN_SYMBOLIZER_PATH=$symbolizer
# A crash is libFuzzer's to report; Swift's own backtracer would symbolicate at length (and
# can outlive the crashed process, holding its output open).
export SWIFT_BACKTRACE=enable=no

# The sources of each target besides its harness tools/fuzz/<target>.swift. Every target also
# gets tools/fuzz/Support.swift and BDCore's BDockerError.swift (neither imports anything
# but Foundation). Files that `import BDCore` guard it with `#if canImport(BDCore)`, since
# here everything is one module.
declare -A sources=(
    [ini]="Sources/BDConfig/INIFile.swift"
    [sge-spool]="Sources/BDBatch/JobLimits.swift Sources/BDBatch/SGESpoolParsing.swift"
    [slurm-job]="Sources/BDBatch/JobLimits.swift Sources/BDBatch/SlurmJobParsing.swift"
    [sge-accounting]="Sources/BDAccounting/SGEAccounting.swift"
    [requests]="Sources/BDCore/Wire.swift Sources/BDCore/WireContainers.swift Sources/BDCore/DirectJSON.swift Sources/BDAccounting/AccountingWire.swift Sources/BDAccounting/SGEAccounting.swift"
)
scratch=$(mktemp -d /tmp/bdocker-fuzz.XXXXXX)
keep=0
trap '[[ $keep -eq 0 ]] && rm -rf "$scratch"' EXIT

# Build every target first, two at a time (each swiftc is mostly one core).
# Elapsed seconds since $1 (an $EPOCHREALTIME), with one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

build() {
    local target=$1 start=$EPOCHREALTIME
    local files=()
    for f in ${sources[$target]}; do files+=("$root/$f"); done
    if swiftc -sanitize=fuzzer,address -parse-as-library -O -swift-version 6 -module-name BDFuzz \
        "$root/tools/fuzz/$target.swift" "$root/tools/fuzz/Support.swift" "$root/Sources/BDCore/BDockerError.swift" \
        "${files[@]}" -o "$scratch/$target" >"$scratch/$target.build.log" 2>&1; then
        since "$start" >"$scratch/$target.build.seconds"
    else
        rm -f "$scratch/$target"
    fi
}
pids=()
for target in "${targets[@]}"; do
    build "$target" &
    pids+=($!)
    if [[ ${#pids[@]} -ge 2 ]]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for pid in "${pids[@]}"; do wait "$pid"; done

passed=0
failed=0
for target in "${targets[@]}"; do
    if [[ ! -x $scratch/$target ]]; then
        echo "fuzz: $target FAILED to build:"
        grep -E 'error:' "$scratch/$target.build.log" | head -n 20 | sed 's/^/    /'
        failed=$((failed + 1)); keep=1
        continue
    fi
    mkdir -p "$scratch/$target.corpus" "$scratch/$target.crashes"
    start=$EPOCHREALTIME
    # New inputs go to the scratch corpus (first directory); the committed seeds are only read.
    "$scratch/$target" -runs="$runs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -detect_leaks=0 \
        -print_final_stats=0 -artifact_prefix="$scratch/$target.crashes/" \
        "$scratch/$target.corpus" "$root/tools/fuzz/corpus/$target" >"$scratch/$target.log" 2>&1
    status=$?
    took=$(since "$start")
    build_s=$(cat "$scratch/$target.build.seconds")
    if [[ $status -eq 0 ]]; then
        echo "fuzz: $target passed: $runs runs in ${took}s (built in ${build_s}s)"
        passed=$((passed + 1))
    else
        echo "fuzz: $target FAILED (exit $status) after ${took}s:"
        grep -E 'invariant failed|Fatal error|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY|Test unit written' "$scratch/$target.log" \
            | head -n 8 | sed 's/^/    /'
        failed=$((failed + 1)); keep=1
    fi
done

[[ $keep -eq 0 ]] || echo "fuzz: kept $scratch (build logs, crash inputs; rerun one with: $scratch/TARGET CRASH-FILE)"
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
