"""Hostile segment files give OSError, never a crash: a child Python reads
hundreds of corrupted copies of a real segment (truncated, bytes flipped,
header fields overwritten, garbage) through every Reader call; it must end
normally, having seen only OSError. Plus the files that are no segment at
all: another format version, a directory, a symbolic link."""

import errno
import os
import struct

import pytest

import speculo
from conftest import DEADLINE, run_python

FUZZ = r"""
import collections, errno, os, random, sys, speculo

def make_original():
    with speculo.Writer("orig", capacity=64 << 10) as w:
        for i in range(40):
            w.put(b"x" * (i * 13 % 200), name="n%d" % (i % 5) if i % 3 else None,
                  ttl=3600 if i % 4 == 0 else None)
        w.gc()
        for i in range(10):
            w.put(b"after gc %d" % i)
    with open(os.path.join(speculo.segment_dir(), "orig"), "rb") as f:
        return f.read()

def variants(orig):
    n = len(orig)
    for size in (0, 1, 8, 63, 64, 255, 4095, 4096, 4097, n // 2, n - 64, n - 1):
        yield orig[:size]
    for off in range(0, 512, 8):
        yield orig[:off] + b"\xff" * 8 + orig[off + 8:]
        yield orig[:off] + b"\0" * 8 + orig[off + 8:]
    for seed in range(int(sys.argv[1])):
        rnd = random.Random(seed)
        data = bytearray(orig)
        limit = n if seed % 2 else min(n, 1 << 16)
        for _ in range(rnd.randint(1, 16)):
            data[rnd.randrange(limit)] = rnd.randrange(256)
        yield bytes(data)
    for seed in range(20):
        rnd = random.Random(1000 + seed)
        yield orig[:64] + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 1 << 14)))

def exercise(r):
    for c in r:
        bytes(c.data), c.name, c.id, c.replaces
    for name in ("n0", "n1", "n4", "nothing"):
        c = r.get(name)
        if c is not None:
            bytes(c.data)
    for i in (0, 1, 2, 17, 45, 2**63):
        c = r.get_id(i)
        if c is not None:
            bytes(c.data)
    r.info()
    r.wait(0)
    r.seek(3)
    r.next()

orig = make_original()
path = os.path.join(speculo.segment_dir(), "h")
seen = collections.Counter()
for data in variants(orig):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.chmod(path + ".tmp", 0o600)
    os.rename(path + ".tmp", path)
    try:
        with speculo.Reader("h") as r:
            exercise(r)
        seen["ok"] += 1
    except OSError as e:
        seen[errno.errorcode.get(e.errno, str(e.errno))] += 1
print(" ".join("%s=%d" % kv for kv in sorted(seen.items())))
"""


def test_corrupted_segments_give_os_errors_never_a_crash():
    r = run_python(FUZZ, 300, timeout=4 * DEADLINE)
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stderr[-3000:]}"
    seen = dict(kv.split("=") for kv in r.stdout.split())
    assert int(seen.pop("ok", 0)) > 0  # some corruptions miss what is read
    assert int(seen.pop("EBADMSG", 0)) > 0
    assert set(seen) <= {"EPROTO", "EPERM", "ENOENT"}, seen


def write_segment_file(segment_dir, seg, data):
    path = segment_dir / seg
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_another_format_version_is_eproto(segment_dir, seg):
    with speculo.Writer(seg) as w:
        w.put(b"x")
    path = segment_dir / seg
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 8, speculo.FORMAT_VERSION + 1)
    write_segment_file(segment_dir, seg, bytes(data))
    with pytest.raises(OSError) as e:
        speculo.Reader(seg)
    assert e.value.errno == errno.EPROTO


def test_a_file_that_is_no_segment_is_ebadmsg(segment_dir, seg):
    write_segment_file(segment_dir, seg, b"#!/bin/sh\necho not a segment\n" * 500)
    with pytest.raises(OSError) as e:
        speculo.Reader(seg)
    assert e.value.errno == errno.EBADMSG
    with pytest.raises(OSError) as e:
        speculo.Writer(seg)
    assert e.value.errno == errno.EBADMSG


def test_a_symbolic_link_is_refused(segment_dir, seg, tmp_path):
    with speculo.Writer("real") as w:
        w.put(b"x")
    os.symlink(segment_dir / "real", segment_dir / seg)
    with pytest.raises(PermissionError):
        speculo.Reader(seg)


def test_a_directory_is_not_a_segment(segment_dir, seg):
    (segment_dir / seg).mkdir()
    with pytest.raises(OSError):
        speculo.Reader(seg)
    assert seg not in speculo.segments()
