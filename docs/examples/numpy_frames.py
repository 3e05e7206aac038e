#!/usr/bin/env python3
"""numpy_frames.py: numpy arrays through a segment, without a copy either way.

The writer reserves each frame in the segment (Writer.alloc), fills it
through a numpy array over that memory, and commits it; the reader makes
a numpy array over each chunk's bytes (numpy.frombuffer) and computes on
the shared memory in place.

    PYTHONPATH=python python3 docs/examples/numpy_frames.py write 100 &
    PYTHONPATH=python python3 docs/examples/numpy_frames.py read 100
"""

import sys

import numpy as np

import speculo

SHAPE = (480, 640)  # a grey camera frame, float32
DTYPE = np.float32


def write(count):
    nbytes = int(np.prod(SHAPE)) * np.dtype(DTYPE).itemsize
    with speculo.Writer("frames", capacity=8 * nbytes) as w:
        for n in range(count):
            frame = np.frombuffer(w.alloc(nbytes), dtype=DTYPE).reshape(SHAPE)
            frame[:] = n  # the pixels, written in place in the segment
            frame[0, :4] = (n, n + 1, n + 2, n + 3)
            del frame  # no view of the reservation may outlive the commit
            # each frame replaces the last: readers get the latest, old ones go
            w.commit(name="frame", ttl=60)


def read(count):
    """Follow the frames until the last one, frame count - 1; a reader that
    falls behind skips to the latest (older versions are replaced)."""
    with speculo.Reader("frames") as r:
        for chunk in r.follow(timeout=10):
            frame = np.frombuffer(chunk.data, dtype=DTYPE).reshape(SHAPE)  # no copy
            n = int(frame[0, 0])
            print(f"frame {n}: mean {frame.mean():.4f}, first {frame[0, :4].tolist()}")
            if n == count - 1:
                break


if __name__ == "__main__":
    mode, count = sys.argv[1], int(sys.argv[2])
    write(count) if mode == "write" else read(count)
