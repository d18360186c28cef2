#!/usr/bin/python3
# tests/integration/ws_many.py -- many WebSocket clients at once, for the tests of tunnels that
# leave their side (python3-websockets).
#
# Opens --count connections to URL, or one per --keys value with the header "KEY_HEADER: KEY",
# all at once, and reads each one's greeting ("hello from NAME"): prints "open I NAME" for each,
# then "ready" once all are open. Then it waits, and notes each connection the server closes:
# "closed I code=C at_ms=T" (T on CLOCK_MONOTONIC in ms, the clock of the tests' h_now_ms). With
# --reconnect it then connects once more with the same header, prints "again I NAME" and closes
# that connection with code 1000. Once the file --release exists (without it: once every
# connection was closed by the server), each connection still open sends a message, checks that
# it comes back, and closes with code 1000. Last, one line per connection, then "done":
#
#   conn I first=NAME code=C at_ms=T again=NAME still_open=0|1 echo=0|1
#
# (code=-1 at_ms=-1 again=- when the server did not close it). Compression and pings are off: the
# only frames are the greeting, the echo and the close handshake. Exits 0 when every step went
# as expected, else 1 with the reason on stderr (2: no end within --timeout seconds).
import argparse
import asyncio
import os
import sys
import time

try:
    from websockets.legacy.client import connect
except ImportError:  # pragma: no cover
    from websockets import connect
from websockets.exceptions import ConnectionClosed

GREETING = "hello from "


def log(line):
    print(line, flush=True)


def now_ms():
    # time.monotonic() is CLOCK_MONOTONIC on Linux, as h_now_ms.
    return int(time.monotonic() * 1000)


async def open_one(url, headers):
    """A connection and the name in its greeting."""
    ws = await connect(url, compression=None, ping_interval=None, max_size=None,
                       extra_headers=headers, open_timeout=10, close_timeout=5)
    greeting = await ws.recv()
    if not isinstance(greeting, str) or not greeting.startswith(GREETING):
        raise RuntimeError(f"unexpected greeting {greeting!r}")
    return ws, greeting[len(GREETING):]


class Conn:
    def __init__(self, i, headers):
        self.i = i
        self.headers = headers
        self.ws = None
        self.first = "-"
        self.code = -1
        self.at_ms = -1
        self.again = "-"
        self.still_open = False
        self.echo = False
        self.ours = False  # we are closing it
        self.echoed = asyncio.Event()
        self.gone = asyncio.Event()  # the server closed it (and the reconnection is over)


async def watch(c, args):
    """Reads c until it closes; a close by the server is noted, then reconnects once."""
    text = f"still here {c.i}"
    try:
        while True:
            msg = await c.ws.recv()
            if msg != text:
                raise RuntimeError(f"connection {c.i}: unexpected message {msg!r}")
            c.echo = True
            c.echoed.set()
    except ConnectionClosed:
        pass
    if c.ours:
        return
    c.at_ms = now_ms()
    c.code = c.ws.close_code if c.ws.close_code is not None else 0
    log(f"closed {c.i} code={c.code} at_ms={c.at_ms}")
    if args.reconnect:
        ws, name = await open_one(args.url, c.headers)
        c.again = name
        log(f"again {c.i} {name}")
        await ws.close(code=1000)
    c.gone.set()


async def release(conns, args):
    """Once the release file exists: each connection still open echoes a message, then closes."""
    while not os.path.exists(args.release):
        await asyncio.sleep(0.02)
    for c in conns:
        if c.gone.is_set() or c.code != -1:
            continue
        try:
            await c.ws.send(f"still here {c.i}")
            await asyncio.wait_for(c.echoed.wait(), 5)
        except (ConnectionClosed, asyncio.TimeoutError):
            continue
        if c.code == -1:
            c.still_open = True
            c.ours = True
            await c.ws.close(code=1000)


async def run(args):
    if args.keys:
        keys = args.keys.split(",")
        heads = [[(args.key_header, k)] for k in keys]
    else:
        heads = [[] for _ in range(args.count)]
    conns = [Conn(i, h) for i, h in enumerate(heads)]
    opened = await asyncio.gather(*(open_one(args.url, c.headers) for c in conns))
    for c, (ws, name) in zip(conns, opened):
        c.ws, c.first = ws, name
        log(f"open {c.i} {name}")
    log("ready")
    watchers = [asyncio.ensure_future(watch(c, args)) for c in conns]
    if args.release:
        await release(conns, args)
    await asyncio.gather(*watchers)
    for c in conns:
        log(f"conn {c.i} first={c.first} code={c.code} at_ms={c.at_ms} again={c.again} "
            f"still_open={int(c.still_open)} echo={int(c.echo)}")
    log("done")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--keys", help="comma-separated split keys: one connection each")
    ap.add_argument("--key-header", default="X-Key")
    ap.add_argument("--reconnect", action="store_true",
                    help="connect once more after the server closed a connection")
    ap.add_argument("--release", help="end once this file exists")
    ap.add_argument("--timeout", type=float, default=25)
    args = ap.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except asyncio.TimeoutError:
        print(f"ws_many: no end within {args.timeout} s", file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception as e:  # every failure, with its reason, for the test's log
        print(f"ws_many: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
