#!/usr/bin/env bash
# Benchmarks the server (issue 6) and prints a Markdown table of the results.
#
# Builds a Release tree in build-bench/ if needed, then for each scenario starts
# build-bench/bin/server on a free loopback port with a fresh storage file on
# local disk (durability on), drives it, reads its peak RSS, stops it with
# SIGTERM (exit code 0 required) and deletes the storage.
#   1. the bundled datasets with the real client: 5 agencies, LOGGING_LEVEL=INFO
#   2. loadgen: 100 agencies x 100,000 bets (10 M bets), LOGGING_LEVEL=WARNING
#   3. loadgen: 10,000 agencies x 10 bets, 10,000 connections parked at once
#
# Usage: scripts/bench.sh [--quick] [--strace] [--only N] [--window W] [--no-build]
#   --quick    a small matrix for development (2: 10 x 20,000; 3: 1,000 x 10)
#   --strace   also run scenario 1 under `strace -c -f` and count the server's
#              write/writev/fdatasync calls (slower; figures in the notes)
#   --only N   run scenario N only (repeatable)
#   --window W batches in flight per loadgen agency (default 2: with 100
#              agencies that is ~11,600 bets in flight, enough to keep the
#              server busy while p99 stays well under 10 ms; see README)
#   --no-build use the binaries already in build-bench/bin
# Environment: JOBS=N build parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=$root/build-bench
quick=0
no_build=0
use_strace=0
window=2
only=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --strace) use_strace=1 ;;
    --no-build) no_build=1 ;;
    --only)
        only+=("${2:?--only needs a scenario number}")
        shift
        ;;
    --window)
        window=${2:?--window needs a number}
        shift
        ;;
    -h | --help)
        sed -n '2,22p' "$0"
        exit 0
        ;;
    *)
        echo "usage: scripts/bench.sh [--quick] [--strace] [--only N] [--window W] [--no-build]" >&2
        exit 2
        ;;
    esac
    shift
done

