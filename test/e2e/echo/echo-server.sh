#!/bin/sh
# echo-server [plain|alter] [port]: one socat child per connection; each child
# copies the peer's bytes through a filter and closes once the peer half-closes.
set -eu
mode=${1:-plain}
port=${2:-12345}
case "$mode" in
plain) filter='cat' ;;
alter) filter='tr a-z A-Z' ;;
*)
    echo "usage: echo-server [plain|alter] [port]" >&2
    exit 2
    ;;
esac
# exec: socat becomes PID 1's process and gets SIGTERM from `docker stop`.
exec socat -T 30 "TCP-LISTEN:$port,fork,reuseaddr" "SYSTEM:$filter"
