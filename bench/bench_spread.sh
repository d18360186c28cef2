#!/bin/bash
# bench/bench_spread.sh -- how evenly crossfade's workers share the load: each listener mode
# (SO_REUSEPORT per worker, the default, against one socket shared by every worker's loop) under
# keep-alive load and under a new connection per request. Reports each worker thread's CPU
# (from /proc/PID/task/TID/stat; threads are named xf-worker-N) and the requests/s.
# Stops every process it started.
#
#   bench/bench_spread.sh
#   SPREAD_WORKERS=2 SPREAD_SECONDS=5 SPREAD_CONNS=50 SPREAD_ROUNDS=2 BENCH_PORT=18500 XF_BIN=bin
set -u
cd "$(dirname "$0")/.." || exit 1

WORKERS=${SPREAD_WORKERS:-2}
SECS=${SPREAD_SECONDS:-5}
CONNS=${SPREAD_CONNS:-50}
ROUNDS=${SPREAD_ROUNDS:-2}
BASE=${BENCH_PORT:-18500}
BIN=${XF_BIN:-bin}
HOST=127.0.0.1
NODE_PORT=$((BASE + 1))
XF_PORT=$((BASE + 10))

BENCH_NAME=bench_spread
TMP=
. bench/lib.sh
for v in WORKERS SECS CONNS ROUNDS BASE; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "$v must be a positive integer"
done
command -v wrk >/dev/null || die "wrk is not installed (make deps)"
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xf-upstream" ] || die "$BIN/crossfade or xf-upstream missing: run make"

TMP=$(mktemp -d /tmp/crossfade-spread.XXXXXX) || die "mktemp failed"
for p in "$NODE_PORT" "$XF_PORT"; do port_busy "$p" && die "port $p is in use: set BENCH_PORT"; done

"$BIN/xf-upstream" --listen "$HOST:$NODE_PORT" --name x1 --quiet 2>"$TMP/node.log" &
pids+=("$!")
wait_port "$NODE_PORT" || die "xf-upstream did not start"

# CPU ticks of each worker thread of PID, in thread order, space separated.
worker_ticks() {
    local t name s f out=()
    for t in /proc/"$1"/task/*; do
        name=$(<"$t/comm")
        [[ $name == xf-worker-* ]] || continue
        s=$(<"$t/stat")
        s=${s##*) }
        read -ra f <<<"$s"
        out[${name#xf-worker-}]=$((f[11] + f[12]))
    done
    echo "${out[*]}"
}

echo "== crossfade workers' spread, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores;" \
    "workers $WORKERS; wrk -t2 -c$CONNS -d${SECS}s x $ROUNDS rounds"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %-13s %10s   %s\n' listener load requests/s "CPU ticks per worker (max/min)"
for mode in reuseport shared; do
    cat >"$TMP/xf.yaml" <<EOF
listen: [{address: "$HOST:$XF_PORT"}]
admin: {socket: "$TMP/admin.sock"}
split: {weight: 0}
clusters:
  x: {nodes: ["$HOST:$NODE_PORT"]}
  y: {nodes: ["$HOST:$((BASE + 9))"]}
limits: {max_connections: 20000}
access_log: off
log_level: warn
workers: $WORKERS
EOF
    if [ "$mode" = shared ]; then
        XF_LISTEN_SHARED=1 "$BIN/crossfade" -c "$TMP/xf.yaml" 2>"$TMP/xf-$mode.log" &
    else
        "$BIN/crossfade" -c "$TMP/xf.yaml" 2>"$TMP/xf-$mode.log" &
    fi
    xf=$!
    pids+=("$xf")
    wait_port "$XF_PORT" || die "crossfade did not start: $(tail -3 "$TMP/xf-$mode.log")"
    for load in keep-alive conn-per-req; do
        hdr=()
        [ "$load" = conn-per-req ] && hdr=(-H "Connection: close")
        for r in $(seq 1 "$ROUNDS"); do
            read -ra t0 <<<"$(worker_ticks "$xf")"
            wrk -t2 -c"$CONNS" -d"${SECS}s" "${hdr[@]}" "http://$HOST:$XF_PORT/" >"$TMP/wrk.txt" 2>&1
            read -ra t1 <<<"$(worker_ticks "$xf")"
            rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$TMP/wrk.txt")
            d=() max=0 min=
            for i in "${!t1[@]}"; do
                v=$((t1[i] - t0[i]))
                d+=("$v")
                [ "$v" -gt "$max" ] && max=$v
                { [ -z "$min" ] || [ "$v" -lt "$min" ]; } && min=$v
            done
            ratio=$(awk -v a="$max" -v b="$min" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')
            printf '%-10s %-13s %10s   %s  (%s)\n' "$mode" "$load" "${rps:-?}" "${d[*]}" "$ratio"
        done
    done
    kill -TERM "$xf"
    wait "$xf" 2>/dev/null
    for i in "${!pids[@]}"; do [ "${pids[$i]}" = "$xf" ] && unset 'pids[i]'; done
    pids=("${pids[@]}")
    for _ in $(seq 1 50); do port_busy "$XF_PORT" || break; sleep 0.1; done
done
