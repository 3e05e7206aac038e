#!/usr/bin/env python3
"""bench_python.py [-q] [-p PARTS] — the Python module against Python's own IPC.

Run by scripts/bench (`make bench`), with the module built in the tree on
PYTHONPATH and $SPECULO_DIR set; prints the result lines of bench/bc.h
(T| targets, L| latency distributions, H|/I| tables, N| notes).

Parts (-p, comma-separated; all by default):
  rt      round trip of 64 B between two processes (CPU 0 and CPU 1):
          speculo busy-polling (next() in a loop) and blocking (wait()),
          multiprocessing.Pipe, multiprocessing.Queue, and
          multiprocessing.shared_memory with a Pipe to notify; rounds of
          each, the order rotating, ratios the median of per-round ratios
  numpy   numpy.frombuffer(chunk.data).sum() over 1 MiB chunks against the
          same sum over private numpy arrays
  rate    next() over 64 B chunks, iteration, get(), put(), alloc+commit
  sigint  Ctrl-C (SIGINT) to KeyboardInterrupt in a process blocked in
          wait(): the signal reaching the main thread, or another thread
"""

import argparse
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from multiprocessing import shared_memory

import speculo

try:
    import numpy as np
except ImportError:  # the numpy part is then skipped
    np = None

CTX = multiprocessing.get_context("fork")
PAYLOAD = bytes(range(64))
TAG = f"py{os.getpid()}"


def pin(cpu):
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        pass


def fmt_ns(ns):
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.2f} s"


def fmt_rate(v, unit):
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:.2f} {prefix}{unit}"
    return f"{v:.1f} {unit}"


def out(*fields):
    print("|".join(str(f) for f in fields), flush=True)


def target(tid, what, subject, baseline, ratio, higher_is_better, goal):
    met = ratio >= goal if higher_is_better else ratio <= goal
    out("T", tid, what, subject, baseline, f"{ratio:.3f}",
        f"{'>=' if higher_is_better else '<='} {goal:.2f}", "met" if met else "MISSED")


def report(tid, what, subject, baseline, ratio):
    out("T", tid, what, subject, baseline, f"{ratio:.3f}", "-", "report")


def latency_line(case, samples):
    s = sorted(samples)
    q = lambda f: s[min(len(s) - 1, int(f * len(s)))]  # noqa: E731
    out("L", case, len(s), f"{q(0.5):.0f}", f"{q(0.99):.0f}", f"{q(0.999):.0f}", f"{s[-1]:.0f}")


# ---- round trips ----------------------------------------------------------------

class Speculo:
    """Two segments, one each way; the echo side answers each chunk."""

    def __init__(self, blocking):
        self.blocking = blocking
        self.name = "speculo-wait" if blocking else "speculo-busy"

    def setup(self, k):
        self.ping, self.pong = f"{TAG}-{k}-ping", f"{TAG}-{k}-pong"
        self.w = speculo.Writer(self.ping)

    def child(self, ready):
        with speculo.Writer(self.pong) as w, speculo.Reader(self.ping) as r:
            ready.send(b"")
            while True:
                c = r.next()
                if c is None:
                    if self.blocking:
                        r.wait()
                    continue
                if c.size == 0:
                    return
                w.put(c.data)

    def connect(self):
        self.r = speculo.Reader(self.pong)

    def trip(self):
        self.w.put(PAYLOAD)
        r = self.r
        while (c := r.next()) is None:
            if self.blocking:
                r.wait()
        return c

    def stop(self):
        self.w.put(b"")
        self.w.close()
        self.r.close()
        speculo.remove(self.ping)
        speculo.remove(self.pong)


class Pipe:
    name = "mp-pipe"

    def setup(self, k):
        self.a, self.b = CTX.Pipe()

    def child(self, ready):
        ready.send(b"")
        while True:
            m = self.b.recv_bytes()
            if not m:
                return
            self.b.send_bytes(m)

    def connect(self):
        pass

    def trip(self):
        self.a.send_bytes(PAYLOAD)
        return self.a.recv_bytes()

    def stop(self):
        self.a.send_bytes(b"")
        self.a.close()
        self.b.close()


