#!/bin/bash
# bench/bench_post.sh -- small POSTs (1 KiB bodies) through crossfade with its request buffer
# (limits.request_buffer_bytes, the default 16 KiB) and without it (0: bodies stream), with nginx
# (which buffers request bodies by default) as the yardstick, in one run. Not a timed test: it
# reports requests per second of each, round after round.
# Environment: BENCH_ROUNDS=3 BENCH_SECONDS=8 BENCH_CONNS=32 BENCH_PORT=18800 XF_BIN=bin
set -u
BENCH_NAME=bench_post
HOST=127.0.0.1
BIN=${XF_BIN:-bin}
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-8}
CONNS=${BENCH_CONNS:-32}
BASE=${BENCH_PORT:-18800}
TMP=
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || die "wrk missing: apt-get install wrk"
command -v nginx >/dev/null || die "nginx missing: apt-get install nginx-light"
[ -x "$BIN/crossfade" ] && [ -x "$BIN/xf-upstream" ] || die "run make first"
TMP=$(mktemp -d /tmp/crossfade-bench-post.XXXXXX) || die "mktemp failed"
NODE_PORT=$((BASE + 1))
XF_PORT=$((BASE + 10))
NG_PORT=$((BASE + 20))

cat >"$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("a", 1024)
wrk.headers["Content-Type"] = "application/json"
EOF
for buf in 16384 0; do
    cat >"$TMP/crossfade-$buf.yaml" <<EOF
listen: [{address: "$HOST:$XF_PORT"}]
admin: {socket: "$TMP/admin-$buf.sock"}
split: {weight: 0, key: ["ip"]}
workers: 1
clusters:
  x: {nodes: ["$HOST:$NODE_PORT"]}
  y: {nodes: ["$HOST:$((BASE + 9))"]}
limits: {request_buffer_bytes: $buf}
access_log: off
log_level: warn
EOF
done
# nginx: one process, upstream keep-alive, no access log, request buffering on (its default).
cat >"$TMP/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx-body;
  upstream up { server $HOST:$NODE_PORT; keepalive 64; }
  server {
    listen $HOST:$NG_PORT;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF

bench_start_node
nginx -c "$TMP/nginx.conf" -p "$TMP/" 2>"$TMP/nginx.log" &
pids+=("$!")
wait_port "$NG_PORT" || die "nginx did not start: $(tail -3 "$TMP/nginx.log")"

echo "== 1 KiB POSTs, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, wrk -t1 -c$CONNS -d${SECS}s"
echo "   $("$BIN/crossfade" --version 2>&1 | head -1); $(nginx -v 2>&1)"
rps() { wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$TMP/post.lua" "http://$HOST:$1/count" | awk '/Requests\/sec/ {print $2}'; }
for round in $(seq 1 "$ROUNDS"); do
    line="   round $round: nginx $(rps "$NG_PORT")"
    for buf in 16384 0; do
        "$BIN/crossfade" -c "$TMP/crossfade-$buf.yaml" 2>"$TMP/crossfade.log" &
        xf=$!
        wait_port "$XF_PORT" || die "crossfade did not start: $(tail -3 "$TMP/crossfade.log")"
        line="$line  crossfade(buffer $buf) $(rps "$XF_PORT")"
        kill -TERM "$xf"
        wait "$xf" 2>/dev/null
    done
    echo "$line  (requests/s)"
done
