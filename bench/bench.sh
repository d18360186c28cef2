#!/bin/bash
# bench/bench.sh -- the benchmark behind `make bench`: wrk against xf-upstream alone, crossfade,
# HAProxy (and nginx when installed) in one run on loopback; CPU per request, system calls per
# request, memory per idle keep-alive client connection and per slow client (a partial head).
# Stops every process it started.
#
#   bench/bench.sh [--quick] [--no-nginx]
#   BENCH_SECONDS=10 BENCH_ROUNDS=3 BENCH_CONNS=50 IDLE_CONNS=2000 STRACE_SECONDS=3
#   BENCH_NODES=1 (1 or 2 xf-upstream nodes)  BENCH_PORT=18400 (base of the loopback ports used)
#   BENCH_WORKERS=1 (crossfade's workers and HAProxy's nbthread; wrk gets as many threads; nginx,
#   one process without a master here, only runs with 1)
#   XF_BIN=bin  BENCH_KEEP=1 (keep the temporary folder with configs, logs and raw outputs)
#   BENCH_PIN=1 (with BENCH_WORKERS=1: the proxies on CPU 0, the node and wrk on CPU 1, so that
#   a proxy's CPU per request is not mixed with theirs on a shared core)
# Exits non-zero only when the setup fails (a tool missing, a server that does not start);
# a figure, good or bad, never changes the exit status.
set -u
cd "$(dirname "$0")/.." || exit 1

QUICK=0
NGINX=auto
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    --no-nginx) NGINX=0 ;;
    -h | --help)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench: unknown argument $arg (try --help)" >&2
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
IDLE=${IDLE_CONNS:-2000}
STRACE_SECONDS=${STRACE_SECONDS:-3}
NODES=${BENCH_NODES:-1}
WORKERS=${BENCH_WORKERS:-1}
PIN=${BENCH_PIN:-0}
BASE=${BENCH_PORT:-18400}
BIN=${XF_BIN:-bin}
HOST=127.0.0.1

die() {
    echo "bench: $*" >&2
    exit 1
}
note() { echo "bench: $*" >&2; }
show() { echo "  \$ $*"; }

for v in SECONDS_RUN ROUNDS CONNS IDLE STRACE_SECONDS NODES WORKERS BASE; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
        die "$v must be a positive integer, got '${!v}'"
    fi
done
[ "$NODES" -le 2 ] || die "BENCH_NODES must be 1 or 2"
PIN_PROXY=
PIN_LOAD=
if [ "$PIN" = 1 ]; then
    [ "$WORKERS" = 1 ] || die "BENCH_PIN=1 goes with BENCH_WORKERS=1 (one core for the proxy)"
    [ "$(nproc)" -ge 2 ] || die "BENCH_PIN=1 needs two cores"
    command -v taskset >/dev/null || die "taskset is not installed (util-linux)"
    PIN_PROXY="taskset -c 0"
    PIN_LOAD="taskset -c 1"
fi

