#!/bin/bash
# bench/lib.sh -- what the benchmark scripts share: processes stopped at exit, free and ready
# ports, CPU and memory of a process, the median of a column, and an alternating order. Sourced
# after the script sets BENCH_NAME (for messages), HOST and TMP (a scratch directory, or empty).

pids=()
die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}
show() { echo "  \$ $*"; }

# Stops every process in pids (TERM, then KILL after 5 s) and removes TMP unless BENCH_KEEP=1.
bench_cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 1 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    if [ -n "${TMP:-}" ] && [ -d "$TMP" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "$BENCH_NAME: kept $TMP"; else rm -rf "$TMP"; fi
    fi
}
trap bench_cleanup EXIT
trap 'echo "$BENCH_NAME: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 100); do
        port_busy "$1" && return 0
        sleep 0.05
    done
    return 1
}
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# The order alternates from round to round, so that neither server always runs first.
order() { if [ $(($1 % 2)) = 1 ]; then echo crossfade haproxy; else echo haproxy crossfade; fi; }

# Starts one xf-upstream node, x1, on NODE_PORT and waits until it listens.
bench_start_node() {
    show "$BIN/xf-upstream --listen $HOST:$NODE_PORT --name x1 --quiet"
    "$BIN/xf-upstream" --listen "$HOST:$NODE_PORT" --name x1 --quiet 2>"$TMP/node.log" &
    pids+=("$!")
    wait_port "$NODE_PORT" || die "xf-upstream did not start"
}

# Starts one xf-upstream node on NODE_PORT, then crossfade ($TMP/crossfade.yaml, on XF_PORT) and
# HAProxy ($TMP/haproxy.cfg, on HA_PORT), each config checked first; sets XF_PID, HA_PID and the
# arrays PORT and PID keyed by crossfade and haproxy.
bench_start_pair() {
    bench_start_node
    "$BIN/crossfade" -t -c "$TMP/crossfade.yaml" >"$TMP/check.log" 2>&1 ||
        die "crossfade rejects its config: $(cat "$TMP/check.log")"
    show "$BIN/crossfade -c $TMP/crossfade.yaml"
    "$BIN/crossfade" -c "$TMP/crossfade.yaml" >"$TMP/crossfade.out" 2>"$TMP/crossfade.log" &
    XF_PID=$!
    pids+=("$XF_PID")
    haproxy -c -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 ||
        die "haproxy rejects its config: $(cat "$TMP/haproxy-check.log")"
    show "haproxy -db -f $TMP/haproxy.cfg"
    haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
    HA_PID=$!
    pids+=("$HA_PID")
    wait_port "$XF_PORT" || die "crossfade did not start: $(tail -3 "$TMP/crossfade.log")"
    wait_port "$HA_PORT" || die "haproxy did not start: $(tail -3 "$TMP/haproxy.log")"
    declare -gA PORT=([crossfade]=$XF_PORT [haproxy]=$HA_PORT)
    declare -gA PID=([crossfade]=$XF_PID [haproxy]=$HA_PID)
}
