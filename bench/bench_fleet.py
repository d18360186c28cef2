#!/usr/bin/env python3
"""bench/bench_fleet.py -- the measurements of bench/bench_fleet.sh (issue 16).

  rollback SOCK1,SOCK2,SOCK3 TRIALS
      Each trial: `set weight 100` on the first instance, wait until all three say y 100.00; then
      `rollback` on the first, and the other two are heard through `watch` (a line for each
      change applied there). Prints each trial's time from sending `rollback` to the last
      instance's line, then the median and the max, in ms.

  ramp LOG1,LOG2,LOG3
      Reads each instance's log: the ramp's start (event=ramp_started on the one that started it,
      the shared schedule) and every event=ramp_step; prints each step's lateness on each
      instance against the schedule (start + k * interval), and the worst.

  fanout ENDPOINT N PUTS
      N watch streams on etcd's JSON gateway (/v3/watch, as crossfade's), then PUTS puts; prints
      the time from sending each put to its event on the last of the N streams: the median and
      the max, in ms.
"""
import base64
import json
import re
import selectors
import socket
import statistics
import sys
import time
from datetime import datetime, timezone


def admin(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def cmd(s, line):
    s.sendall(line.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n\n"):
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("admin socket closed")
        buf += chunk
    return buf.decode()


def weight(s):
    return re.search(r"^y (\S+)$", cmd(s, "show weight"), re.M).group(1)


def wait_weight(conns, want, limit=10.0):
    end = time.monotonic() + limit
    for c in conns:
        while weight(c) != want:
            if time.monotonic() > end:
                raise RuntimeError("no instance agreement on " + want)
            time.sleep(0.005)


def rollback(socks, trials):
    paths = socks.split(",")
    conns = [admin(p) for p in paths]
    # The others are heard through `watch`: each change applied there is a line, pushed as it
    # happens (polling them back to back would take the CPU etcd needs on this machine).
    watchers = []
    for p in paths[1:]:
        w = admin(p)
        w.sendall(b"watch\n")
        w.recv(65536)  # "ok: watching ..."
        watchers.append(w)
    sel = selectors.DefaultSelector()
    for w in watchers:
        sel.register(w, selectors.EVENT_READ, {"buf": b""})
    weight_to = re.compile(rb'" weight \S+ -> (\S+)')
    times = []
    for t in range(trials):
        r = cmd(conns[0], "set weight 100")
        if not r.startswith("ok"):
            raise RuntimeError(r)
        wait_weight(conns, "100.00")
        time.sleep(0.2)
        for key, _ in sel.select(timeout=0):  # what the set weight left
            key.fileobj.recv(65536)
        t0 = time.monotonic()
        conns[0].sendall(b"rollback\n")
        pending = set(watchers)
        last = t0
        while pending:
            ready = sel.select(timeout=5)
            if not ready:
                raise RuntimeError("an instance did not apply the rollback within 5 s")
            for key, _ in ready:
                key.data["buf"] += key.fileobj.recv(65536)
                if any(m == b"0.00" for m in weight_to.findall(key.data["buf"])):
                    key.data["buf"] = b""
                    pending.discard(key.fileobj)
                    last = time.monotonic()
        reply = b""
        while not reply.endswith(b"\n\n"):
            reply += conns[0].recv(65536)
        if not reply.startswith(b"ok"):
            raise RuntimeError(reply)
        ms = (last - t0) * 1000
        times.append(ms)
        print(f"   trial {t + 1:2d}: in force on all three {ms:6.1f} ms after rollback was sent")
    print(f"   rollback in force everywhere: median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms ({trials} trials)")


LOG_TS = re.compile(r"^(\S+Z) ")


def log_ms(line):
    ts = LOG_TS.match(line).group(1)
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() * 1000


def ramp(logs):
    start = None
    steps = {}
    for path in logs.split(","):
        name = path.rsplit("/", 1)[-1]
        for line in open(path):
            if "event=ramp_started" in line and start is None:
                start = log_ms(line)
                n = int(re.search(r"steps=(\d+)", line).group(1))
                dur = int(re.search(r"duration_ms=(\d+)", line).group(1))
            m = re.search(r"event=ramp_step step=(\d+)/(\d+)", line)
            if m:
                steps.setdefault(name, []).append((int(m.group(1)), log_ms(line)))
    if start is None:
        raise RuntimeError("no ramp_started line")
    worst = 0.0
    for name, taken in sorted(steps.items()):
        late = [t - (start + k * dur / n) for k, t in taken]
        worst = max([worst] + [abs(x) for x in late])
        print(f"   {name}: {len(taken)} of {n} steps, lateness against the schedule "
              f"{min(late):+.0f} .. {max(late):+.0f} ms")
    print(f"   worst step off its schedule on any instance: {worst:.0f} ms")


def http_post(host, port, path, body):
    s = socket.create_connection((host, port))
    data = json.dumps(body).encode()
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: etcd\r\nContent-Length: {len(data)}\r\n"
              f"Connection: close\r\n\r\n".encode() + data)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def b64(s):
    return base64.b64encode(s.encode()).decode()


def fanout(endpoint, n, puts):
    host, port = endpoint.replace("http://", "").rsplit(":", 1)
    port = int(port)
    sel = selectors.DefaultSelector()
    key = "/bench-fanout/k"
    body = json.dumps({"create_request": {"key": b64(key)}}).encode()
    streams = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.sendall(f"POST /v3/watch HTTP/1.1\r\nHost: etcd\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode() + body)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, {"buf": b"", "seen": set()})
        streams.append(s)
    time.sleep(1.0)  # every stream created
    for k in streams:
        sel.get_key(k).data["buf"] = b""
    lat = []
    for i in range(puts):
        value = f"v{i}"
        t0 = time.monotonic()
        http_post(host, port, "/v3/kv/put", {"key": b64(key), "value": b64(value)})
        want = b64(value).encode()
        got = 0
        end = t0 + 5
        last = t0
        while got < n and time.monotonic() < end:
            for skey, _ in sel.select(timeout=0.5):
                d = skey.data
                d["buf"] += skey.fileobj.recv(65536)
                if want in d["buf"] and i not in d["seen"]:
                    d["seen"].add(i)
                    d["buf"] = b""
                    got += 1
                    last = time.monotonic()
        if got < n:
            raise RuntimeError(f"put {i}: {got} of {n} watchers saw it")
        lat.append((last - t0) * 1000)
        time.sleep(0.2)
    print(f"   {n:3d} watchers: a put reaches the last of them, from its sending, median "
          f"{statistics.median(lat):.2f} ms, max {max(lat):.2f} ms ({puts} puts)")
    for s in streams:
        s.close()


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "rollback":
        rollback(sys.argv[2], int(sys.argv[3]))
    elif what == "ramp":
        ramp(sys.argv[2])
    elif what == "fanout":
        fanout(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