# ---------------------------------------------------------------------------------------------
# Processes and clean-up: every process started is recorded here and stopped on exit.
pids=()
TMP=
cleanup() {
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
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            echo "bench: kept $TMP"
        else
            rm -rf "$TMP"
        fi
    fi
}
# A process waited for leaves the list, so that clean-up never signals a PID since reused.
forget() {
    local p keep=()
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools.
for t in wrk haproxy cc awk; do
    command -v "$t" >/dev/null || die "$t is not installed (make deps installs wrk and haproxy)"
done
if ! [ -x "$BIN/crossfade" ] || ! [ -x "$BIN/xf-upstream" ]; then
    die "$BIN/crossfade or $BIN/xf-upstream missing: run make"
fi
if [ "$WORKERS" -gt 1 ] && [ "$NGINX" = auto ]; then
    NGINX=0
    note "BENCH_WORKERS=$WORKERS: the nginx yardstick (one process here) is skipped"
fi
if [ "$NGINX" = auto ]; then
    if command -v nginx >/dev/null; then NGINX=1; else
        NGINX=0
        note "nginx not installed: the nginx yardstick is skipped (apt-get install nginx-light)"
    fi
fi
HAVE_STRACE=1
command -v strace >/dev/null || {
    HAVE_STRACE=0
    note "strace not installed: system calls are not counted (apt-get install strace)"
}

# Open files: up to IDLE client sockets in the proxy and in the idle client, plus upstream ones.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ]; then
    ulimit -n "$hard" 2>/dev/null
    need=$((IDLE * 2 + 200))
    if [ "$hard" -lt "$need" ]; then
        IDLE=$(((hard - 200) / 2))
        note "open-file hard limit $hard: IDLE_CONNS lowered to $IDLE"
    fi
else
    ulimit -n 1048576 2>/dev/null || true
fi
NOFILE=$(ulimit -n)
MAXCONN=$((IDLE * 2 > 4000 ? IDLE * 2 : 4000))

TMP=$(mktemp -d /tmp/crossfade-bench.XXXXXX) || die "mktemp failed"
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# Ports (loopback only): nodes BASE+1.., the dummy y node BASE+9, crossfade +10, HAProxy +11,
# nginx +12.
NODE_PORTS=()
for i in $(seq 1 "$NODES"); do NODE_PORTS+=($((BASE + i))); done
Y_PORT=$((BASE + 9))
XF_PORT=$((BASE + 10))
HA_PORT=$((BASE + 11))
NG_PORT=$((BASE + 12))
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for p in "${NODE_PORTS[@]}" "$XF_PORT" "$HA_PORT" "$NG_PORT"; do
    port_busy "$p" && die "port $HOST:$p is in use: stop what holds it or set BENCH_PORT"
done
wait_port() {
    for _ in $(seq 1 100); do
        port_busy "$1" && return 0
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# Configurations.
node_list=
for p in "${NODE_PORTS[@]}"; do node_list+="\"$HOST:$p\", "; done
cat >"$TMP/crossfade.yaml" <<EOF
# crossfade under bench/bench.sh: every request goes to cluster x.
listen:
  - address: "$HOST:$XF_PORT"
admin:
  socket: "$TMP/admin.sock"
split:
  weight: 0
  key: ["ip"]
  seed: "bench"
clusters:
  x:
    nodes: [${node_list%, }]
  y:
    nodes: ["$HOST:$Y_PORT"]
timeouts: {connect: 1s, client_header: 10s, client_idle: 60s, upstream_response: 10s, upstream_idle: 30s, shutdown: 2s}
limits: {max_connections: $MAXCONN}
access_log: off
log_level: warn
workers: $WORKERS
EOF

{
    cat <<EOF
# HAProxy 2.6 under bench/bench.sh: $WORKERS thread(s), keep-alive on both sides, no logging.
global
    nbthread $WORKERS
    maxconn $MAXCONN
    hard-stop-after 2s
defaults
    mode http
    option http-keep-alive
    timeout connect 1s
    timeout http-request 10s
    timeout client 60s
    timeout http-keep-alive 60s
    timeout server 10s
frontend fe
    bind $HOST:$HA_PORT
    default_backend x
backend x
    balance roundrobin
EOF
    i=0
    for p in "${NODE_PORTS[@]}"; do
        i=$((i + 1))
        echo "    server x$i $HOST:$p"
    done
} >"$TMP/haproxy.cfg"

{
    cat <<EOF
# nginx 1.22 under bench/bench.sh: one process (no master), upstream keep-alive, no access log.
worker_processes 1;
master_process off;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $MAXCONN; }
http {
    access_log off;
    client_body_temp_path $TMP/ngx-body;
    proxy_temp_path $TMP/ngx-proxy;
    fastcgi_temp_path $TMP/ngx-fastcgi;
    uwsgi_temp_path $TMP/ngx-uwsgi;
    scgi_temp_path $TMP/ngx-scgi;
    client_header_timeout 10s;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    upstream x {
EOF
    for p in "${NODE_PORTS[@]}"; do echo "        server $HOST:$p;"; done
    cat <<EOF
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 30s;
    }
    server {
        listen $HOST:$NG_PORT;
        location / {
            proxy_pass http://x;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
        }
    }
}
EOF
} >"$TMP/nginx.conf"

# ---------------------------------------------------------------------------------------------
# Start the servers.
echo "== crossfade benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores," \
    "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "   $("$BIN/crossfade" --version 2>&1 | head -1); $(haproxy -v 2>&1 | head -1 | cut -d' ' -f1-3)" \
    "$([ "$NGINX" = 1 ] && nginx -v 2>&1 | sed 's/.*: /; /')" \
    "; $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
echo "   wrk -t$WORKERS -c$CONNS -d${SECONDS_RUN}s x $ROUNDS rounds; strace ${STRACE_SECONDS}s;" \
    "$IDLE idle connections; $NODES node(s); open files $NOFILE; CLK_TCK $CLK_TCK" \
    "$([ "$PIN" = 1 ] && echo "; proxies on CPU 0, node and wrk on CPU 1")"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: compare ratios)"
