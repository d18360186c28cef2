#!/bin/bash
# bench/bench_fleet.sh -- fleet mode's figures (issue 16, docs/fleet.md):
#   1. three etcd members and three crossfade instances on loopback: a rollback typed on one is in
#      force on all three within how long (median and max of BENCH_TRIALS trials);
#   2. the etcd leader killed in the middle of a ramp, under load (wrk on each instance): failed
#      requests, and how far each instance's steps are from the shared schedule;
#   3. the watch fan-out: a put reaching N watch streams (N = 3, 10, 50, 100), for the estimate of
#      a fleet of 50.
# Environment: BENCH_TRIALS=20 BENCH_PORT=18900 XF_BIN=bin BENCH_KEEP=1
#   BENCH_ETCD_DATA=DIR: where the members keep their data (default: the scratch directory, on
#   disk; /dev/shm takes the disk's fsync out of the figures)
set -u
BENCH_NAME=bench_fleet
HOST=127.0.0.1
BIN=${XF_BIN:-bin}
TRIALS=${BENCH_TRIALS:-20}
BASE=${BENCH_PORT:-18900}
TMP=
. "$(dirname "$0")/lib.sh"
PY="$(dirname "$0")/bench_fleet.py"
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xf-upstream" ] || die "$BIN/crossfade or xf-upstream missing: run make"
command -v etcd >/dev/null || die "etcd is missing: make deps installs Debian's etcd-server"
command -v wrk >/dev/null || die "wrk is missing: apt-get install wrk"
TMP=$(mktemp -d /tmp/crossfade-bench-fleet.XXXXXX) || die "mktemp failed"
DATA=$TMP
if [ -n "${BENCH_ETCD_DATA:-}" ]; then
    DATA=$(mktemp -d "$BENCH_ETCD_DATA/crossfade-bench-fleet.XXXXXX") || die "mktemp in $BENCH_ETCD_DATA failed"
    trap 'bench_cleanup; rm -rf "$DATA"' EXIT
fi

