"""The thread-safety statement: a Reader per thread works independently;
one Reader or Writer shared by threads has its calls serialized (each
chunk goes to exactly one caller of next(), every put() lands); a thread
may look things up on a Reader another thread follows."""

import threading

import speculo
from conftest import DEADLINE

N = 2000


def run_threads(targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()


def test_a_reader_per_thread(seg):
    speculo.Writer(seg).close()
    results = {}

    def follower(k):
        def run():
            with speculo.Reader(seg) as r:
                got = []
                for c in r.follow(timeout=DEADLINE):
                    got.append((c.id, bytes(c.data)))
                    if c.id == N:
                        break
                results[k] = got
        return run

    def writer():
        with speculo.Writer(seg) as w:
            for i in range(1, N + 1):
                w.put(b"%d" % i)

    run_threads([follower(k) for k in range(4)] + [writer])
    assert sorted(results) == [0, 1, 2, 3]
    for got in results.values():
        assert got == [(i, b"%d" % i) for i in range(1, N + 1)]


def test_one_reader_shared_gives_each_chunk_once(seg):
    with speculo.Writer(seg) as w:
        for i in range(N):
            w.put(b"%d" % i)
    r = speculo.Reader(seg)
    taken = [[] for _ in range(4)]

    def taker(k):
        def run():
            while (c := r.next()) is not None:
                taken[k].append(c.id)
        return run

    run_threads([taker(k) for k in range(4)])
    everything = sorted(i for t in taken for i in t)
    assert everything == list(range(1, N + 1))
    for t in taken:
        assert t == sorted(t)
    r.close()


def test_one_writer_shared_by_threads(seg):
    w = speculo.Writer(seg)
    ids = [[] for _ in range(4)]

    def putter(k):
        def run():
            for i in range(N // 4):
                ids[k].append(w.put(b"%d:%d" % (k, i), name="t%d" % k if i % 2 else None))
        return run

    run_threads([putter(k) for k in range(4)])
    w.close()
    assert sorted(i for t in ids for i in t) == list(range(1, N + 1))
    with speculo.Reader(seg) as r:
        for k in range(4):
            assert bytes(r.get("t%d" % k).data) == b"%d:%d" % (k, N // 4 - 1)


def test_lookups_while_another_thread_follows_the_same_reader(seg):
    w = speculo.Writer(seg)
    w.put(b"fixed", name="fixed")
    r = speculo.Reader(seg)
    followed = []

    def follow():
        for c in r.follow(timeout=DEADLINE):
            followed.append(c.id)
            if c.id == N:
                break

    def look():
        for _ in range(200):
            assert bytes(r.get("fixed").data) == b"fixed"
            assert r.info()["segment"] == seg

    def write():
        for i in range(2, N + 1):
            w.put(b"%d" % i)

    run_threads([follow, look, write])
    assert followed == list(range(1, N + 1))
    r.close()
    w.close()
