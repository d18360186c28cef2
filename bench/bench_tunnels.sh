#!/bin/bash
# bench/bench_tunnels.sh -- WebSocket tunnels on a rollback: N clients on y (weight 100), then
# `xfctl rollback` with tunnels.close_rate R; measures how the closings spread (span, the most in
# any second), their close codes, and where each client reconnects. Two WebSocket echo nodes
# (tests/integration/ws_echo.py, python3-websockets) on loopback. Stops every process it started.
#
#   bench/bench_tunnels.sh [--quick]
#   TUNNELS=2000 CLOSE_RATE=500 BENCH_WORKERS=2 BENCH_PORT=18600 XF_BIN=bin BENCH_KEEP=1
# Exits non-zero only when the setup fails; a figure, good or bad, never changes the exit status.
set -u
cd "$(dirname "$0")/.." || exit 1

N=${TUNNELS:-2000}
RATE=${CLOSE_RATE:-500}
for arg in "$@"; do
    case $arg in
    --quick) N=${TUNNELS:-200} ;;
    -h | --help)
        sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench_tunnels: unknown argument $arg (try --help)" >&2
        exit 2
        ;;
    esac
done
WORKERS=${BENCH_WORKERS:-2}
BASE=${BENCH_PORT:-18600}
BIN=${XF_BIN:-bin}
HOST=127.0.0.1
PY=/usr/bin/python3

BENCH_NAME=bench_tunnels
TMP=
. bench/lib.sh
for v in N RATE WORKERS BASE; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
        die "$v must be a positive integer, got '${!v}'"
    fi
done
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xfctl" ] || die "$BIN/crossfade or xfctl missing: run make"
"$PY" -c 'import websockets' 2>/dev/null || die "python3-websockets is missing (make deps installs it)"
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || ulimit -n "$hard" 2>/dev/null
[ "$(ulimit -n)" -ge $((N * 3 + 200)) ] || die "ulimit -n $(ulimit -n) is too low for $N tunnels"

TMP=$(mktemp -d /tmp/crossfade-bench-tunnels.XXXXXX) || die "mktemp failed"

X_PORT=$((BASE + 1))
Y_PORT=$((BASE + 2))
XF_PORT=$((BASE + 10))
for p in "$X_PORT" "$Y_PORT" "$XF_PORT"; do
    port_busy "$p" && die "port $HOST:$p is in use: stop what holds it or set BENCH_PORT"
done

cat >"$TMP/crossfade.yaml" <<EOF
# crossfade under bench/bench_tunnels.sh: every client on y, then a rollback.
listen: [{address: "$HOST:$XF_PORT"}]
admin: {socket: "$TMP/admin.sock"}
split: {weight: 100, key: ["ip"], seed: "bench"}
clusters:
  x: {nodes: ["$HOST:$X_PORT"]}
  y: {nodes: ["$HOST:$Y_PORT"]}
tunnels: {close_rate: $RATE}
limits: {max_connections: $((N * 3 + 100))}
access_log: off
log_level: warn
workers: $WORKERS
EOF

echo "== crossfade tunnel benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo "   $("$BIN/crossfade" --version 2>&1 | head -1); $N WebSocket tunnels on y, tunnels.close_rate $RATE, workers $WORKERS"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" tests/integration/ws_echo.py --port "$X_PORT" --name x1 >"$TMP/x1.log" 2>&1 &
pids+=("$!")
"$PY" tests/integration/ws_echo.py --port "$Y_PORT" --name y1 >"$TMP/y1.log" 2>&1 &
pids+=("$!")
"$BIN/crossfade" -c "$TMP/crossfade.yaml" >"$TMP/crossfade.out" 2>"$TMP/crossfade.log" &
pids+=("$!")
wait_port "$X_PORT" && wait_port "$Y_PORT" || die "the echo nodes did not start"
wait_port "$XF_PORT" || die "crossfade did not start: $(tail -3 "$TMP/crossfade.log")"

"$PY" bench/bench_ws_rollback.py "ws://$HOST:$XF_PORT/" "$N" 60 >"$TMP/clients.out" 2>"$TMP/clients.err" &
CL=$!
pids+=("$CL")
for _ in $(seq 1 600); do
    grep -q '^ready' "$TMP/clients.out" 2>/dev/null && break
    sleep 0.1
done
grep -q "^ready $N\$" "$TMP/clients.out" || die "not every client connected: $(head -1 "$TMP/clients.out") $(tail -2 "$TMP/clients.err")"
echo "   before: $("$BIN/xfctl" -s "$TMP/admin.sock" show tunnels | tail -1)"
echo "  \$ xfctl rollback"
"$BIN/xfctl" -s "$TMP/admin.sock" rollback | sed 's/^/   /'
wait "$CL"
"$PY" - "$TMP/clients.out" "$N" "$RATE" <<'PYEOF'
import collections, json, sys
lines = open(sys.argv[1]).read().splitlines()
res = json.loads(lines[-1])
n, rate = int(sys.argv[2]), int(sys.argv[3])
if not res:
    print("   no client was closed"); sys.exit(0)
t0 = min(r["t"] for r in res)
span = max(r["t"] for r in res) - t0
times = sorted(r["t"] - t0 for r in res)
# the most closings in any window of one second
most, j = 0, 0
for i in range(len(times)):
    while times[i] - times[j] >= 1.0:
        j += 1
    most = max(most, i - j + 1)
codes = collections.Counter(r["code"] for r in res)
again = collections.Counter(r["again"] for r in res)
print(f"   closed {len(res)} of {n} over {span:.2f} s (expected about {n / rate:.1f} s at {rate}/s); "
      f"the most in any second: {most}")
print(f"   close codes: {dict(codes)}")
print(f"   reconnected to: {dict(again)}")
PYEOF
echo "   after: $("$BIN/xfctl" -s "$TMP/admin.sock" show tunnels | tail -1)"
echo "   load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
