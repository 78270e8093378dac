#!/usr/bin/env bash
# Runs the libFuzzer targets (test/fuzz/) for a given time each: builds them in
# build-fuzz/ with clang (-fsanitize=fuzzer,address,undefined; the core is
# built with fuzzer-no-link,address,undefined), seeds a work corpus in
# build-fuzz/corpus/<target>/ from test/fuzz/corpus/<target>/, runs, and prints
# each target's executions per second. On a crash, leak, timeout or OOM the
# reproducer is copied into test/fuzz/corpus/<target>/ (a regression case the
# ctest replay runs from then on) and the script exits 1.
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]
#   seconds   default 600; targets default: protocol dataset_csv storage
# Environment:
#   FUZZ_SKIP_BUILD=1   use the fuzzers already built (for parallel runs)
#   ASAN_OPTIONS        default: quarantine_size_mb=64 (bounded RSS)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$root/build-fuzz

case "${1:-}" in
-h | --help)
    sed -n '2,16p' "$0"
    exit 0
    ;;
esac
seconds=${1:-600}
[ $# -gt 0 ] && shift
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [seconds-per-target >= 1] [target...]" >&2
    exit 2
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(protocol dataset_csv storage)
for t in "${targets[@]}"; do
    [ -f "test/fuzz/fuzz_$t.c" ] || {
        echo "fuzz: unknown target '$t'" >&2
        exit 2
    }
done

if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
    # shellcheck source=scripts/deps.sh
    . scripts/deps.sh
    ensure_deps build fuzz
    # Warnings are the normal build's business (gcc and clang-tidy); here a
    # clang-only warning must not stop the fuzzing.
    cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DTP0_FUZZ=ON -DTP0_WERROR=OFF \
        -DTP0_SANITIZE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
        >/dev/null
    cmake --build "$build" -j 2 --target fuzzers
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=()
for t in "${targets[@]}"; do
    work=$build/corpus/$t
    artifacts=$build/artifacts/$t
    log=$build/fuzz-$t.log
    mkdir -p "$work"
    rm -rf "$artifacts"
    mkdir -p "$artifacts"
    dict=()
    case "$t" in
    protocol) dict=(-dict="$root/test/fuzz/protocol.dict") ;;
    *) dict=(-dict="$root/test/fuzz/csv.dict") ;;
    esac
    echo "fuzz: $t for ${seconds}s (log: $log)"
    rc=0
    "$build/bin/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 \
        -rss_limit_mb=2048 -artifact_prefix="$artifacts/" "${dict[@]}" \
        "$work" "$root/test/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    # Slow units are a note, not a failure; everything else is a finding.
    found=()
    for f in "$artifacts"/*; do
        [ -e "$f" ] || continue
        case "$(basename "$f")" in
        slow-unit-*) continue ;;
        esac
        found+=("$f")
    done
    if [ "$rc" -ne 0 ] || [ ${#found[@]} -gt 0 ]; then
        status=1
        summary+=("$t: FAILED (exit $rc) after ${execs:-?} executions")
        echo "fuzz: $t found a problem; the end of its log:" >&2
        tail -n 40 "$log" >&2
        for f in "${found[@]}"; do
            cp "$f" "test/fuzz/corpus/$t/"
            echo "fuzz: reproducer kept as test/fuzz/corpus/$t/$(basename "$f")" >&2
        done
    else
        summary+=("$t: ok, ${seconds}s, ${execs:-?} executions, ${rate:-?} exec/s, ${cov:-cov: ?}")
    fi
done

echo
printf 'fuzz: %s\n' "${summary[@]}"
exit $status
