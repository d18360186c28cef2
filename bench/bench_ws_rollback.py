#!/usr/bin/python3
# bench/bench_ws_rollback.py -- N WebSocket clients through crossfade, held open until the server
# closes them, then reconnected once; for bench/bench_tunnels.sh.
#
#   bench_ws_rollback.py URL N SECONDS
#
# Opens N connections (python3-websockets; no compression, no pings), prints "ready N" once all
# are open, then waits up to SECONDS for them to be closed by the server. Each closed client
# reconnects at once and reads the new node's greeting. Prints one JSON line: per client the
# greeting before and after, the close code and the close time (monotonic seconds).
import asyncio
import json
import sys
import time

from websockets.legacy.client import connect


async def client(url, opened, out):
    ws = await connect(url, compression=None, ping_interval=None, close_timeout=2, max_queue=None)
    first = await ws.recv()
    opened.append(1)
    try:
        while True:
            await ws.recv()
    except Exception:
        pass
    closed_at = time.monotonic()
    code = ws.close_code
    again = ""
    try:
        ws2 = await connect(url, compression=None, ping_interval=None, close_timeout=2)
        again = await ws2.recv()
        await ws2.close()
    except Exception as e:  # a reconnection that fails is reported, not hidden
        again = "failed: " + type(e).__name__
    out.append({"first": first, "code": code, "t": closed_at, "again": again})


async def main(url, n, seconds):
    opened, out, tasks = [], [], []
    for i in range(n):
        tasks.append(asyncio.create_task(client(url, opened, out)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # no SYN flood of our own
    deadline = time.monotonic() + 30
    while len(opened) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print("ready", len(opened), flush=True)
    await asyncio.wait(tasks, timeout=seconds)
    print(json.dumps(out), flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