class Queue:
    name = "mp-queue"

    def setup(self, k):
        self.there, self.back = CTX.Queue(), CTX.Queue()

    def child(self, ready):
        ready.send(b"")
        while True:
            m = self.there.get()
            if not m:
                return
            self.back.put(m)

    def connect(self):
        pass

    def trip(self):
        self.there.put(PAYLOAD)
        return self.back.get()

    def stop(self):
        self.there.put(b"")
        for q in (self.there, self.back):
            q.close()
            q.join_thread()


class SharedMemoryPipe:
    """The bytes in a multiprocessing.shared_memory block, a Pipe to say
    they are there."""
    name = "shm+pipe"

    def setup(self, k):
        self.shm = shared_memory.SharedMemory(create=True, size=4096)
        self.a, self.b = CTX.Pipe()

    def child(self, ready):
        buf = self.shm.buf
        ready.send(b"")
        while self.b.recv_bytes() == b"1":
            m = bytes(buf[0:64])
            buf[64:128] = m
            self.b.send_bytes(b"1")
        buf.release()

    def connect(self):
        self.buf = self.shm.buf

    def trip(self):
        self.buf[0:64] = PAYLOAD
        self.a.send_bytes(b"1")
        self.a.recv_bytes()
        return bytes(self.buf[64:128])

    def stop(self):
        self.a.send_bytes(b"0")
        self.buf.release()
        self.shm.close()
        self.shm.unlink()


def run_block(method, k, trips, warmup):
    """Fork the echo side on CPU 1, time `trips` round trips on CPU 0."""
    method.setup(k)
    ready_r, ready_w = CTX.Pipe(duplex=False)

    def child():
        pin(1)
        method.child(ready_w)

    p = CTX.Process(target=child)
    p.start()
    ready_r.recv_bytes()
    method.connect()
    clock = time.perf_counter_ns
    for _ in range(warmup):
        method.trip()
    samples = []
    for _ in range(trips):
        t0 = clock()
        method.trip()
        samples.append(clock() - t0)
    method.stop()
    p.join(60)
    if p.exitcode != 0:
        raise RuntimeError(f"{method.name}: echo process exit {p.exitcode}")
    return samples


def part_rt(quick):
    pin(0)
    methods = [Speculo(False), Speculo(True), Pipe(), Queue(), SharedMemoryPipe()]
    rounds, trips, warmup = (3, 1000, 200) if quick else (7, 10000, 1000)
    medians = {m.name: [] for m in methods}
    pooled = {m.name: [] for m in methods}
    for k in range(rounds):
        order = methods[k % len(methods):] + methods[:k % len(methods)]
        for m in order:
            s = run_block(m, k, trips, warmup)
            medians[m.name].append(statistics.median(s))
            pooled[m.name].extend(s)
    for m in methods:
        latency_line(f"py-{m.name}", pooled[m.name])

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(medians[a], medians[b]))

    med = {n: statistics.median(v) for n, v in medians.items()}
    target("10a", "Python round trip 64 B, speculo busy-polling vs multiprocessing.Queue",
           fmt_ns(med["speculo-busy"]), fmt_ns(med["mp-queue"]),
           ratio("speculo-busy", "mp-queue"), False, 0.10)
    target("10b", "Python round trip 64 B, speculo blocking (wait) vs multiprocessing.Queue",
           fmt_ns(med["speculo-wait"]), fmt_ns(med["mp-queue"]),
           ratio("speculo-wait", "mp-queue"), False, 0.10)
    for tid, a, b, what in (
            ("10c", "speculo-busy", "mp-pipe", "speculo busy-polling vs multiprocessing.Pipe"),
            ("10d", "speculo-wait", "mp-pipe", "speculo blocking vs multiprocessing.Pipe"),
            ("10e", "speculo-wait", "shm+pipe",
             "speculo blocking vs shared_memory + Pipe to notify")):
        report(tid, f"Python round trip 64 B, {what}", fmt_ns(med[a]), fmt_ns(med[b]),
               ratio(a, b))
    out("N", f"Python round trips: {rounds} rounds of {trips} (after {warmup} unmeasured) "
        "per method, the order rotating; Python " + sys.version.split()[0])


