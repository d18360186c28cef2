#!/usr/bin/env python3
"""bench/bench_memory.py HOST PORT N BURST -- the clients of bench/bench_memory.sh.

With BURST warm: N requests one after the other, each on its own connection, then exit (the
warm-up before the baseline is read: crossfade has served, holds no connection).
With BURST 1: N requests at once (GET /delay/300, each on its own connection, closed after its
answer) first. Then N keep-alive connections, each with one request answered, kept open. Prints
"ready" once all N are idle, then waits for a line on stdin before closing them.
"""
import asyncio
import sys

HOST, PORT, N, MODE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
BURST = MODE == "1"


async def request(path, close, sem=None):
    if sem is not None:
        await sem.acquire()
    try:
        r, w = await asyncio.open_connection(HOST, PORT)
        conn = "close" if close else "keep-alive"
        w.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: {conn}\r\n\r\n".encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await r.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:40])
        if close:
            w.close()
            return None
        return w
    finally:
        if sem is not None:
            sem.release()


async def main():
    if MODE == "warm":
        for _ in range(N):
            await request("/", True)
        return
    if BURST:
        await asyncio.gather(*(request("/delay/300", True) for _ in range(N)))
    sem = asyncio.Semaphore(100)
    conns = await asyncio.gather(*(request("/", False, sem) for _ in range(N)))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for w in conns:
        w.close()


asyncio.run(main())
