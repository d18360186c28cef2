#!/usr/bin/python3
# tests/integration/ws_echo.py -- a WebSocket node for the tunnel tests (python3-websockets).
#
# Listens on 127.0.0.1:PORT, greets each client with the text message "hello from NAME", then
# echoes every message as it came (text as text, binary as binary) until the client closes.
# Compression and keep-alive pings are off, so that the bytes on the wire are the messages'
# frames alone. Prints one line per event on stdout: "listening", "open path=...",
# "closed code=...".
import argparse
import asyncio
import sys

try:  # the API of websockets 10 and later; "legacy" since 10.0
    from websockets.legacy.server import serve
except ImportError:  # pragma: no cover
    from websockets import serve


def log(line):
    print(line, flush=True)


async def main(port, name):
    async def handler(ws, path=None):
        log(f"open path={getattr(ws, 'path', path)}")
        await ws.send(f"hello from {name}")
        async for msg in ws:
            await ws.send(msg)
        log(f"closed code={ws.close_code}")

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None,
                     max_size=None):
        log("listening")
        await asyncio.Future()  # until the harness stops the process


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    try:
        asyncio.run(main(args.port, args.name))
    except KeyboardInterrupt:
        sys.exit(0)
