#!/usr/bin/env bash
# The quick start: builds if needed, then runs the server and N agencies
# (default 5) on loopback with the bundled datasets and a fresh storage file,
# and prints each agency's bets and winners and the total time.
#
# Usage: scripts/demo.sh [N]
#   Agency k sends datasets/agency-k.csv (past 5 the datasets repeat:
#   agency 6 sends agency-1.csv, and so on).
# Logs, and the server's bets.csv, are left in build/demo/.
# Exit code 0 when every agency got its winners.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

agencies=${1:-5}
if ! [[ "$agencies" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: scripts/demo.sh [N]   (N agencies, a positive integer; default 5)" >&2
    exit 2
fi

# shellcheck source=scripts/deps.sh
. scripts/deps.sh
ensure_deps build

if [ ! -x build/bin/server ] || [ ! -x build/bin/client ] || [ ! -f build/CMakeCache.txt ]; then
    echo "building (build/)..."
    cmake -S . -B build >/dev/null
fi
cmake --build build --target server client -j "${JOBS:-$(nproc)}" >/dev/null

demo="$root/build/demo"
rm -rf "$demo"
mkdir -p "$demo"

server_pid=
client_pids=()
cleanup() {
    local pid
    for pid in "${client_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

now() { date +%s.%N; }

# Waits (up to $3 seconds) until file $1 holds a line matching $2.
wait_for_line() {
    local file=$1 pattern=$2 deadline
    deadline=$(($(date +%s) + $3))
    while ! grep -q -- "$pattern" "$file" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "$server_pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.05
    done
}

# The server, on a free loopback port: try a few random ones.
port=
for _ in 1 2 3 4 5; do
    candidate=$((20000 + RANDOM % 40000))
    SERVER_PORT=$candidate SERVER_LISTEN_ADDRESS=127.0.0.1 AGENCIES=$agencies \
        STORAGE_PATH="$demo/bets.csv" LOGGING_LEVEL=INFO \
        build/bin/server "$demo/no-config.ini" >"$demo/server.log" 2>&1 &
    server_pid=$!
    if wait_for_line "$demo/server.log" "action: listen | result: success" 10; then
        port=$candidate
        break
    fi
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
done
if [ -z "$port" ]; then
    echo "the server did not start; see $demo/server.log" >&2
    exit 1
fi

# The agencies share one configuration file; each gets its id and dataset
# from the environment, which overrides the file.
cat >"$demo/client.yaml" <<EOF
server:
  address: "127.0.0.1:$port"
log:
  level: "INFO"
EOF
start=$(now)
for k in $(seq 1 "$agencies"); do
    dataset="datasets/agency-$(((k - 1) % 5 + 1)).csv"
    CLI_ID=$k CLI_DATASET=$dataset CLI_MODE=bets \
        build/bin/client "$demo/client.yaml" >"$demo/client-$k.log" 2>&1 &
    client_pids+=($!)
done

status=0
codes=()
for pid in "${client_pids[@]}"; do
    code=0
    wait "$pid" || code=$?
    codes+=("$code")
    [ "$code" = 0 ] || status=1
done
client_pids=()
end=$(now)

kill -TERM "$server_pid"
wait "$server_pid" || status=1
server_pid=

# The value of key $2 on the last `action: $3 | result: success` line of log $1.
field() {
    { grep -- "action: $2 | result: success" "$1" || true; } | tail -n 1 |
        sed -n "s/.*| $3: \([^|]*\).*/\1/p" | tr -d ' '
}

printf '\n%-8s %10s %10s  %s\n' "Agencia" "Apuestas" "Ganadores" "Resultado"
total_bets=0
total_winners=0
for k in $(seq 1 "$agencies"); do
    log="$demo/client-$k.log"
    bets=$(field "$log" apuestas_enviadas cantidad)
    winners=$(field "$log" consulta_ganadores cant_ganadores)
    code=${codes[$((k - 1))]}
    if [ "$code" = 0 ]; then result=ok; else result="error (salida $code, ver $log)"; fi
    printf '%-8s %10s %10s  %s\n' "$k" "${bets:--}" "${winners:--}" "$result"
    total_bets=$((total_bets + ${bets:-0}))
    total_winners=$((total_winners + ${winners:-0}))
done
stored=$(grep -c $'\r$' "$demo/bets.csv" || true)
printf '%-8s %10s %10s\n' "Total" "$total_bets" "$total_winners"
printf '\nApuestas almacenadas por el servidor: %s\n' "$stored"
printf 'Tiempo total: %s s\n' "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')"
printf 'Registros y bets.csv en %s\n' "$demo"
exit $status