echo "   configs in $TMP (BENCH_KEEP=1 keeps them)"
echo
echo "== starting the servers"
NODE_PIDS=()
i=0
for p in "${NODE_PORTS[@]}"; do
    i=$((i + 1))
    show "$BIN/xf-upstream --listen $HOST:$p --name x$i --quiet"
    $PIN_LOAD "$BIN/xf-upstream" --listen "$HOST:$p" --name "x$i" --quiet 2>"$TMP/node$i.log" &
    pids+=("$!")
    NODE_PIDS+=("$!")
done
for p in "${NODE_PORTS[@]}"; do wait_port "$p" || die "xf-upstream did not listen on $p (see $TMP)"; done

"$BIN/crossfade" -t -c "$TMP/crossfade.yaml" >"$TMP/crossfade-check.log" 2>&1 ||
    die "crossfade rejects its config: $(cat "$TMP/crossfade-check.log")"
show "$BIN/crossfade -c $TMP/crossfade.yaml"
$PIN_PROXY "$BIN/crossfade" -c "$TMP/crossfade.yaml" >"$TMP/crossfade.out" 2>"$TMP/crossfade.log" &
XF_PID=$!
pids+=("$XF_PID")

haproxy -c -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 ||
    die "haproxy rejects its config: $(cat "$TMP/haproxy-check.log")"
show "haproxy -db -f $TMP/haproxy.cfg"
$PIN_PROXY haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HA_PID=$!
pids+=("$HA_PID")

NG_PID=
if [ "$NGINX" = 1 ]; then
    show "nginx -c $TMP/nginx.conf"
    $PIN_PROXY nginx -c "$TMP/nginx.conf" >"$TMP/nginx.out" 2>&1 &
    NG_PID=$!
    pids+=("$NG_PID")
fi

wait_port "$XF_PORT" || die "crossfade did not start: $(tail -5 "$TMP/crossfade.log")"
wait_port "$HA_PORT" || die "haproxy did not start: $(tail -5 "$TMP/haproxy.log")"
if [ "$NGINX" = 1 ]; then
    wait_port "$NG_PORT" || die "nginx did not start: $(tail -5 "$TMP/nginx-error.log" "$TMP/nginx.out")"
fi

# Targets: name, port, the PID whose CPU is measured (the node itself for the direct run).
TARGETS=(upstream crossfade haproxy)
declare -A PORT=([upstream]=${NODE_PORTS[0]} [crossfade]=$XF_PORT [haproxy]=$HA_PORT)
declare -A PID=([upstream]=${NODE_PIDS[0]} [crossfade]=$XF_PID [haproxy]=$HA_PID)
if [ "$NGINX" = 1 ]; then
    TARGETS+=(nginx)
    PORT[nginx]=$NG_PORT
    PID[nginx]=$NG_PID
fi

# Each target answers a request before anything is measured.
for t in "${TARGETS[@]}"; do
    exec 3<>"/dev/tcp/$HOST/${PORT[$t]}" || die "$t: cannot connect"
    printf 'GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' >&3
    line=
    read -r -t 5 line <&3
    exec 3<&-
    [[ $line == "HTTP/1.1 200"* ]] || die "$t on port ${PORT[$t]} does not answer 200 (got '${line%$'\r'}')"
done

