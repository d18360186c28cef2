#!/bin/bash
# bench/bench_tls.sh -- HTTPS through crossfade against HAProxy in one run, the same ECDSA P-256
# certificate and TLS 1.3 on both, in front of one xf-upstream node (plain HTTP) on loopback:
#   1. keep-alive small GETs (wrk): requests/s and CPU per request;
#   2. a new connection per request (wrk -H 'Connection: close'; wrk resumes sessions when the
#      server lets it): handshakes/s, CPU per handshake, and the share resumed;
#   3. full handshakes only (openssl s_time -new, two clients): handshakes/s, CPU per handshake;
#   4. memory per idle TLS keep-alive connection (Python's ssl: IDLE connections that each made
#      one request, RSS before and after).
# Stops every process it started.
#
#   bench/bench_tls.sh [--quick]
#   BENCH_SECONDS=10 BENCH_ROUNDS=3 BENCH_CONNS=50 IDLE_CONNS=1000 BENCH_WORKERS=1
#   BENCH_PORT=18500 XF_BIN=bin BENCH_KEEP=1
# Exits non-zero only when the setup fails; a figure, good or bad, never changes the exit status.
set -u
cd "$(dirname "$0")/.." || exit 1

QUICK=0
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench_tls: unknown argument $arg (try --help)" >&2
        exit 2
        ;;
    esac
done
if [ "$QUICK" = 1 ]; then
    SECONDS_RUN=${BENCH_SECONDS:-3}
    ROUNDS=${BENCH_ROUNDS:-1}
else
    SECONDS_RUN=${BENCH_SECONDS:-10}
    ROUNDS=${BENCH_ROUNDS:-3}
fi
CONNS=${BENCH_CONNS:-50}
IDLE=${IDLE_CONNS:-1000}
WORKERS=${BENCH_WORKERS:-1}
BASE=${BENCH_PORT:-18500}
BIN=${XF_BIN:-bin}
HOST=127.0.0.1
BENCH_NAME=bench_tls
TMP=
. bench/lib.sh


for v in SECONDS_RUN ROUNDS CONNS IDLE WORKERS BASE; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
        die "$v must be a positive integer, got '${!v}'"
    fi
done


for t in wrk haproxy openssl python3 awk; do
    command -v "$t" >/dev/null || die "$t is not installed (make deps installs it)"
done
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xf-upstream" ] && [ -x "$BIN/xfctl" ] ||
    die "$BIN/crossfade, xf-upstream or xfctl missing: run make"
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || ulimit -n "$hard" 2>/dev/null
[ "$(ulimit -n)" -ge $((IDLE * 2 + 200)) ] || IDLE=$((($(ulimit -n) - 200) / 2))
MAXCONN=$((IDLE * 2 > 4000 ? IDLE * 2 : 4000))
TMP=$(mktemp -d /tmp/crossfade-bench-tls.XXXXXX) || die "mktemp failed"

NODE_PORT=$((BASE + 1))
Y_PORT=$((BASE + 9))
XF_PORT=$((BASE + 10))
HA_PORT=$((BASE + 11))
for p in "$NODE_PORT" "$XF_PORT" "$HA_PORT"; do
    port_busy "$p" && die "port $HOST:$p is in use: stop what holds it or set BENCH_PORT"
done

# --- the certificate: a private CA and an ECDSA P-256 server certificate for 127.0.0.1 -------
(
    cd "$TMP" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout ca.key -out ca.pem -subj "/CN=bench CA" &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout srv.key -out srv.csr -subj "/CN=bench.test" &&
        printf 'subjectAltName=DNS:bench.test,IP:127.0.0.1\n' >srv.ext &&
        openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile srv.ext -out srv.pem && cat srv.pem srv.key >srv-haproxy.pem
) >"$TMP/openssl.log" 2>&1 || die "cannot make the certificate: $(tail -3 "$TMP/openssl.log")"

cat >"$TMP/crossfade.yaml" <<EOF
# crossfade under bench/bench_tls.sh: HTTPS (TLS 1.3), every request to cluster x.
listen:
  - address: "$HOST:$XF_PORT"
    tls:
      certificates: [{cert: "$TMP/srv.pem", key: "$TMP/srv.key"}]
      protocols: [TLSv1.3]
