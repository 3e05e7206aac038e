"""Across processes and languages: a Python writer and C readers (a C
program and the CLI), a C writer and Python readers, several Python
reader processes following one writer."""

import subprocess
import zlib

import pytest

import speculo
from conftest import CLI, DEADLINE, cli, spawn_python

N = 200


def fnv1a(data):
    h = 1469598103934665603
    for b in bytes(data):
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def pattern(k, size):
    return bytes((k * 31 + i) & 0xFF for i in range(size))


def test_c_readers_follow_a_python_writer(seg, c_peer):
    speculo.Writer(seg).close()  # the readers open it before the first commit
    readers = [subprocess.Popen([str(c_peer), "read", seg, str(N)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    expected = []
    with speculo.Writer(seg) as w:
        for k in range(N):
            data = pattern(k, 1 + k % 300)
            name = "latest" if k % 10 == 9 else None
            if k % 2:  # half through alloc() and commit()
                w.alloc(len(data))[:] = data
                cid = w.commit(name=name)
            else:
                cid = w.put(data, name=name)
            expected.append(f"{cid} {name or '-'} {len(data)} {fnv1a(data)}")
    for p in readers:
        out, err = p.communicate(timeout=DEADLINE)
        assert p.returncode == 0, err
        # a named version may be obsoleted by the next one before a reader
        # gets to it: what it read is the sequence in order, less those
        at = [expected.index(line) for line in out.splitlines()]  # ValueError if not there
        assert at == sorted(set(at)) and at[-1] == N - 1
        assert all(k in at for k in range(N) if k % 10 != 9)  # unnamed ones are never skipped


def test_python_readers_follow_a_c_writer(seg, c_peer):
    speculo.Writer(seg).close()
    child = spawn_python("import speculo, sys\n"
                         "r = speculo.Reader(sys.argv[1])\n"
                         "for c in r.follow(timeout=60):\n"
                         "    print(c.id, c.name or '-', c.size, bytes(c.data).hex(), flush=True)\n"
                         "    if c.id == int(sys.argv[2]):\n"
                         "        break\n", seg, N)
    with speculo.Reader(seg) as r:
        writer = subprocess.run([str(c_peer), "write", seg, str(N), "100"], capture_output=True,
                                text=True, timeout=DEADLINE)
        assert writer.returncode == 0, writer.stderr
        ids = [int(x) for x in writer.stdout.split()]
        assert len(ids) == N and ids[-1] == N
        here = [(c.id, c.name, bytes(c.data)) for c in r]
        # every4 versions obsolete each other: only the last is live now
        live = [k for k in range(N) if k % 4 != 3 or k == N - 1]
        assert here == [(ids[k], "every4" if k % 4 == 3 else None, pattern(k, 100)) for k in live]
        last = r.get("every4")
        assert last.expires_ns - last.committed_ns == 60 * 10**9
    out, err = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, err
    followed = [line.split() for line in out.splitlines()]
    assert followed[-1][0] == str(N)
    for cid, name, size, data in followed:
        k = ids.index(int(cid))
        assert (name, int(size), bytes.fromhex(data)) == (
            "every4" if k % 4 == 3 else "-", 100, pattern(k, 100))


def test_cli_tail_follows_a_python_writer(seg):
    speculo.Writer(seg).close()
    tail = subprocess.Popen([str(CLI), "tail", "-f", seg], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        with speculo.Writer(seg) as w:
            for i in range(20):
                w.put(b"line %d\n" % i)
        want = b"".join(b"line %d\n" % i for i in range(20))
        got = b""
        while len(got) < len(want):
            more = tail.stdout.read1(4096)
            assert more, tail.stderr.read()
            got += more
        assert got == want
    finally:
        tail.terminate()
        tail.wait(DEADLINE)


def test_python_reads_what_the_cli_writes(seg):
    ids = [int(cli("put", seg, "n%d" % i, input=b"v%d" % i).stdout) for i in range(3)]
    cli("put", seg, "n0", input=b"v0 again")
    with speculo.Reader(seg) as r:
        assert [(c.name, bytes(c.data)) for c in r] == [("n1", b"v1"), ("n2", b"v2"),
                                                       ("n0", b"v0 again")]
        assert r.get_id(ids[0]) is None


@pytest.mark.parametrize("readers", [3])
def test_python_reader_processes_follow_a_python_writer(seg, readers):
    speculo.Writer(seg).close()
    code = ("import speculo, sys, zlib\n"
            "r = speculo.Reader(sys.argv[1])\n"
            "n = total = 0\n"
            "for c in r.follow(timeout=60):\n"
            "    assert c.id == n + 1, (c.id, n)\n"
            "    assert bytes(c.data) == b'%d' % c.id * 1000\n"
            "    n += 1\n"
            "    total += zlib.crc32(c.data)\n"
            "    if n == int(sys.argv[2]):\n"
            "        break\n"
            "print(n, total)\n")
    children = [spawn_python(code, seg, N) for _ in range(readers)]
    with speculo.Writer(seg, capacity=64 << 10) as w:  # small: collections on the way
        for i in range(1, N + 1):
            assert w.put(b"%d" % i * 1000) == i
    total = sum(zlib.crc32(b"%d" % i * 1000) for i in range(1, N + 1))
    for child in children:
        out, err = child.communicate(timeout=DEADLINE)
        assert child.returncode == 0, err
        assert out.split() == [str(N), str(total)]
