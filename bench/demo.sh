#!/bin/bash
# bench/demo.sh -- the demo behind `make demo`: starts x and y nodes (bin/xf-upstream) and
# crossfade on config/demo.yaml, sends requests through it showing which node answered each,
# and stops everything it started, whatever happens.
set -u
cd "$(dirname "$0")/.."
BIN=${XF_BIN:-bin}
PORT=8000
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
}
trap cleanup EXIT INT TERM

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "demo: nothing listens on 127.0.0.1:$1" >&2
    return 1
}

for port in 8000 9101 9102 9201; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "demo: port $port is already in use; stop what holds it and retry" >&2
        exit 1
    fi
done

echo "== starting nodes: x1 x2 (cluster x, the version in service), y1 (cluster y, the new one)"
"$BIN/xf-upstream" --listen 127.0.0.1:9101 --name x1 --quiet & pids+=($!)
"$BIN/xf-upstream" --listen 127.0.0.1:9102 --name x2 --quiet & pids+=($!)
"$BIN/xf-upstream" --listen 127.0.0.1:9201 --name y1 --quiet & pids+=($!)
mkdir -p /tmp/crossfade-demo
"$BIN/crossfade" -c config/demo.yaml 2>/tmp/crossfade-demo/crossfade.log >/tmp/crossfade-demo/access.log &
pids+=($!)
for port in 9101 9102 9201 $PORT; do wait_port "$port" || exit 1; done
echo "== crossfade listens on 127.0.0.1:$PORT (config/demo.yaml)"
echo
XFCTL=("$BIN/xfctl" -s /tmp/crossfade-demo/admin.sock)
# Six clients (X-Consumer-ID) on ONE keep-alive connection: each request is routed on its own.
six_clients() {
    local args=()
    for c in alice bob carol dave erin frank; do
        [ ${#args[@]} -gt 0 ] && args+=(--next)
        args+=(-s --max-time 5 -w "  $c -> %header{x-crossfade-route} (HTTP %{http_code})\n"
            -H "X-Consumer-ID: $c" -o /dev/null "http://127.0.0.1:$PORT/")
    done
    curl "${args[@]}" || {
        echo "demo: request failed" >&2
        exit 1
    }
}
echo "== weight 0: six clients on one keep-alive connection, all on x; each keeps its node"
six_clients
echo
echo "== xfctl set weight 50: half of the clients move to y, from the very next request"
"${XFCTL[@]}" set weight 50 | sed 's/^/  /'
six_clients
echo
echo "== xfctl which header:X-Consumer-ID=alice"
"${XFCTL[@]}" which header:X-Consumer-ID=alice | sed 's/^/  /'
echo
echo "== xfctl rollback: everyone back on x at once"
"${XFCTL[@]}" rollback | sed 's/^/  /'
six_clients
echo
echo "== what the node saw of one request: X-Forwarded-* added, Connection and the X-Secret it names dropped"
curl -s --max-time 5 -H 'Connection: keep-alive, X-Secret' -H 'X-Secret: hop-by-hop' \
    "http://127.0.0.1:$PORT/echo" | sed 's/^/  /'
echo "== a malformed request (two Host headers) is refused before reaching a node"
printf 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' |
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT"; cat >&3; timeout 2 cat <&3) | head -1 | sed 's/^/  /'
echo "== a 1 MiB download streams through"
curl -s --max-time 10 -o /dev/null -w '  %{size_download} bytes, HTTP %{http_code}\n' \
    "http://127.0.0.1:$PORT/bytes/1048576"
cleanup
pids=()
echo
echo "== access log (one line per request)"
sed 's/^/  /' /tmp/crossfade-demo/access.log | tail -5
echo "== demo done: every process it started is stopped"