admin: {socket: "$TMP/admin.sock"}
split: {weight: 0, key: ["ip"], seed: "bench"}
clusters:
  x: {nodes: ["$HOST:$NODE_PORT"]}
  y: {nodes: ["$HOST:$Y_PORT"]}
timeouts: {connect: 1s, client_idle: 60s, upstream_response: 10s, shutdown: 2s}
limits: {max_connections: $MAXCONN}
access_log: off
log_level: warn
workers: $WORKERS
EOF
cat >"$TMP/haproxy.cfg" <<EOF
# HAProxy 2.6 under bench/bench_tls.sh: $WORKERS thread(s), TLS 1.3, keep-alive, no logging.
global
    nbthread $WORKERS
    maxconn $MAXCONN
    hard-stop-after 2s
    ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
    mode http
    option http-keep-alive
    timeout connect 1s
    timeout http-request 10s
    timeout client 60s
    timeout http-keep-alive 60s
    timeout server 10s
frontend fe
    bind $HOST:$HA_PORT ssl crt $TMP/srv-haproxy.pem
    default_backend x
backend x
    server x1 $HOST:$NODE_PORT
EOF

echo "== crossfade TLS benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
    "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "   $("$BIN/crossfade" --version 2>&1 | head -1); $(haproxy -v 2>&1 | head -1 | cut -d' ' -f1-3);" \
    "$(openssl version | cut -d' ' -f1-2); $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "   ECDSA P-256, TLS 1.3 only; workers/nbthread $WORKERS; wrk -t$WORKERS -c$CONNS" \
    "-d${SECONDS_RUN}s x $ROUNDS rounds; $IDLE idle TLS connections"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: compare ratios)"
echo
bench_start_pair

# crossfade's count of client handshakes and of those resumed: "completed resumed".
xf_hs() { "$BIN/xfctl" -s "$TMP/admin.sock" show stats | awk '/^tls_handshakes/ {split($2, c, "="); split($3, r, "="); print c[2], r[2]}'; }

# One wrk run against NAME with extra wrk arguments; prints "req/s cpu_us_per_req".
wrk_run() {
    local name=$1 before after reqs
    shift
    before=$(cpu_ticks "${PID[$name]}")
    wrk -t"$WORKERS" -c"$CONNS" -d"${SECONDS_RUN}s" "$@" "https://$HOST:${PORT[$name]}/" >"$TMP/wrk.out" 2>&1
    after=$(cpu_ticks "${PID[$name]}")
    reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    [ -n "$reqs" ] && [ "$reqs" -gt 0 ] || {
        echo "0 nan"
        return
    }
    awk -v r="$reqs" -v s="$SECONDS_RUN" -v t=$((after - before)) -v hz="$CLK_TCK" \
        'BEGIN {printf "%.0f %.2f\n", r / s, t / hz * 1e6 / r}'
}

report_pair() { # title, then for each of crossfade and haproxy the lines "rps cpu" of each round
    local title=$1 xr xc hr hc
    xr=$(awk '{print $1}' "$TMP/r.crossfade" | median)
    xc=$(awk '{print $2}' "$TMP/r.crossfade" | median)
    hr=$(awk '{print $1}' "$TMP/r.haproxy" | median)
    hc=$(awk '{print $2}' "$TMP/r.haproxy" | median)
    printf '   %-34s crossfade %8.0f/s %7.2f µs CPU each | HAProxy %8.0f/s %7.2f µs | ratio: CPU %.2f, rate %.2f\n' \
        "$title" "$xr" "$xc" "$hr" "$hc" "$(awk -v a="$xc" -v b="$hc" 'BEGIN {print a / b}')" \
        "$(awk -v a="$xr" -v b="$hr" 'BEGIN {print a / b}')"
}


