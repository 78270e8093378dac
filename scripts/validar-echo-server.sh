#!/usr/bin/env bash
# validar-echo-server.sh: checks that the server answers an ECHO frame with the
# identical bytes. netcat runs in a throwaway container attached to the compose
# network, so nothing is installed on the host and no port is published.
#
# Reads SERVER_IP and SERVER_PORT from docker/server/config.ini ([DEFAULT]);
# environment variables of the same name override them, as they do for the
# server. Also from the environment:
#   SERVER_CONFIG   the INI file           (default: docker/server/config.ini)
#   DOCKER_NETWORK  the compose network    (default: tp0_testing_net)
#   NETCAT_IMAGE    the netcat image       (default: tp0-netcat:latest, built
#                   from docker/netcat/ when it is missing)
#
# Prints exactly one line on stdout, `action: test_echo_server | result: success`
# or `... | result: fail` (the reason goes to stderr), and exits 0 or 1.
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG=${SERVER_CONFIG:-$ROOT/docker/server/config.ini}
NETWORK=${DOCKER_NETWORK:-tp0_testing_net}
IMAGE=${NETCAT_IMAGE:-tp0-netcat:latest}
# The ECHO opcode of the wire protocol.
OP_ECHO=5

work=""
container=""

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
    if [ -n "$container" ]; then
        docker rm -f "$container" >/dev/null 2>&1 || true
    fi
    if [ -n "$work" ]; then
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

result() {
    printf 'action: test_echo_server | result: %s\n' "$1"
}

fail() {
    printf 'validar-echo-server: %s\n' "$*" >&2
    result fail
    exit 1
}

# ini_get KEY: the value of KEY in the [DEFAULT] section of $CONFIG, trimmed;
# empty when the file or the key is missing.
ini_get() {
    [ -r "$CONFIG" ] || return 0
    awk -v key="$1" '
        { sub(/\r$/, "") }
        /^[ \t]*\[/ { section = $0; gsub(/[ \t\[\]]/, "", section); next }
        /^[ \t]*[;#]/ { next }
        section == "DEFAULT" {
            eq = index($0, "=")
            if (eq == 0) next
            k = substr($0, 1, eq - 1); v = substr($0, eq + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
            if (k == key) { value = v; found = 1 }
        }
        END { if (found) print value }
    ' "$CONFIG"
}

# le32 N: the escapes printf needs for N as a 32-bit little-endian integer.
le32() {
    printf '\\%03o\\%03o\\%03o\\%03o' $(($1 & 255)) $((($1 >> 8) & 255)) \
        $((($1 >> 16) & 255)) $((($1 >> 24) & 255))
}

host=${SERVER_IP:-$(ini_get SERVER_IP)}
port=${SERVER_PORT:-$(ini_get SERVER_PORT)}
[ -n "$host" ] || fail "SERVER_IP is not set in $CONFIG nor in the environment"
[ -n "$port" ] || fail "SERVER_PORT is not set in $CONFIG nor in the environment"
case "$port" in
'' | *[!0-9]*) fail "SERVER_PORT is not a port number: $port" ;;
esac

command -v docker >/dev/null 2>&1 || fail "docker is not installed"
docker network inspect "$NETWORK" >/dev/null 2>&1 \
    || fail "network $NETWORK does not exist (is the system up?)"
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    docker build -q -t "$IMAGE" "$ROOT/docker/netcat" >/dev/null \
        || fail "could not build $IMAGE from docker/netcat"
fi

work=$(mktemp -d) || fail "mktemp failed"
# A body no earlier run sent, so a stale or cached answer cannot pass.
body="validar-echo-server $$ $RANDOM $(date +%s%N)"
header="$(printf '\\%03o' "$OP_ECHO")$(le32 ${#body})"
# shellcheck disable=SC2059 # the format is the header's octal escapes
printf "$header" >"$work/frame"
printf '%s' "$body" >>"$work/frame"

# -N half-closes after the frame, so the server's answer ends the exchange;
# -w bounds the wait when no answer comes.
container="tp0-validar-echo-$$-$RANDOM"
if ! docker run --rm -i --name "$container" --network "$NETWORK" "$IMAGE" \
    -N -w 10 "$host" "$port" <"$work/frame" >"$work/reply" 2>"$work/err"; then
    fail "netcat could not talk to $host:$port: $(tr '\n' ' ' <"$work/err")"
fi
container=""

if ! cmp -s "$work/frame" "$work/reply"; then
    fail "the reply differs from the frame sent: sent $(od -An -c "$work/frame" | tr -s ' \n' ' '); got $(od -An -c "$work/reply" | tr -s ' \n' ' ')"
fi
result success
exit 0
