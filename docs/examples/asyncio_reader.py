#!/usr/bin/env python3
"""asyncio_reader.py: follow a segment from an asyncio program.

Reader.wait() blocks (with the GIL released), so an event loop runs it in
a thread: `await asyncio.to_thread(reader.wait, 1.0)`. The timeout bounds
how long a thread is taken, and how long the loop waits for it at
shutdown. Meanwhile the loop runs other tasks (here a heartbeat).

    PYTHONPATH=python python3 docs/examples/asyncio_reader.py SEGMENT [COUNT]
"""

import asyncio
import sys

import speculo


async def follow(reader):
    """The chunks of reader, as they are committed."""
    while True:
        for chunk in reader:  # what is there now, without blocking
            yield chunk
        await asyncio.to_thread(reader.wait, 1.0)


async def heartbeat(period):
    beats = 0
    while True:
        await asyncio.sleep(period)
        beats += 1


async def main(segment, count):
    beat = asyncio.create_task(heartbeat(0.1))
    with speculo.Reader(segment) as reader:
        n = 0
        async for chunk in follow(reader):
            print(chunk.id, bytes(chunk.data).decode(errors="replace").rstrip())
            n += 1
            if n == count:
                break
    beat.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
