#!/bin/bash
# bench/bench_tcp.sh -- TCP relay throughput: a crossfade tcp-mode listener against HAProxy in
# `mode tcp`, in one run, in front of one xf-upstream node on loopback (wrk speaks HTTP through
# both relays, which never read it):
#   1. one stream: one connection fetching 64 MiB bodies back to back: MiB/s, CPU µs per MiB;
#   2. 100 streams at once fetching 1 MiB bodies: MiB/s, CPU µs per MiB;
#   3. small keep-alive GETs over 50 relayed connections: requests/s, CPU µs per request.
# Stops every process it started.
#
#   bench/bench_tcp.sh [--quick]
#   BENCH_SECONDS=10 BENCH_ROUNDS=3 BENCH_WORKERS=1 BENCH_PORT=18700 XF_BIN=bin BENCH_KEEP=1
#   BENCH_HAPROXY_EXTRA='option splice-auto' (a line added to HAProxy's defaults)
# Exits non-zero only when the setup fails; a figure, good or bad, never changes the exit status.
set -u
cd "$(dirname "$0")/.." || exit 1
BENCH_NAME=bench_tcp
HOST=127.0.0.1
TMP=
. bench/lib.sh

QUICK=0
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument $arg (try --help)" ;;
    esac
done
SECONDS_RUN=${BENCH_SECONDS:-$([ "$QUICK" = 1 ] && echo 3 || echo 10)}
ROUNDS=${BENCH_ROUNDS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
WORKERS=${BENCH_WORKERS:-1}
BASE=${BENCH_PORT:-18700}
BIN=${XF_BIN:-bin}
for v in SECONDS_RUN ROUNDS WORKERS BASE; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "$v must be a positive integer, got '${!v}'"
done
for t in wrk haproxy awk; do
    command -v "$t" >/dev/null || die "$t is not installed (make deps installs it)"
done
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xf-upstream" ] || die "$BIN/crossfade or xf-upstream missing: run make"
TMP=$(mktemp -d /tmp/crossfade-bench-tcp.XXXXXX) || die "mktemp failed"

NODE_PORT=$((BASE + 1))
Y_PORT=$((BASE + 9))
XF_PORT=$((BASE + 10))
HA_PORT=$((BASE + 11))
for p in "$NODE_PORT" "$XF_PORT" "$HA_PORT"; do
    port_busy "$p" && die "port $HOST:$p is in use: stop what holds it or set BENCH_PORT"
done

cat >"$TMP/crossfade.yaml" <<EOC
# crossfade under bench/bench_tcp.sh: a tcp-mode listener, every connection to cluster x.
listen:
  - address: "$HOST:$XF_PORT"
    mode: tcp
admin: {socket: "$TMP/admin.sock"}
split: {weight: 0, seed: "bench"}
clusters:
  x: {nodes: ["$HOST:$NODE_PORT"]}
  y: {nodes: ["$HOST:$Y_PORT"]}
timeouts: {connect: 1s, shutdown: 2s}
access_log: off
log_level: warn
workers: $WORKERS
EOC
cat >"$TMP/haproxy.cfg" <<EOC
# HAProxy under bench/bench_tcp.sh: $WORKERS thread(s), mode tcp, no logging.
global
    nbthread $WORKERS
    maxconn 4000
    hard-stop-after 2s
defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    ${BENCH_HAPROXY_EXTRA:-}
frontend fe
    bind $HOST:$HA_PORT
    default_backend x
backend x
    server x1 $HOST:$NODE_PORT
EOC

echo "== crossfade TCP relay benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
    "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "   $("$BIN/crossfade" --version 2>&1 | head -1); $(haproxy -v 2>&1 | head -1 | cut -d' ' -f1-3);" \
    "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); workers/nbthread $WORKERS;" \
    "${SECONDS_RUN}s x $ROUNDS rounds"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: compare ratios)"
echo
bench_start_pair

# wrk bytes read, in bytes, from its "N requests in Ts, SIZE read" line.
wrk_bytes() {
    awk '/requests in/ {v = $5; sub(/,$/, "", v); u = v; gsub(/[0-9.]/, "", u); n = v + 0;
        m = u == "KB" ? 1024 : u == "MB" ? 1048576 : u == "GB" ? 1073741824 : u == "TB" ? 1099511627776 : 1;
        printf "%.0f\n", n * m}' "$1"
}

# One wrk run against NAME: "MiB/s cpu_us_per_MiB" (kind mib) or "req/s cpu_us_per_req" (req).
wrk_run() {
    local name=$1 kind=$2 threads=$3 conns=$4 path=$5 before after reqs bytes
    before=$(cpu_ticks "${PID[$name]}")
    wrk -t"$threads" -c"$conns" -d"${SECONDS_RUN}s" "http://$HOST:${PORT[$name]}$path" >"$TMP/wrk.out" 2>&1
    after=$(cpu_ticks "${PID[$name]}")
    reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    bytes=$(wrk_bytes "$TMP/wrk.out")
    if [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
        echo "0 nan"
    elif [ "$kind" = mib ]; then
        awk -v b="$bytes" -v s="$SECONDS_RUN" -v t=$((after - before)) -v hz="$CLK_TCK" \
            'BEGIN {m = b / 1048576; printf "%.0f %.1f\n", m / s, t / hz * 1e6 / m}'
    else
        awk -v r="$reqs" -v s="$SECONDS_RUN" -v t=$((after - before)) -v hz="$CLK_TCK" \
            'BEGIN {printf "%.0f %.2f\n", r / s, t / hz * 1e6 / r}'
    fi
}

# title, unit, then the rounds of: kind threads conns path
measure() {
    local title=$1 unit=$2 xr xc hr hc
    shift 2
    : >"$TMP/r.crossfade"
    : >"$TMP/r.haproxy"
    for r in $(seq 1 "$ROUNDS"); do
        for n in $(order "$r"); do wrk_run "$n" "$@" >>"$TMP/r.$n"; done
        echo "   round $r: crossfade $(tail -1 "$TMP/r.crossfade"), HAProxy $(tail -1 "$TMP/r.haproxy") ($unit/s, µs CPU per $unit)"
    done
    xr=$(awk '{print $1}' "$TMP/r.crossfade" | median)
    xc=$(awk '{print $2}' "$TMP/r.crossfade" | median)
    hr=$(awk '{print $1}' "$TMP/r.haproxy" | median)
    hc=$(awk '{print $2}' "$TMP/r.haproxy" | median)
    printf '   %-28s crossfade %8.0f %s/s %8.2f µs CPU per %s | HAProxy %8.0f/s %8.2f µs | ratio: CPU %.2f, rate %.2f\n' \
        "$title" "$xr" "$unit" "$xc" "$unit" "$hr" "$hc" "$(awk -v a="$xc" -v b="$hc" 'BEGIN {print a / b}')" \
        "$(awk -v a="$xr" -v b="$hr" 'BEGIN {print a / b}')"
}

echo "== 1. one stream (wrk -t1 -c1, 64 MiB bodies)"
measure "one stream" MiB mib 1 1 /bytes/67108864
echo "== 2. 100 streams at once (wrk -t2 -c100, 1 MiB bodies)"
measure "100 streams" MiB mib 2 100 /bytes/1048576
echo "== 3. small keep-alive GETs through the relay (wrk -t2 -c50)"
measure "small requests" req req 2 50 /
echo "   load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
