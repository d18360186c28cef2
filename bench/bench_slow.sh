#!/bin/bash
# bench/bench_slow.sh -- slowloris and slow POST (Debian's slowhttptest) against crossfade, and the
# latency of legitimate clients meanwhile (issue 15). Not a timed test: it reports.
#
# For each case a fresh crossfade (the default workers) in front of one xf-upstream node:
#   baseline:  xfbench at a fixed rate (open loop), nothing else;
#   slowloris: slowhttptest -H keeps ATTACK connections sending a head a few bytes at a time;
#   slow POST: slowhttptest -B sends bodies a few bytes at a time (timeouts.client_request set),
#              64 KiB ones (they stream to the node) and 8 KiB ones (buffered in crossfade).
# xfbench runs while the attack holds its connections; its p50/p99 and errors are printed.
# Environment: BENCH_ATTACK=2000 BENCH_RATE=500 BENCH_SECONDS=15 BENCH_PORT=18700 XF_BIN=bin
set -u
BENCH_NAME=bench_slow
HOST=127.0.0.1
BIN=${XF_BIN:-bin}
ATTACK=${BENCH_ATTACK:-2000}
RATE=${BENCH_RATE:-500}
SECS=${BENCH_SECONDS:-15}
BASE=${BENCH_PORT:-18700}
TMP=
. "$(dirname "$0")/lib.sh"
command -v slowhttptest >/dev/null || die "slowhttptest missing: make deps (Debian's slowhttptest)"
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xf-upstream" ] && [ -x "$BIN/xfbench" ] || die "run make first"
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || ulimit -n "$hard" 2>/dev/null
TMP=$(mktemp -d /tmp/crossfade-bench-slow.XXXXXX) || die "mktemp failed"
NODE_PORT=$((BASE + 1))
XF_PORT=$((BASE + 10))

bench_start_node
cat >"$TMP/crossfade.yaml" <<EOF
listen: [{address: "$HOST:$XF_PORT"}]
admin: {socket: "$TMP/admin.sock"}
split: {weight: 0, key: ["ip"]}
clusters:
  x: {nodes: ["$HOST:$NODE_PORT"]}
  y: {nodes: ["$HOST:$((BASE + 9))"]}
timeouts: {client_header: 10s, client_idle: 60s, client_request: 20s}
limits: {max_connections: $((ATTACK * 2 + 1000))}
access_log: off
log_level: warn
EOF

echo "== crossfade under slowloris and slow POST, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo "   $("$BIN/crossfade" --version 2>&1 | head -1); slowhttptest $(slowhttptest -h 2>&1 | grep -m1 -o 'version [0-9.]*')"
echo "   attack: $ATTACK connections; legitimate load: xfbench -R $RATE for ${SECS}s, 4 connections"
echo "   timeouts: client_header 10s, client_idle 60s, client_request 20s"

# One case: $1 its name, then slowhttptest's mode options (none: no attack).
run_case() {
    local name=$1 xf atk= conns
    shift
    "$BIN/crossfade" -c "$TMP/crossfade.yaml" 2>"$TMP/crossfade.log" &
    xf=$!
    pids+=("$xf")
    wait_port "$XF_PORT" || die "crossfade did not start: $(tail -3 "$TMP/crossfade.log")"
    if [ $# -gt 0 ]; then
        slowhttptest "$@" -c "$ATTACK" -r 500 -i 5 -l $((SECS + 20)) -u "http://$HOST:$XF_PORT/" \
            -p 5 >"$TMP/slow.$name.log" 2>&1 &
        atk=$!
        pids+=("$atk")
        sleep 6 # the attack's connections are open
    fi
    conns=$(ls "/proc/$xf/fd" | wc -l)
    "$BIN/xfbench" -q -t 1 -c 4 -R "$RATE" -d "${SECS}s" --keys 0 "http://$HOST:$XF_PORT/" >"$TMP/xfbench.$name" 2>&1
    printf '   %-10s crossfade holds %5d descriptors; legitimate clients: %s; %s\n' "$name" "$conns" \
        "$(grep -m1 -o 'p50 [0-9.]*ms.*p99 [0-9.]*ms' "$TMP/xfbench.$name" | sed 's/  p90 [0-9.]*ms//')" \
        "$(grep -m1 -o 'errors: *[0-9]*' "$TMP/xfbench.$name" | tr -s ' ')"
    [ -n "$atk" ] && { kill "$atk" 2>/dev/null; wait "$atk" 2>/dev/null; }
    kill -TERM "$xf"
    wait "$xf" 2>/dev/null
}

run_case baseline
run_case slowloris -H -t GET
run_case slow-post -B -t POST -s 65536
# Bodies within limits.request_buffer_bytes (16 KiB): read whole before a node is connected.
run_case slow-post-8k -B -t POST -s 8192
