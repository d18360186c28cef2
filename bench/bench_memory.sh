#!/bin/bash
# bench/bench_memory.sh -- does memory come back after a burst? (issue 15)
#
# For each case, a fresh crossfade (one worker) in front of one xf-upstream node:
#   idle:        N keep-alive client connections, one request each, then idle;
#   after burst: N requests at once first (GET /delay/300, N connections), then the same.
# Reported: crossfade's resident memory above its idle baseline (after a warm-up of 50 requests),
# per idle connection.
# Environment: BENCH_CONNS=5000 BENCH_WORKERS=1 BENCH_PORT=18600 XF_BIN=bin BENCH_KEEP=1
set -u
BENCH_NAME=bench_memory
HOST=127.0.0.1
BIN=${XF_BIN:-bin}
N=${BENCH_CONNS:-5000}
WORKERS=${BENCH_WORKERS:-1}
BASE=${BENCH_PORT:-18600}
TMP=
. "$(dirname "$0")/lib.sh"
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xf-upstream" ] || die "$BIN/crossfade or xf-upstream missing: run make"
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || ulimit -n "$hard" 2>/dev/null
[ "$(ulimit -n)" -ge $((N * 2 + 200)) ] || die "ulimit -n $(ulimit -n) is too low for $N connections"
TMP=$(mktemp -d /tmp/crossfade-bench-memory.XXXXXX) || die "mktemp failed"
NODE_PORT=$((BASE + 1))
XF_PORT=$((BASE + 10))

bench_start_node
cat >"$TMP/crossfade.yaml" <<EOF
listen: [{address: "$HOST:$XF_PORT"}]
admin: {socket: "$TMP/admin.sock"}
split: {weight: 0, key: ["ip"]}
clusters:
  x: {nodes: ["$HOST:$NODE_PORT"], max_idle: ${BENCH_MAX_IDLE:-auto}}
  y: {nodes: ["$HOST:$((BASE + 9))"]}
limits: {max_connections: $((N * 2 + 100))}
access_log: off
log_level: warn
workers: $WORKERS
EOF

echo "== crossfade memory benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $N connections, workers $WORKERS"
echo "   $("$BIN/crossfade" --version 2>&1 | head -1)"
for burst in 0 1; do
    "$BIN/crossfade" -c "$TMP/crossfade.yaml" 2>"$TMP/crossfade.$burst.log" &
    xf=$!
    pids+=("$xf")
    wait_port "$XF_PORT" || die "crossfade did not start: $(tail -3 "$TMP/crossfade.$burst.log")"
    # The baseline: crossfade idle, having served (its per-node statistics and the code of the
    # request path are resident), with no connection open.
    python3 "$(dirname "$0")/bench_memory.py" "$HOST" "$XF_PORT" 50 warm || die "the warm-up failed"
    sleep 2.5 # the blocks of the warm-up are given back after a second without use
    base=$(rss_kib "$xf")
    coproc CLIENTS { python3 "$(dirname "$0")/bench_memory.py" "$HOST" "$XF_PORT" "$N" "$burst" 2>&1; }
    read -r line <&"${CLIENTS[0]}" || die "the clients failed"
    [ "$line" = ready ] || die "the clients: $line"
    sleep 2.5 # let crossfade's periodic work (and any give-back) run
    idle=$(rss_kib "$xf")
    echo ok >&"${CLIENTS[1]}"
    wait "$CLIENTS_PID" 2>/dev/null
    name=$([ "$burst" = 1 ] && echo "after a burst of $N" || echo "no burst")
    awk -v n="$N" -v b="$base" -v i="$idle" -v name="$name" \
        'BEGIN {printf "   %-22s RSS %6d KiB idle -> %6d KiB with %d idle connections: %.2f KiB each\n", name, b, i, n, (i - b) / n}'
    kill -TERM "$xf"
    wait "$xf" 2>/dev/null
done
