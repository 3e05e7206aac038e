"""Memory does not grow over a million next() calls (each making a Chunk,
a view of its data and its name, and dropping them), while the writer
collects the segment on the way: no reference on a mapping, no Chunk, no
name is left behind, and only the current files stay mapped."""

import os

from conftest import DEADLINE, run_python

CHILD = r"""
import os, sys, speculo

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def mapped_segment_files():
    d = speculo.segment_dir()
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if d in line)

seg = sys.argv[1]
w = speculo.Writer(seg)
for i in range(1000):
    w.put(b"%064d" % i, name="n%d" % (i % 50) if i % 10 == 0 else None)
r = speculo.Reader(seg)
calls = 0

def rounds(k):
    global calls
    for n in range(k):
        r.seek(0)
        while True:
            calls += 1
            c = r.next()
            if c is None:
                break
            c.data[0], c.name
        if n % 100 == 99:
            w.gc()  # the reader moves to the new file at its next call

rounds(50)
before = rss()
rounds(1100)
after = rss()
print(calls, before, after, mapped_segment_files())
"""


def test_a_million_next_calls_do_not_grow_memory(seg):
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:  # freed memory must not sit in a quarantine
        env["ASAN_OPTIONS"] += ":quarantine_size_mb=0"
    r = run_python(CHILD, seg, timeout=4 * DEADLINE, env=env)
    assert r.returncode == 0, r.stderr
    calls, before, after, mapped = map(int, r.stdout.split())
    assert calls > 1_000_000
    assert after - before < 4 << 20, f"RSS grew by {(after - before) >> 10} KiB"
    # the writer's file, the reader's file and its waiting header at most
    assert mapped <= 3
