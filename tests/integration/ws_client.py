#!/usr/bin/python3
# tests/integration/ws_client.py -- a WebSocket client for the tunnel tests (python3-websockets).
#
# Connects to URL, reads the node's greeting, sends a text and a binary message and checks that
# each comes back whole, optionally waits until a file exists (the test holds the tunnel open
# meanwhile) and for --linger-ms, then closes with code 1000. Compression and pings are off:
# the frames' sizes are known, and the bytes each way are printed for the access log's counts.
# Prints one line per step on stdout; exits 0 when every step went as expected, else 1 with the
# reason on stderr (2: the whole run took longer than --timeout seconds).
import argparse
import asyncio
import os
import sys

try:
    from websockets.legacy.client import connect
except ImportError:  # pragma: no cover
    from websockets import connect


def log(line):
    print(line, flush=True)


def frame_len(payload, masked):
    """Bytes of one unfragmented frame of `payload` bytes (RFC 6455 5.2)."""
    ext = 0 if payload < 126 else 2 if payload < 65536 else 8
    return 2 + ext + (4 if masked else 0) + payload


async def run(args):
    headers = [tuple(h.split(":", 1)) for h in args.header]
    headers = [(k.strip(), v.strip()) for k, v in headers]
    text = "text through the tunnel"
    binary = bytes(i % 251 for i in range(args.binary_bytes))
    up = down = 0  # bytes of the frames sent and received
    async with connect(args.url, compression=None, ping_interval=None, max_size=None,
                       extra_headers=headers, open_timeout=10, close_timeout=10) as ws:
        req_head = len(f"GET {ws.path} HTTP/1.1\r\n") + len(str(ws.request_headers))
        resp_fields = len(str(ws.response_headers))
        greeting = await ws.recv()
        down += frame_len(len(greeting.encode()), False)
        log(f"greeting: {greeting}")
        await ws.send(text)
        up += frame_len(len(text.encode()), True)
        echo = await ws.recv()
        down += frame_len(len(echo.encode()) if isinstance(echo, str) else len(echo), False)
        if echo != text:
            raise RuntimeError(f"the text came back as {echo!r}")
        log("text echo ok")
        await ws.send(binary)
        up += frame_len(len(binary), True)
        echo = await ws.recv()
        down += frame_len(len(echo), False)
        if echo != binary:
            raise RuntimeError(f"the binary message came back different ({len(echo)} bytes)")
        log(f"binary echo ok {len(binary)}")
        if args.hold_until:
            log("holding")
            while not os.path.exists(args.hold_until):
                await asyncio.sleep(0.02)
        if args.linger_ms:
            await asyncio.sleep(args.linger_ms / 1000)
        await ws.close(code=1000)
        up += frame_len(2, True)    # the close frame: its code, no reason
        down += frame_len(2, False)  # the node's answer, the same
        log(f"closed code={ws.close_code} reason={ws.close_reason!r}")
        if ws.close_code != 1000:
            raise RuntimeError(f"the close handshake ended with code {ws.close_code}")
    log(f"bytes request_head={req_head} response_fields={resp_fields} up={up} down={down}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--header", action="append", default=[], help='"Name: value", repeatable')
    ap.add_argument("--binary-bytes", type=int, default=1000)
    ap.add_argument("--hold-until", help="keep the tunnel open until this file exists")
    ap.add_argument("--linger-ms", type=int, default=0, help="wait before the close")
    ap.add_argument("--timeout", type=float, default=20)
    args = ap.parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except asyncio.TimeoutError:
        print(f"ws_client: no end within {args.timeout} s", file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception as e:  # every failure, with its reason, for the test's log
        print(f"ws_client: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