# ---- numpy ----------------------------------------------------------------------

def part_numpy(quick):
    if np is None:
        out("T", "10f", "numpy sum of 1 MiB chunks in place vs a private array", "-", "-", "-",
            ">= 0.80", "skipped")
        out("N", "numpy part skipped: numpy is not installed (apt-get install python3-numpy)")
        return
    pin(0)
    n, values = 16, (1 << 20) // 8
    rng = np.random.default_rng(1)
    seg = f"{TAG}-numpy"
    w = speculo.Writer(seg, capacity=(n + 4) << 20)
    ids = [w.put(rng.random(values)) for _ in range(n)]
    r = speculo.Reader(seg)
    private = [rng.random(values) for _ in range(n)]
    rounds, iters = (3, 64) if quick else (9, 512)

    def in_place():
        total = 0.0
        for k in range(iters):
            total += np.frombuffer(r.get_id(ids[k % n]).data, dtype=np.float64).sum()
        return total

    def on_private():
        total = 0.0
        for k in range(iters):
            total += private[k % n].sum()
        return total

    def copied():
        total = 0.0
        for k in range(iters):
            total += np.frombuffer(bytes(r.get_id(ids[k % n]).data), dtype=np.float64).sum()
        return total

    times = {"in place": [], "private": [], "copied": []}
    for k in range(rounds):
        cases = [("in place", in_place), ("private", on_private), ("copied", copied)]
        for name, fn in cases[k % 3:] + cases[:k % 3]:
            t0 = time.perf_counter_ns()
            fn()
            times[name].append(time.perf_counter_ns() - t0)
    gbs = {k: iters * (1 << 20) / statistics.median(v) for k, v in times.items()}  # GB/s
    ratio = statistics.median(p / s for s, p in zip(times["in place"], times["private"]))
    target("10f", "numpy frombuffer(chunk.data).sum() over 1 MiB chunks vs the same on a "
           "private array", f"{gbs['in place']:.2f} GB/s", f"{gbs['private']:.2f} GB/s",
           ratio, True, 0.80)
    out("H", "python-numpy", "case", "bytes summed/s")
    out("I", "python-numpy", "np.frombuffer(chunk.data).sum() (in place)",
        f"{gbs['in place']:.2f} GB/s")
    out("I", "python-numpy", "the same on a private numpy array", f"{gbs['private']:.2f} GB/s")
    out("I", "python-numpy", "np.frombuffer(bytes(chunk.data)).sum() (a copy first)",
        f"{gbs['copied']:.2f} GB/s")
    r.close()
    w.close()
    speculo.remove(seg)


# ---- rates ----------------------------------------------------------------------

def best_rate(fn, count, rounds):
    """The best of `rounds` runs of fn() (which does `count` operations)."""
    best = None
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        dt = time.perf_counter_ns() - t0
        best = dt if best is None else min(best, dt)
    return count * 1e9 / best