die() {
    echo "bench: error: $*" >&2
    exit 1
}
note() { printf '==> %s\n' "$*" >&2; }
wanted() {
    [ ${#only[@]} -eq 0 ] && return 0
    local n
    for n in "${only[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
if [ "$use_strace" = 1 ]; then
    ensure_deps build strace
else
    ensure_deps build
fi

# ------------------------------------------------------------------ build
targets=(server loadgen)
wanted 1 && targets+=(client)
if [ "$no_build" = 0 ]; then
    if [ ! -f "$build/CMakeCache.txt" ]; then
        note "configuring a Release build in build-bench/"
        cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    note "building ${targets[*]} (Release, build-bench/)"
    cmake --build "$build" -j "${JOBS:-2}" --target "${targets[@]}" >/dev/null
fi
server_bin=$build/bin/server
client_bin=$build/bin/client
loadgen_bin=$build/bin/loadgen
for t in "${targets[@]}"; do
    [ -x "$build/bin/$t" ] || die "$build/bin/$t was not built"
done

# ----------------------------------------------------------- environment
# 10,000 connections need 10,000 descriptors in the server and in loadgen.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 10100 ] && [ "$quick" = 0 ] && wanted 3; then
    die "scenario 3 needs 'ulimit -n' >= 10100, the hard limit is $hard"
fi
ulimit -n "$hard"

# Storage lives under build-bench/ on purpose: local disk, not a tmpfs, so the
# fdatasync() per loop iteration costs what it costs in production.
work=$(mktemp -d "$build/bench-run.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fstype=$(findmnt -n -o FSTYPE --target "$work" 2>/dev/null || df -T "$work" | awk 'NR==2{print $2}')
fsdev=$(findmnt -n -o SOURCE --target "$work" 2>/dev/null || echo '?')
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_gib=$(awk '/^MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo)
machine="$(nproc) CPUs ($cpu), ${mem_gib} GiB RAM, Linux $(uname -r); storage on $fstype ($fsdev)"
note "machine: $machine"
note "storage directory: $work ($fstype)"

# ------------------------------------------------------------- the server
# A port nobody is bound to right now (listen failures are retried anyway).
pick_port() {
    local port hex
    while :; do
        port=$((20000 + RANDOM % 30000))
        hex=$(printf '%04X' "$port")
        if ! grep -qi ":$hex " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# Whether 127.0.0.1:<port> is in LISTEN state (st 0A in /proc/net/tcp).
listening() {
    local hex
    hex=$(printf '0100007F:%04X' "$1")
    awk -v a="$hex" '$2 == a && $4 == "0A" {f=1} END {exit !f}' /proc/net/tcp
}

# start_server <dir> <agencies> <log level> [wrapper...]: sets server_pid and
# port; waits (with a deadline) for the server's listen line, or, at WARNING
# where that INFO line is not printed, for its socket to be listening.
start_server() {
    local dir=$1 agencies=$2 level=$3
    shift 3
    local attempt deadline
    for attempt in 1 2 3 4 5; do
        port=$(pick_port)
        rm -f "$dir/server.log" "$dir/bets.csv"
        # cwd is the run directory so no stray config.ini is picked up.
        (
            cd "$dir"
            exec env SERVER_PORT="$port" SERVER_LISTEN_ADDRESS=127.0.0.1 \
                SERVER_LISTEN_BACKLOG=1024 STORAGE_PATH="$dir/bets.csv" \
                AGENCIES="$agencies" LOGGING_LEVEL="$level" "$@" "$server_bin"
        ) >"$dir/server.log" 2>&1 &
        server_pid=$!
        deadline=$((SECONDS + 20))
        while [ $SECONDS -lt $deadline ]; do
            if grep -q 'action: listen | result: success' "$dir/server.log" ||
                { [ "$level" != INFO ] && [ "$level" != DEBUG ] && listening "$port"; }; then
                return 0
            fi
            if grep -q 'action: listen | result: fail' "$dir/server.log" ||
                ! kill -0 "$server_pid" 2>/dev/null; then
                break
            fi
            sleep 0.02
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            kill -TERM "$server_pid" 2>/dev/null || true
        fi
        wait "$server_pid" 2>/dev/null || true
        server_pid=
        note "server did not start on port $port (attempt $attempt):"
        tail -5 "$dir/server.log" >&2 || true
    done
    die "the server never started"
}

# The pid whose /proc/<pid>/status is the server's (under strace, the child).
server_proc_pid() {
    local p=$server_pid child
    if [ "${1:-}" = traced ]; then
        child=$(awk '{print $1}' "/proc/$p/task/$p/children" 2>/dev/null)
        [ -n "$child" ] && p=$child
    fi
    echo "$p"
}

hwm_kib() { awk '/^VmHWM/{print $2}' "/proc/$1/status" 2>/dev/null || echo -1; }

# stop_server <dir> <log level> [signal pid]: SIGTERM, then require exit code 0
# (and the shutdown line when the level prints it).
stop_server() {
    local dir=$1 level=$2 target=${3:-$server_pid} rc=0
    kill -TERM "$target"
    wait "$server_pid" || rc=$?
    server_pid=
    if [ "$rc" != 0 ]; then
        tail -20 "$dir/server.log" >&2
        die "the server exited with code $rc after SIGTERM"
    fi
    if [ "$level" = INFO ] || [ "$level" = DEBUG ]; then
        grep -q 'action: shutdown | result: success' "$dir/server.log" ||
            die "no 'action: shutdown | result: success' in the server log"
    fi
}

rows=()
notes=()
fmt_mib() { awk -v k="$1" 'BEGIN{ if (k < 0) print "?"; else printf "%.1f", k/1024 }'; }
fmt_int() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
result_get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
now_ns() { date +%s%N; }

# ------------------------------------------------ scenario 1: real clients
# start_client <dir> <id>: runs in <dir>, where no config.yaml exists, so the
# client is configured by its CLI_* environment alone.
start_client() {
    (
        cd "$1"
        exec env CLI_ID="$2" CLI_SERVER_ADDRESS="127.0.0.1:$port" \
            CLI_DATASET="$root/datasets/agency-$2.csv" CLI_LOG_LEVEL=INFO "$client_bin"
    ) >"$1/client-$2.log" 2>&1 &
}

scenario_datasets() {
    local dir=$work/s1 i pids=() rc t0 t1 pid hwm bets stored winners
    mkdir -p "$dir"
    note "scenario 1: bundled datasets, 5 real clients, LOGGING_LEVEL=INFO"
    start_server "$dir" 5 INFO
    pid=$(server_proc_pid)
    t0=$(now_ns)
    for i in 1 2 3 4 5; do
        start_client "$dir" "$i"
        pids+=($!)
    done
    for i in 0 1 2 3 4; do
        rc=0
        wait "${pids[$i]}" || rc=$?
        [ "$rc" = 0 ] || {
            tail -5 "$dir/client-$((i + 1)).log" >&2
            die "client $((i + 1)) exited with code $rc"
        }
    done
    t1=$(now_ns)
    hwm=$(hwm_kib "$pid")
    stop_server "$dir" INFO
    bets=$(cat "$root"/datasets/agency-*.csv | wc -l)
    stored=$(wc -l <"$dir/bets.csv")
    [ "$stored" = "$bets" ] || die "scenario 1: $stored rows stored, $bets expected"
    winners=$(for i in 1 2 3 4 5; do
        sed -n 's/.*action: consulta_ganadores | result: success | cant_ganadores: \([0-9]*\).*/\1/p' \
            "$dir/client-$i.log"
    done | paste -sd, -)
    [ "$winners" = "2,3,3,2,0" ] || die "scenario 1: winners per agency $winners, expected 2,3,3,2,0"
    local wall rate lines
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
    rate=$(awk -v n="$bets" -v s="$wall" 'BEGIN{printf "%.0f", n/s}')
    lines=$(grep -c 'action: apuesta_almacenada' "$dir/server.log" || true)
    rows+=("| 1 | datasets, 5 real clients | INFO | $(fmt_int "$bets") | $wall | $(fmt_int "$rate") (end to end) | – | – | – | $(fmt_mib "$hwm") | – |")
    notes+=("Scenario 1: winners per agency $winners; $(fmt_int "$lines") apuesta_almacenada lines logged; wall time = first client started -> last client exited (connect, ingest, raffle, exit).")
    rm -rf "$dir"

    if [ "$use_strace" = 1 ]; then
        mkdir -p "$dir"
        note "scenario 1 again under strace -c -f (syscall counts)"
        start_server "$dir" 5 INFO strace -f -c -o "$dir/strace.txt"
        pid=$(server_proc_pid traced)
        pids=()
        for i in 1 2 3 4 5; do
            start_client "$dir" "$i"
            pids+=($!)
        done
        for i in 0 1 2 3 4; do
            wait "${pids[$i]}" || die "client $((i + 1)) failed under strace"
        done
        stop_server "$dir" INFO "$pid"
        local batches writes writevs syncs
        batches=$(for i in 1 2 3 4 5; do
            sed -n 's/.*action: apuestas_enviadas | result: success | .*batches: \([0-9]*\).*/\1/p' \
                "$dir/client-$i.log"
        done | awk '{s+=$1} END{print s+0}')
        sc() { awk -v n="$1" '$NF==n{print $4; f=1} END{if(!f) print 0}' "$dir/strace.txt"; }
        writes=$(sc write)
        writevs=$(sc writev)
        syncs=$(($(sc fdatasync) + $(sc fsync)))
        notes+=("Scenario 1 under strace -c -f: $(fmt_int "$batches") batches; server syscalls: write $(fmt_int "$writes"), writev $(fmt_int "$writevs"), fdatasync+fsync $(fmt_int "$syncs") ($(awk -v w="$writes" -v b="$batches" 'BEGIN{printf "%.2f", w/b}') write() per batch, $(awk -v w="$syncs" -v b="$batches" 'BEGIN{printf "%.2f", w/b}') syncs per batch).")
        cp "$dir/strace.txt" "$work/strace-s1.txt"
        rm -rf "$dir"
    fi
}

# ---------------------------------------------------- scenarios 2 and 3: loadgen
# scenario_loadgen <n> <label> <agencies> <bets per agency>
scenario_loadgen() {
    local n=$1 label=$2 agencies=$3 bets=$4 dir pid rc=0 line
    dir=$work/s$n
    mkdir -p "$dir"
    note "scenario $n: $label ($agencies agencies x $bets bets, window $window), LOGGING_LEVEL=WARNING"
    start_server "$dir" "$agencies" WARNING
    pid=$(server_proc_pid)
    "$loadgen_bin" -h 127.0.0.1 -p "$port" -a "$agencies" -b "$bets" -w "$window" \
        --server-pid "$pid" >"$dir/loadgen.out" 2>&1 || rc=$?
    cat "$dir/loadgen.out" >&2
    if [ "$rc" != 0 ]; then
        tail -20 "$dir/server.log" >&2
        die "scenario $n: loadgen exited with code $rc"
    fi
    stop_server "$dir" WARNING
    line=$(grep '^RESULT ' "$dir/loadgen.out") || die "scenario $n: no RESULT line"
    local total stored size
    total=$(result_get bets "$line")
    stored=$(wc -l <"$dir/bets.csv")
    size=$(stat -c %s "$dir/bets.csv")
    [ "$stored" = "$total" ] || die "scenario $n: $stored rows stored, $total sent"
    local wall rate p50 p99 raffle hwm wire
    wall=$(result_get total_s "$line")
    rate=$(result_get bets_per_s "$line")
    p50=$(result_get p50_ms "$line")
    p99=$(result_get p99_ms "$line")
    raffle=$(result_get raffle_s "$line")
    hwm=$(result_get server_hwm_kib "$line")
    wire=$(awk -v t="$(result_get tx_bytes "$line")" -v r="$(result_get rx_bytes "$line")" \
        'BEGIN{printf "%.1f", (t+r)/1e6}')
    rows+=("| $n | $label | WARNING | $(fmt_int "$total") | $wall | $(fmt_int "$rate") | $p50 | $p99 | $raffle | $(fmt_mib "$hwm") | $wire MB |")
    notes+=("Scenario $n: $(result_get batches "$line") batches, connect $(result_get connect_s "$line") s, ingest $(result_get ingest_s "$line") s, raffle $(result_get raffle_s "$line") s, $(result_get winners "$line") winners (as generated), storage $(awk -v s="$size" 'BEGIN{printf "%.1f", s/1048576}') MiB; server RSS once all were connected $(fmt_mib "$(result_get server_rss_connected_kib "$line")") MiB.")
    rm -rf "$dir"
}

if [ "$quick" = 1 ]; then
    s2=(10 20000)
    s3=(1000 10)
else
    s2=(100 100000)
    s3=(10000 10)
fi
wanted 1 && scenario_datasets
wanted 2 && scenario_loadgen 2 "loadgen ${s2[0]} × $(fmt_int "${s2[1]}")" "${s2[0]}" "${s2[1]}"
wanted 3 && scenario_loadgen 3 "loadgen $(fmt_int "${s3[0]}") × ${s3[1]}, all parked" "${s3[0]}" "${s3[1]}"

# ------------------------------------------------------------------ table
echo
echo "Machine: $machine."
echo
echo "| # | scenario | log level | bets | wall s | ingest bets/s | batch p50 ms | batch p99 ms | raffle s | server peak RSS MiB | wire |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
for n in "${notes[@]}"; do echo "- $n"; done
