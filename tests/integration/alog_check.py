#!/usr/bin/python3
# tests/integration/alog_check.py -- checks access log files written with access_log_format: json.
#
# Usage: alog_check.py FILE...
# Every line must be one JSON object with the fields docs/config.md lists, in that order
# ("override" last, and only when an override was ignored), each of its documented type, and the
# durations written with 3 decimals. Prints "lines=N" (all files together) and exits 0, or prints
# "FILE:LINE: what is wrong" and exits 1. A parser other than crossfade's own writer is the point:
# the lines must be JSON to anyone who reads them.
import json
import re
import sys

FIELDS = [
    "time", "client", "method", "path", "status", "bytes_in", "bytes_out", "ttfb_ms",
    "upstream_ms", "total_ms", "cluster", "assigned", "node", "attempts", "key", "reason",
    "bucket", "test",
]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MS = re.compile(r'"(ttfb_ms|upstream_ms|total_ms)":(null|\d+\.\d{3})[,}]')


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_str_or_none(v):
    return v is None or isinstance(v, str)


# Each field's check: true when the value is one the documentation allows.
CHECKS = {
    "time": lambda v: isinstance(v, str) and TIME.match(v) is not None,
    "client": lambda v: isinstance(v, str) and v != "",
    "method": is_str_or_none,
    "path": lambda v: v is None or (isinstance(v, str) and len(v) <= 2048),
    "status": lambda v: v is None or (is_int(v) and 100 <= v <= 599),
    "bytes_in": lambda v: is_int(v) and v >= 0,
    "bytes_out": lambda v: is_int(v) and v >= 0,
    "ttfb_ms": lambda v: v is None or (isinstance(v, (int, float)) and v >= 0),
    "upstream_ms": lambda v: v is None or (isinstance(v, (int, float)) and v >= 0),
    "total_ms": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
    "cluster": lambda v: v in (None, "x", "y"),
    "assigned": lambda v: v in ("x", "y"),
    "node": is_str_or_none,
    "attempts": lambda v: is_int(v) and 0 <= v <= 12,
    "key": is_str_or_none,
    "reason": lambda v: v in (None, "weight", "pin", "override"),
    "bucket": lambda v: v is None or (is_int(v) and 0 <= v <= 9999),
    "test": lambda v: isinstance(v, bool),
    "override": lambda v: v in ("invalid", "not_allowed"),
}


def check_line(raw):
    """None when `raw` is a valid line, else what is wrong with it."""
    try:
        pairs = json.loads(raw, object_pairs_hook=lambda p: p)
    except ValueError as e:
        return "not JSON: %s" % e
    if not isinstance(pairs, list):
        return "not a JSON object"
    names = [k for k, _ in pairs]
    want = FIELDS + (["override"] if names[-1:] == ["override"] else [])
    if names != want:
        return "fields %s, expected %s" % (names, want)
    for name, value in pairs:
        if not CHECKS[name](value):
            return "%s: unexpected value %r" % (name, value)
    if len(MS.findall(raw)) != 3:
        return "durations are not written as null or with 3 decimals"
    return None


def main():
    total = 0
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            print("%s: does not end with a newline (a cut line)" % path)
            return 1
        for n, line in enumerate(data.split(b"\n")[:-1] if data else [], 1):
            try:
                text = line.decode("ascii")  # escaped: every byte of a line is ASCII
            except UnicodeDecodeError:
                print("%s:%d: a byte outside ASCII" % (path, n))
                return 1
            why = check_line(text)
            if why is not None:
                print("%s:%d: %s\n  %s" % (path, n, why, text[:300]))
                return 1
            total += 1
    print("lines=%d" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