def part_rate(quick):
    pin(0)
    count = 20000 if quick else 200000
    rounds = 3 if quick else 7
    seg = f"{TAG}-rate"
    w = speculo.Writer(seg, capacity=64 << 20)
    for i in range(count):
        w.put(PAYLOAD)
    r = speculo.Reader(seg)

    def nexts():
        r.seek(0)
        nxt = r.next
        while nxt() is not None:
            pass

    def iterate():
        r.seek(0)
        for _ in r:
            pass

    def with_data():
        r.seek(0)
        for c in r:
            c.data[0]

    rates = {
        "next()": best_rate(nexts, count, rounds),
        "for chunk in reader": best_rate(iterate, count, rounds),
        "for chunk in reader, chunk.data[0]": best_rate(with_data, count, rounds),
    }
    names = [f"n{i}" for i in range(1000)]
    for name in names:
        w.put(PAYLOAD, name=name)

    def gets():
        get = r.get
        for name in names * (count // 1000):
            get(name)

    rates["get(name), 1000 names"] = best_rate(gets, count, rounds)
    r.close()
    w.close()
    speculo.remove(seg)

    def puts():
        with speculo.Writer(seg, capacity=64 << 20) as pw:
            put = pw.put
            for _ in range(count):
                put(PAYLOAD)
        speculo.remove(seg)

    def allocs():
        with speculo.Writer(seg, capacity=64 << 20) as aw:
            for _ in range(count):
                aw.alloc(64)[:] = PAYLOAD
                aw.commit()
        speculo.remove(seg)

    rates["put(64 B)"] = best_rate(puts, count, rounds)
    rates["alloc(64)[:] = data; commit()"] = best_rate(allocs, count, rounds)
    target("10g", "Python next() over 64 B chunks, per second, vs the 2 M/s target",
           fmt_rate(rates["next()"], "/s"), "2 M/s", rates["next()"] / 2e6, True, 1.00)
    out("H", "python-rate", "operation (64 B chunks)", "per second")
    for what, v in rates.items():
        out("I", "python-rate", what, fmt_rate(v, "/s"))


# ---- Ctrl-C ---------------------------------------------------------------------

SIGINT_CHILD = """
import signal, sys, threading, time, speculo
signal.signal(signal.SIGINT, signal.default_int_handler)
seg = sys.argv[1]
if sys.argv[2] == "elsewhere":  # a thread takes the signal; the main thread blocks it
    w = speculo.Writer(seg + "w")
    threading.Thread(target=speculo.Reader(seg + "w").wait, daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])
r = speculo.Reader(seg)
print("ready", flush=True)
try:
    r.wait()
except KeyboardInterrupt:
    print(time.monotonic_ns(), flush=True)
"""


def in_futex(pid):
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return "futex" in f.read()
    except OSError:
        return False


def sigint_latency(where, k):
    seg = f"{TAG}-int{k}"
    speculo.Writer(seg).close()
    child = subprocess.Popen([sys.executable, "-c", SIGINT_CHILD, seg, where],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        deadline = time.monotonic() + 30
        while not in_futex(child.pid):
            if time.monotonic() > deadline:
                raise RuntimeError("the child did not sleep in its wait")
            time.sleep(0.001)
        time.sleep(0.01)  # well inside the sleep, whatever slice it is in
        t0 = time.monotonic_ns()
        os.kill(child.pid, signal.SIGINT)
        t1 = int(child.stdout.readline())
        child.wait(30)
        return t1 - t0
    finally:
        child.kill()
        child.wait()
        for s in (seg, seg + "w"):
            try:
                speculo.remove(s, force=True)
            except FileNotFoundError:
                pass


def part_sigint(quick):
    trials = 5 if quick else 20
    main = [sigint_latency("main", k) for k in range(trials)]
    elsewhere = [sigint_latency("elsewhere", trials + k) for k in range(trials)]
    worst = max(main + elsewhere)
    target("10h", "Ctrl-C to KeyboardInterrupt in wait(), worst case vs 100 ms",
           fmt_ns(worst), "100 ms", worst / 100e6, False, 1.00)
    out("H", "python-sigint", "SIGINT reaches", "trials", "median", "max")
    out("I", "python-sigint", "the waiting main thread (the usual case)", trials,
        fmt_ns(statistics.median(main)), fmt_ns(max(main)))
    out("I", "python-sigint", "another thread (the main thread blocks SIGINT)", trials,
        fmt_ns(statistics.median(elsewhere)), fmt_ns(max(elsewhere)))


PARTS = {"rt": part_rt, "numpy": part_numpy, "rate": part_rate, "sigint": part_sigint}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-q", action="store_true", help="quick: fewer rounds and samples")
    ap.add_argument("-o", help="ignored (the C programs' histogram directory)")
    ap.add_argument("-p", default=",".join(PARTS), help="parts to run, comma-separated")
    args = ap.parse_args()
    for part in args.p.split(","):
        PARTS[part](args.q)
    return 0


if __name__ == "__main__":
    sys.exit(main())
