#!/bin/bash
# bench/bench_counters.sh -- what issue 14's counters cost per request: the crossfade of this
# tree against one built from BASE (the commit before the counters), in one run, in front of one
# xf-upstream node on loopback. wrk sends small keep-alive GETs to each in turn (the order
# alternates by round); the CPU ticks of each crossfade process over its requests give the CPU
# per request, and the ratio this/base is the cost (issue 14 allows 1.03). Both serve the same
# traffic with the same config (one worker, no access log); this tree's also has the guard on and
# admin.http listening, so their per-second work is counted too.
#
#   bench/bench_counters.sh [--quick]
#   BENCH_BASE=725f51b BENCH_SECONDS=10 BENCH_ROUNDS=5 BENCH_PORT=18800 XF_BIN=bin BENCH_KEEP=1
# Exits non-zero only when the setup fails; a figure, good or bad, never changes the exit status.
set -u
cd "$(dirname "$0")/.." || exit 1
BENCH_NAME=bench_counters
HOST=127.0.0.1
TMP=
. bench/lib.sh

QUICK=0
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    -h | --help)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument $arg (try --help)" ;;
    esac
done
SECONDS_RUN=${BENCH_SECONDS:-$([ "$QUICK" = 1 ] && echo 3 || echo 10)}
ROUNDS=${BENCH_ROUNDS:-$([ "$QUICK" = 1 ] && echo 1 || echo 5)}
BASE_REV=${BENCH_BASE:-725f51b}
PORT0=${BENCH_PORT:-18800}
BIN=${XF_BIN:-bin}
for v in SECONDS_RUN ROUNDS PORT0; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "$v must be a positive integer, got '${!v}'"
done
for t in wrk awk git; do
    command -v "$t" >/dev/null || die "$t is not installed (make deps installs it)"
done
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xf-upstream" ] || die "$BIN/crossfade or xf-upstream missing: run make"
TMP=$(mktemp -d /tmp/crossfade-bench-counters.XXXXXX) || die "mktemp failed"

NODE_PORT=$((PORT0 + 1))
NEW_PORT=$((PORT0 + 10))
OLD_PORT=$((PORT0 + 11))
HTTP_PORT=$((PORT0 + 12))
for p in "$NODE_PORT" "$NEW_PORT" "$OLD_PORT" "$HTTP_PORT"; do
    port_busy "$p" && die "port $HOST:$p is in use: stop what holds it or set BENCH_PORT"
done

echo "== building crossfade at $BASE_REV (the base) in $TMP/base"
git archive --format=tar --prefix=base/ "$BASE_REV" | tar -x -C "$TMP" ||
    die "cannot export $BASE_REV"
make -C "$TMP/base" -j2 bin/crossfade >"$TMP/base-build.log" 2>&1 ||
    die "the base does not build: $(tail -3 "$TMP/base-build.log")"

config() { # PORT SOCKET EXTRA
    cat <<EOC
listen:
  - address: "$HOST:$1"
admin:
  socket: "$2"
$3
split: {weight: 0, seed: "bench"}
clusters:
  x: {nodes: ["$HOST:$NODE_PORT"]}
  y: {nodes: ["$HOST:$((PORT0 + 9))"], failover: false}
access_log: off
log_level: warn
workers: 1
EOC
}
config "$NEW_PORT" "$TMP/new.sock" "  http: \"$HOST:$HTTP_PORT\"
guard: {window: 30s}" >"$TMP/new.yaml"
config "$OLD_PORT" "$TMP/old.sock" "" >"$TMP/old.yaml"

show "$BIN/xf-upstream --listen $HOST:$NODE_PORT --name x1 --quiet"
"$BIN/xf-upstream" --listen "$HOST:$NODE_PORT" --name x1 --quiet 2>"$TMP/node.log" &
pids+=("$!")
wait_port "$NODE_PORT" || die "xf-upstream did not start"
show "$BIN/crossfade -c $TMP/new.yaml   # this tree"
"$BIN/crossfade" -c "$TMP/new.yaml" >"$TMP/new.out" 2>"$TMP/new.log" &
NEW_PID=$!
pids+=("$NEW_PID")
show "$TMP/base/bin/crossfade -c $TMP/old.yaml   # $BASE_REV"
"$TMP/base/bin/crossfade" -c "$TMP/old.yaml" >"$TMP/old.out" 2>"$TMP/old.log" &
OLD_PID=$!
pids+=("$OLD_PID")
wait_port "$NEW_PORT" || die "crossfade did not start: $(tail -3 "$TMP/new.log")"
wait_port "$OLD_PORT" || die "the base crossfade did not start: $(tail -3 "$TMP/old.log")"
declare -A PORT=([new]=$NEW_PORT [old]=$OLD_PORT) PID=([new]=$NEW_PID [old]=$OLD_PID)

# One wrk run against `which`: prints "requests cpu_us_per_request".
run() {
    local which=$1 t0 t1 out n
    t0=$(cpu_ticks "${PID[$which]}")
    out=$(wrk -t1 -c50 -d"${SECONDS_RUN}s" "http://$HOST:${PORT[$which]}/" 2>&1)
    t1=$(cpu_ticks "${PID[$which]}")
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    [ -n "$n" ] && [ "$n" -gt 0 ] || die "wrk against $which failed: $out"
    awk -v n="$n" -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {printf "%d %.3f\n", n, d / hz * 1e6 / n}'
}

echo "== $ROUNDS rounds of ${SECONDS_RUN}s each: wrk -t1 -c50, small GETs, keep-alive"
show "wrk -t1 -c50 -d${SECONDS_RUN}s http://$HOST:PORT/"
: >"$TMP/ratios"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then first=new second=old; else first=old second=new; fi
    declare -A RES=()
    RES[$first]=$(run "$first")
    RES[$second]=$(run "$second")
    read -r nn cn <<<"${RES[new]}"
    read -r no co <<<"${RES[old]}"
    ratio=$(awk -v a="$cn" -v b="$co" 'BEGIN {printf "%.3f", a / b}')
    echo "$ratio" >>"$TMP/ratios"
    printf '  round %d: this tree %s req, %s us CPU/req | base %s req, %s us CPU/req | ratio %s\n' \
        "$r" "$nn" "$cn" "$no" "$co" "$ratio"
done
echo "== median CPU per request, this tree / base: $(median <"$TMP/ratios") (issue 14: at most 1.03)"