echo "== 1. keep-alive HTTPS GETs (wrk), the order alternating from round to round"
: >"$TMP/r.crossfade"
: >"$TMP/r.haproxy"
for r in $(seq 1 "$ROUNDS"); do
    for n in $(order "$r"); do wrk_run "$n" >>"$TMP/r.$n"; done
    echo "   round $r: crossfade $(tail -1 "$TMP/r.crossfade"), HAProxy $(tail -1 "$TMP/r.haproxy") (req/s, µs CPU/req)"
done
report_pair "keep-alive requests"

echo "== 2. a new TLS connection per request (wrk -H 'Connection: close')"
: >"$TMP/r.crossfade"
: >"$TMP/r.haproxy"
xb=$(xf_hs)
for r in $(seq 1 "$ROUNDS"); do
    for n in $(order "$r"); do wrk_run "$n" -H 'Connection: close' >>"$TMP/r.$n"; done
    echo "   round $r: crossfade $(tail -1 "$TMP/r.crossfade"), HAProxy $(tail -1 "$TMP/r.haproxy") (handshakes/s, µs CPU each)"
done
xa=$(xf_hs)
report_pair "handshakes (wrk, resumed as it can)"
echo "   crossfade resumed $(awk -v b="$xb" -v a="$xa" 'BEGIN {split(b, x, " "); split(a, y, " "); n = y[1] - x[1]; printf "%.0f%% of %d", n ? (y[2] - x[2]) * 100 / n : 0, n}') handshakes"

echo "== 3. full handshakes only (2 x openssl s_time -new -time $SECONDS_RUN, no request)"
: >"$TMP/r.crossfade"
: >"$TMP/r.haproxy"
for r in $(seq 1 "$ROUNDS"); do
    for n in $(order "$r"); do
        before=$(cpu_ticks "${PID[$n]}")
        st=()
        for k in 1 2; do
            openssl s_time -connect "$HOST:${PORT[$n]}" -new -time "$SECONDS_RUN" >"$TMP/stime.$k" 2>&1 &
            st+=("$!")
        done
        wait "${st[@]}"
        after=$(cpu_ticks "${PID[$n]}")
        conns=$(cat "$TMP/stime.1" "$TMP/stime.2" | awk '/connections in .* real seconds/ {s += $1} END {print s + 0}')
        awk -v c="$conns" -v s="$SECONDS_RUN" -v t=$((after - before)) -v hz="$CLK_TCK" \
            'BEGIN {if (c == 0) print "0 nan"; else printf "%.0f %.2f\n", c / s, t / hz * 1e6 / c}' >>"$TMP/r.$n"
    done
    echo "   round $r: crossfade $(tail -1 "$TMP/r.crossfade"), HAProxy $(tail -1 "$TMP/r.haproxy") (handshakes/s, µs CPU each)"
done
report_pair "full handshakes (s_time -new)"

echo "== 4. memory per idle TLS keep-alive connection ($IDLE connections, one request each)"
cat >"$TMP/idle.py" <<'EOF'
import asyncio, ssl, sys
host, port, n, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
async def one(ctx):
    r, w = await asyncio.open_connection(host, port, ssl=ctx, server_hostname="bench.test")
    w.write(b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n")
    await r.readuntil(b"\r\n\r\n")
    return w
async def main():
    ctx = ssl.create_default_context(cafile=ca)
    conns = []
    for i in range(0, n, 100):
        conns += await asyncio.gather(*(one(ctx) for _ in range(min(100, n - i))))
    print("open", len(conns), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main())
EOF
for n in crossfade haproxy; do
    before=$(rss_kib "${PID[$n]}")
    coproc IDLEPY { python3 "$TMP/idle.py" "$HOST" "${PORT[$n]}" "$IDLE" "$TMP/ca.pem" 2>&1; }
    read -r -t 120 line <&"${IDLEPY[0]}"
    sleep 1
    after=$(rss_kib "${PID[$n]}")
    echo >&"${IDLEPY[1]}"
    wait "$IDLEPY_PID" 2>/dev/null
    if [ "${line%% *}" = open ]; then
        printf '   %-10s RSS %6d KiB -> %6d KiB: %.2f KiB per idle TLS connection\n' "$n" "$before" \
            "$after" "$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {print (a - b) / n}')"
    else
        echo "   $n: the idle clients failed: $line"
    fi
done
echo "   load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
