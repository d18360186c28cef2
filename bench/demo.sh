#!/bin/bash
# bench/demo.sh -- the main job behind `make demo`: a rollout of a new gateway version, measured.
# Starts cluster x (two healthy xf-upstream nodes) and cluster y (two nodes of the "new version",
# with a small injected error rate and extra latency), crossfade on config/demo.yaml, then
# xfbench with a rollout script that ramps y up in steps and rolls back; prints the live timeline
# and the summary, writes demo-report.html, and stops every process it started.
set -u
cd "$(dirname "$0")/.."
BIN=${XF_BIN:-bin}
PORT=8000
SOCK=/tmp/crossfade-demo/admin.sock
REPORT=${DEMO_REPORT:-demo-report.html}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    pids=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 100); do
        port_busy "$1" && return 0
        sleep 0.05
    done
    echo "demo: nothing listens on 127.0.0.1:$1" >&2
    return 1
}

for port in $PORT 9101 9102 9201 9202; do
    if port_busy "$port"; then
        echo "demo: port $port is already in use; stop what holds it and retry" >&2
        exit 1
    fi
done
mkdir -p /tmp/crossfade-demo

echo "== cluster x (in service): x1 x2 healthy; cluster y (the new version): y1 y2 with 1 % errors and +5 ms"
"$BIN/xf-upstream" --listen 127.0.0.1:9101 --name x1 --quiet & pids+=($!)
"$BIN/xf-upstream" --listen 127.0.0.1:9102 --name x2 --quiet & pids+=($!)
"$BIN/xf-upstream" --listen 127.0.0.1:9201 --name y1 --quiet --error-rate 1 --delay 5 & pids+=($!)
"$BIN/xf-upstream" --listen 127.0.0.1:9202 --name y2 --quiet --error-rate 1 --delay 5 & pids+=($!)
"$BIN/crossfade" -c config/demo.yaml 2>/tmp/crossfade-demo/crossfade.log >/dev/null & pids+=($!)
for port in 9101 9102 9201 9202 $PORT; do wait_port "$port" || exit 1; done
# Up to 10 s for the admin socket to answer and for start-up (the first health checks) to end.
"$BIN/xfctl" -s "$SOCK" -w 10 show weight >/dev/null || exit 1
echo "== crossfade on 127.0.0.1:$PORT, admin socket $SOCK (config/demo.yaml)"
echo

ROLLOUT="3s set weight 10; 8s set weight 25; 13s set weight 50; 19s rollback"
echo "== xfbench: 10,000 clients (X-Consumer-ID), 1,500 requests/s for 24 s, rollout:"
echo "   $ROLLOUT"
echo "   (columns: elapsed, requests/s, p50, p99, errors, share of responses served by y)"
"$BIN/xfbench" -t 2 -c 20 --rate 1500 -d 24s --keys 10000 -s "$SOCK" \
    --rollout "$ROLLOUT" --html "$REPORT" "http://127.0.0.1:$PORT/"
rc=$?
echo
echo "== where a client goes now (after the rollback): xfctl which header:X-Consumer-ID=alice"
"$BIN/xfctl" -s "$SOCK" which header:X-Consumer-ID=alice | sed 's/^/   /'
echo "== the admin trail: xfctl show events"
"$BIN/xfctl" -s "$SOCK" show events | sed 's/^/   /'
cleanup
echo
if [ "$rc" -gt 1 ]; then
    echo "demo: xfbench failed (exit $rc)" >&2
    exit 1
fi
echo "== report: $REPORT (requests/s, p99 and the y share over time, rollout events marked)"
echo "== demo done: every process it started is stopped"