# ---------------------------------------------------------------------------------------------
# Helpers: CPU ticks (utime + stime, fields 14 and 15 of /proc/PID/stat), RSS, wrk parsing.
cpu_ticks() {
    local s f
    s=$(<"/proc/$1/stat") || return 1
    s=${s##*) }
    read -ra f <<<"$s"
    echo $((f[11] + f[12]))
}
nodes_ticks() {
    local p sum=0 t
    for p in "${NODE_PIDS[@]}"; do
        t=$(cpu_ticks "$p") || return 1
        sum=$((sum + t))
    done
    echo "$sum"
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Prints "requests req/s p99_ms errors" from a wrk --latency output file.
wrk_parse() {
    awk '
        / requests in / { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /^ +99%/ { v = $2; m = 1
            if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1; else if (v ~ /m$/) m = 60000; else if (v ~ /s$/) m = 1000
            sub(/[a-z]+$/, "", v); p99 = v * m }
        /Socket errors|Non-2xx/ { err = err $0 ";" }
        END { if (req == "") exit 1; printf "%d %.0f %.3f %s\n", req, rps, p99, (err == "" ? "-" : err) }
    ' "$1"
}
# median "v1 v2 ...": the median of a space-separated list, "-" if it is empty.
median() {
    tr -s ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) { print "-"; exit }
              if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "-") print "-"; else printf f, v }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "-" || b == "-") print "-"; else printf "%.3f", a / b }'; }
# Runs wrk in the background and waits for it, so that a signal stops the script at once.
run_wrk() { # target seconds outfile
    local url="http://$HOST:${PORT[$1]}/" w rc
    timeout $(($2 + 20)) $PIN_LOAD wrk -t"$WORKERS" -c"$CONNS" -d"$2"s --timeout 2s --latency "$url" >"$3" 2>&1 &
    w=$!
    pids+=("$w")
    wait "$w"
    rc=$?
    forget "$w"
    return $rc
}

# ---------------------------------------------------------------------------------------------
# 1. Throughput and CPU per request: targets interleaved, the order rotated every round.
echo
echo "== throughput and CPU per request: $ROUNDS round(s) of ${SECONDS_RUN}s per target"
show "wrk -t$WORKERS -c$CONNS -d${SECONDS_RUN}s --timeout 2s --latency http://$HOST:PORT/"
echo "   CPU: (utime + stime) of the target's process from /proc/PID/stat, before and after,"
echo "   in ticks of 1/$CLK_TCK s, divided by the requests wrk reports; 'node' is the same for the"
echo "   xf-upstream node(s) behind the proxy. Warm-up: 1 s per target, not recorded."
for t in "${TARGETS[@]}"; do run_wrk "$t" 1 "$TMP/warmup-$t.txt" || die "wrk failed against $t: $(tail -3 "$TMP/warmup-$t.txt")"; done