# etcd: three members, client ports BASE+1..3, peer ports BASE+11..13.
initial="e1=http://$HOST:$((BASE + 11)),e2=http://$HOST:$((BASE + 12)),e3=http://$HOST:$((BASE + 13))"
endpoints="\"http://$HOST:$((BASE + 1))\", \"http://$HOST:$((BASE + 2))\", \"http://$HOST:$((BASE + 3))\""
declare -A ETCD
start_etcd() { # k
    local k=$1
    etcd --name "e$k" --data-dir "$DATA/e$k" --listen-client-urls "http://$HOST:$((BASE + k))" \
        --advertise-client-urls "http://$HOST:$((BASE + k))" \
        --listen-peer-urls "http://$HOST:$((BASE + 10 + k))" \
        --initial-advertise-peer-urls "http://$HOST:$((BASE + 10 + k))" \
        --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token bench \
        --heartbeat-interval 50 --election-timeout 500 >"$TMP/e$k.log" 2>&1 &
    ETCD[$k]=$!
    pids+=("$!")
}
for k in 1 2 3; do start_etcd "$k"; done
for k in 1 2 3; do wait_port $((BASE + k)) || die "etcd e$k did not start: $(tail -2 "$TMP/e$k.log")"; done
leader() { # prints k of the leader
    local k body self lead
    for k in 1 2 3; do
        body=$(curl -s -m 1 -X POST -d '{}' "http://$HOST:$((BASE + k))/v3/maintenance/status") || continue
        self=$(echo "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["header"]["member_id"], d["leader"])' 2>/dev/null) || continue
        read -r self lead <<<"$self"
        [ "$self" = "$lead" ] && { echo "$k"; return 0; }
    done
    return 1
}
for _ in $(seq 1 100); do leader >/dev/null && break; sleep 0.1; done
leader >/dev/null || die "etcd elected no leader"

NODE_X=$((BASE + 21)) NODE_Y=$((BASE + 22))
"$BIN/xf-upstream" --listen "$HOST:$NODE_X" --name x1 --quiet 2>"$TMP/x1.log" &
pids+=("$!")
"$BIN/xf-upstream" --listen "$HOST:$NODE_Y" --name y1 --quiet 2>"$TMP/y1.log" &
pids+=("$!")
wait_port "$NODE_X" && wait_port "$NODE_Y" || die "xf-upstream did not start"
socks=() logs=()
for i in 1 2 3; do
    cat >"$TMP/edge-$i.yaml" <<EOF2
listen: [{address: "$HOST:$((BASE + 30 + i))"}]
admin: {socket: "$TMP/edge-$i.sock"}
split: {weight: 0, key: ["header:X-Key", "ip"]}
clusters:
  x: {nodes: ["$HOST:$NODE_X"]}
  y: {nodes: ["$HOST:$NODE_Y"]}
state_file: "$TMP/edge-$i.state"
access_log: off
workers: 1
fleet:
  etcd: [$endpoints]
  prefix: /crossfade/bench/
  name: edge-$i
EOF2
    "$BIN/crossfade" -c "$TMP/edge-$i.yaml" 2>"$TMP/edge-$i.log" &
    pids+=("$!")
    socks+=("$TMP/edge-$i.sock")
    logs+=("$TMP/edge-$i.log")
done
for i in 1 2 3; do wait_port $((BASE + 30 + i)) || die "edge-$i did not start: $(tail -3 "$TMP/edge-$i.log")"; done
for i in 1 2 3; do
    for _ in $(seq 1 100); do
        "$BIN/xfctl" -s "$TMP/edge-$i.sock" show fleet 2>/dev/null | grep -q '^state revision' && break
        sleep 0.1
    done
done
sleep 1

echo "== crossfade fleet benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'): 3 etcd members ($(etcd --version | head -1), data in $DATA), 3 crossfade instances"
echo "   $("$BIN/crossfade" --version 2>&1 | head -1)"
echo "-- 1. rollback on edge-1, in force on edge-2 and edge-3 ($TRIALS trials)"
python3 "$PY" rollback "$(IFS=,; echo "${socks[*]}")" "$TRIALS" || die "the rollback trials failed"

echo "-- 2. the etcd leader killed in the middle of a 20 s ramp, wrk on each instance"
"$BIN/xfctl" -s "$TMP/edge-1.sock" rollback >/dev/null
sleep 0.5
for i in 1 2 3; do
    wrk -t1 -c8 -d24s -H "X-Key: k$i" "http://$HOST:$((BASE + 30 + i))/" >"$TMP/wrk-$i.txt" 2>&1 &
    pids+=("$!")
    eval "WRK$i=$!"
done
sleep 1
"$BIN/xfctl" -s "$TMP/edge-2.sock" ramp 50 over 20s step 5 || die "the ramp did not start"
sleep 10
L=$(leader) || die "no leader mid-ramp"
echo "   killing the leader, e$L, 10 s into the ramp"
kill -KILL "${ETCD[$L]}"
wait "$WRK1" "$WRK2" "$WRK3" 2>/dev/null
for i in 1 2 3; do
    req=$(awk '/requests in/ {print $1}' "$TMP/wrk-$i.txt")
    errs=$(awk '/Socket errors|Non-2xx/ {print}' "$TMP/wrk-$i.txt" | tr '\n' ' ')
    echo "   edge-$i: $req requests, ${errs:-no socket errors, no non-2xx responses}"
done
for i in 1 2 3; do
    echo "   edge-$i: $("$BIN/xfctl" -s "$TMP/edge-$i.sock" show weight | tr '\n' ' ')"
done
python3 "$PY" ramp "$(IFS=,; echo "${logs[*]}")" || die "the ramp's steps could not be read"
start_etcd "$L"
wait_port $((BASE + L)) || die "etcd e$L did not come back"

echo "-- 3. watch fan-out: a put reaching N watch streams of etcd's JSON gateway"
sleep 1
for n in 3 10 50 100; do
    python3 "$PY" fanout "http://$HOST:$((BASE + 1))" "$n" 20 || die "fan-out to $n failed"
done
