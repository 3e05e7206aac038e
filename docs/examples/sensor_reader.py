#!/usr/bin/env python3
"""sensor_reader.py: a Python reader of the C writer docs/examples/sensor.c.

sensor.c publishes a stream of readings (segment "readings", one line
every 200 ms, each expiring after 5 s) and named blocks it keeps updating
(segment "board": "config", "status", "latest"). This reader prints the
station's config, then follows the stream, and every fifth reading shows
the latest status: the same segments a C program, the speculo tool and
speculofs see.

    cc -std=c11 -D_GNU_SOURCE -Ilib docs/examples/sensor.c lib/libspeculo.a -pthread -o sensor
    ./sensor &
    PYTHONPATH=python python3 docs/examples/sensor_reader.py [COUNT]

It stops after COUNT readings (for ever without), on Ctrl-C, or when no
reading comes for 10 s.
"""

import sys
import time

import speculo


def open_when_there(segment, timeout=10.0):
    """A Reader of segment, waiting for the writer to create it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return speculo.Reader(segment)
        except FileNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def text(chunk):
    return bytes(chunk.data).decode().rstrip("\n") if chunk else "-"


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    with open_when_there("board") as board, open_when_there("readings") as readings:
        # the config is among the first blocks the writer publishes
        config = next((c for c in board.follow(timeout=10) if c.name == "config"), None)
        for line in text(config).splitlines():
            print("config", line)
        seen = 0
        for chunk in readings.follow(timeout=10):
            seen += 1
            print(f"#{chunk.id}: {text(chunk)}")
            if seen % 5 == 0:
                print("status:", text(board.get("status")))
            if seen == count:
                break
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