declare -A RPS P99 CPU NODE
printf '   %-5s %-10s %9s %9s %10s %10s  %s\n' round target 'req/s' 'p99 ms' 'cpu us/req' 'node us/req' errors
ntargets=${#TARGETS[@]}
for r in $(seq 1 "$ROUNDS"); do
    for k in $(seq 0 $((ntargets - 1))); do
        t=${TARGETS[$(((k + r - 1) % ntargets))]}
        out="$TMP/wrk-$t-$r.txt"
        c0=$(cpu_ticks "${PID[$t]}") || die "$t (PID ${PID[$t]}) is gone"
        n0=$(nodes_ticks) || die "an xf-upstream node is gone"
        run_wrk "$t" "$SECONDS_RUN" "$out" || die "wrk failed against $t: $(tail -3 "$out")"
        c1=$(cpu_ticks "${PID[$t]}") || die "$t (PID ${PID[$t]}) died during the run"
        n1=$(nodes_ticks) || die "an xf-upstream node died during the run"
        read -r req rps p99 errs < <(wrk_parse "$out") || die "cannot read wrk's output: $(tail -3 "$out")"
        cpu=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
        node=-
        [ "$t" != upstream ] &&
            node=$(awk -v d=$((n1 - n0)) -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
        RPS[$t]+="$rps "
        P99[$t]+="$p99 "
        CPU[$t]+="$cpu "
        NODE[$t]+="$node "
        printf '   %-5s %-10s %9s %9s %10s %10s  %s\n' "$r" "$t" "$rps" "$p99" "$cpu" "$node" "$errs"
    done
done

echo
echo "== medians over $ROUNDS round(s)"
printf '   %-10s %9s %9s %11s %11s\n' target 'req/s' 'p99 ms' 'cpu us/req' 'node us/req'
declare -A M_RPS M_CPU
for t in "${TARGETS[@]}"; do
    M_RPS[$t]=$(median "${RPS[$t]}")
    M_CPU[$t]=$(median "${CPU[$t]}")
    mnode=-
    [ "$t" != upstream ] && mnode=$(median "${NODE[$t]}")
    printf '   %-10s %9s %9s %11s %11s\n' "$t" "$(fmt "${M_RPS[$t]}" %.0f)" \
        "$(fmt "$(median "${P99[$t]}")" %.2f)" "$(fmt "${M_CPU[$t]}" %.2f)" "$(fmt "$mnode" %.2f)"
done
# Ratios crossfade / HAProxy: of the medians, and the same round by round (paired runs).
paired() { # array-name
    local -n arr=$1
    local -a a b
    read -ra a <<<"${arr[crossfade]}"
    read -ra b <<<"${arr[haproxy]}"
    local out='' i
    for i in "${!a[@]}"; do out+="$(div "${a[$i]}" "${b[$i]}") "; done
    echo "${out% }"
}
echo
echo "   crossfade / haproxy, CPU per request: $(div "${M_CPU[crossfade]}" "${M_CPU[haproxy]}")" \
    "(per round: $(paired CPU))  (< 1: crossfade uses less CPU)"
echo "   crossfade / haproxy, requests/s:      $(div "${M_RPS[crossfade]}" "${M_RPS[haproxy]}")" \
    "(per round: $(paired RPS))  (> 1: crossfade serves more)"
if [ "$NGINX" = 1 ]; then
    echo "   crossfade / nginx,   CPU per request: $(div "${M_CPU[crossfade]}" "${M_CPU[nginx]}")," \
        "requests/s: $(div "${M_RPS[crossfade]}" "${M_RPS[nginx]}")"
fi

# ---------------------------------------------------------------------------------------------
# 2. System calls per request, strace attached to the proxy during a short wrk run.
PROXIES=(crossfade haproxy)
[ "$NGINX" = 1 ] && PROXIES+=(nginx)
if [ "$HAVE_STRACE" = 1 ]; then
    echo
    echo "== system calls per request (strace -c during a ${STRACE_SECONDS}s wrk run)"
    show "strace -c -f -p PID -o FILE   # then: wrk -t$WORKERS -c$CONNS -d${STRACE_SECONDS}s --latency http://$HOST:PORT/"
    for t in "${PROXIES[@]}"; do
        sf="$TMP/strace-$t.txt"
        timeout $((STRACE_SECONDS + 30)) strace -c -f -p "${PID[$t]}" -o "$sf" 2>"$TMP/strace-$t.err" &
        spid=$!
        pids+=("$spid")
        for _ in $(seq 1 50); do grep -q attached "$TMP/strace-$t.err" 2>/dev/null && break; sleep 0.1; done
        if ! grep -q attached "$TMP/strace-$t.err"; then
            note "strace could not attach to $t: $(head -2 "$TMP/strace-$t.err")"
            kill "$spid" 2>/dev/null
            wait "$spid" 2>/dev/null
            forget "$spid"
            continue
        fi
        run_wrk "$t" "$STRACE_SECONDS" "$TMP/wrk-strace-$t.txt"
        kill -INT "$spid" 2>/dev/null
        wait "$spid" 2>/dev/null
        forget "$spid"
        read -r req _ < <(wrk_parse "$TMP/wrk-strace-$t.txt") || {
            note "wrk under strace gave no figure for $t"
            continue
        }
        total=$(awk '$NF == "total" { print $4 }' "$sf")
        [ -n "$total" ] || {
            note "strace wrote no summary for $t"
            continue
        }
        printf '   %-10s %6s calls per request (%s calls, %s requests); top:' "$t" \
            "$(div "$total" "$req" | awk '{ printf "%.2f", $1 }')" "$total" "$req"
        awk -v n="$req" '$1 ~ /^[0-9.]+$/ && $NF != "total" && NF >= 5 { print $4, $NF }' "$sf" |
            sort -rn | head -6 | awk -v n="$req" '{ printf " %s %.2f", $2, $1 / n }'
        echo
    done
fi

# ---------------------------------------------------------------------------------------------
# 3. Memory per idle keep-alive client connection.
echo
echo "== memory per idle keep-alive client connection ($IDLE connections, one request each)"
show "cc -std=c11 -O2 -Wall -Wextra -o $TMP/bench_idle bench/bench_idle.c"
cc -std=c11 -O2 -Wall -Wextra -o "$TMP/bench_idle" bench/bench_idle.c || die "bench_idle does not build"
show "bench_idle $HOST PORT $IDLE 120   # RSS (VmRSS) of the proxy before, and once it prints ready"
# Established TCP connections whose local or remote port is $1 (from /proc/net/tcp, no ss needed).
conns_on_port() {
    awk -v p="$(printf '%04X' "$1")" '$4 == "01" { split($2, l, ":"); split($3, r, ":")
        if (r[2] == p) n++ } END { print n + 0 }' /proc/net/tcp
}
# mem_run MODE: for each proxy, RSS before, with $IDLE connections of bench_idle MODE open
# ("" or partial), and (partial) 3 s after they closed.
mem_run() {
    local mode=$1 t of up0 up1 r0 r1 r2 ipid opened alive
    for t in "${PROXIES[@]}"; do
        of="$TMP/idle-$t$mode.txt"
        up0=$(conns_on_port "${NODE_PORTS[0]}")
        r0=$(rss_kb "${PID[$t]}")
        # shellcheck disable=SC2086 # an empty mode is no argument
        "$TMP/bench_idle" "$HOST" "${PORT[$t]}" "$IDLE" 120 $mode >"$of" 2>"$TMP/idle-$t$mode.err" &
        ipid=$!
        pids+=("$ipid")
        for _ in $(seq 1 600); do
            grep -q '^ready' "$of" && break
            kill -0 "$ipid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1
        r1=$(rss_kb "${PID[$t]}")
        up1=$(conns_on_port "${NODE_PORTS[0]}")
        kill -TERM "$ipid" 2>/dev/null
        wait "$ipid" 2>/dev/null
        forget "$ipid"
        opened=$(awk '/^ready/ { print $2 }' "$of")
        alive=$(awk '/^alive/ { print $2 }' "$of")
        if [ -z "$opened" ] || [ "$opened" = 0 ]; then
            note "$t: no connection opened: $(head -2 "$TMP/idle-$t$mode.err")"
            continue
        fi
        [ -s "$TMP/idle-$t$mode.err" ] && note "$t: $(head -1 "$TMP/idle-$t$mode.err")"
        printf '   %-10s %6s KiB per connection (RSS %s -> %s KiB over %s connections, %s still open;' \
            "$t" "$(awk -v a="$r0" -v b="$r1" -v n="$opened" 'BEGIN { printf "%.2f", (b - a) / n }')" \
            "$r0" "$r1" "$opened" "${alive:-?}"
        if [ -n "$mode" ]; then
            sleep 3
            r2=$(rss_kb "${PID[$t]}")
            echo " $r2 KiB 3 s after they closed)"
        else
            echo " connections to node x1: $up0 -> $up1)"
        fi
        sleep 1
    done
}
mem_run ""

# ---------------------------------------------------------------------------------------------
# 4. Memory per slow client: a connection that sent part of a request head and stopped.
echo
echo "== memory per slow client ($IDLE connections, each holding 266 bytes of a request head)"
show "bench_idle $HOST PORT $IDLE 120 partial   # RSS before, once it prints ready, and 3 s after the close"
mem_run partial
echo
echo "== done (load average now: $(cut -d' ' -f1-3 /proc/loadavg)); stopping every process started"
