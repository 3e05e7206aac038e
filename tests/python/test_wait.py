"""Waiting: wait() and follow() block without polling and wake on commits,
time out, end when another thread closes the reader, step aside for a call
of another thread, and answer Ctrl-C (real processes sent SIGINT); the
asyncio recipe works."""

import asyncio
import os
import signal
import subprocess
import threading

import pytest

import speculo
from conftest import DEADLINE, sleeping_in_futex, spawn_python, wait_for


class Waiter(threading.Thread):
    """Runs fn(reader) in a thread; keeps its result or exception and its
    native thread id."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error, self.tid = fn, None, None, None

    def run(self):
        self.tid = threading.get_native_id()
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: reported to the test
            self.error = e

    def sleeping(self):
        return self.tid is not None and sleeping_in_futex(self.tid)

    def outcome(self):
        self.join(DEADLINE)
        assert not self.is_alive(), "the thread did not finish"
        if self.error:
            raise self.error
        return self.result


def test_wait_times_out_with_false(seg):
    with speculo.Writer(seg), speculo.Reader(seg) as r:
        assert r.wait(0) is False
        assert r.wait(0.02) is False


def test_wait_is_true_at_once_when_something_is_new(seg):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        w.put(b"x")
        assert r.wait() is True
        assert r.wait(0) is True  # next() has not returned it yet
        r.next()
        assert r.wait(0) is False


def test_wait_wakes_on_a_commit(seg):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        t = Waiter(lambda: r.wait(DEADLINE))
        t.start()
        wait_for(t.sleeping, "the waiter to sleep")
        w.put(b"wake up")
        assert t.outcome() is True
        assert bytes(r.next().data) == b"wake up"


def test_follow_yields_what_is_there_then_new_chunks(seg):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        w.put(b"0")
        w.put(b"1")

        def writer():
            for i in range(2, 50):
                w.put(b"%d" % i)

        got = []
        feeder = threading.Thread(target=writer)
        for chunk in r.follow(timeout=DEADLINE):
            got.append(bytes(chunk.data))
            if len(got) == 2:
                feeder.start()
            if len(got) == 50:
                break
        feeder.join()
        assert got == [b"%d" % i for i in range(50)]


def test_follow_stops_after_its_timeout(seg):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        w.put(b"only")
        assert [bytes(c.data) for c in r.follow(timeout=0.05)] == [b"only"]
        assert list(r.follow(timeout=0)) == []


def test_close_from_another_thread_ends_a_wait(seg):
    with speculo.Writer(seg):
        r = speculo.Reader(seg)
        t = Waiter(r.wait)
        t.start()
        wait_for(t.sleeping, "the waiter to sleep")
        r.close()
        assert t.outcome() is False
        assert r.closed


def test_close_from_another_thread_ends_follow(seg):
    with speculo.Writer(seg) as w:
        w.put(b"before")
        r = speculo.Reader(seg)
        t = Waiter(lambda: [bytes(c.data) for c in r.follow()])
        t.start()
        wait_for(t.sleeping, "follow to sleep")
        r.close()
        assert t.outcome() == [b"before"]


def test_a_call_of_another_thread_runs_during_a_wait(seg):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        first = w.put(b"first")
        assert r.next().id == first
        t = Waiter(lambda: r.wait(DEADLINE))
        t.start()
        wait_for(t.sleeping, "the waiter to sleep")
        # each call makes the wait step aside, and the wait goes on
        assert bytes(r.get_id(first).data) == b"first"
        assert r.info()["last_id"] == first
        wait_for(t.sleeping, "the waiter to sleep again")
        assert t.is_alive()
        w.put(b"second")
        assert t.outcome() is True
        assert bytes(r.next().data) == b"second"


def test_two_threads_cannot_wait_on_one_reader(seg):
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        t = Waiter(lambda: r.wait(DEADLINE))
        t.start()
        wait_for(t.sleeping, "the waiter to sleep")
        with pytest.raises(RuntimeError, match="one Reader per waiting thread"):
            r.wait(1)
        w.put(b"x")
        assert t.outcome() is True


def test_a_signal_handler_may_use_the_reader_its_thread_waits_on(seg):
    """The handler runs in the waiting (main) thread, between two sleeps."""
    seen = []
    with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
        def handler(signum, frame):
            seen.append((r.wait(0), r.info()["last_id"]))
            w.put(b"from the handler")

        old = signal.signal(signal.SIGUSR1, handler)
        try:
            main = threading.get_native_id()
            kicker = threading.Thread(target=lambda: (
                wait_for(lambda: sleeping_in_futex(main), "the main thread to sleep"),
                os.kill(os.getpid(), signal.SIGUSR1)))
            kicker.start()
            assert r.wait(DEADLINE) is True
            kicker.join(DEADLINE)
        finally:
            signal.signal(signal.SIGUSR1, old)
        assert seen == [(False, 0)]
        assert bytes(r.next().data) == b"from the handler"


def test_removed_segment_ends_follow_with_file_not_found(seg):
    with speculo.Writer(seg) as w:
        w.put(b"x")
    r = speculo.Reader(seg)
    t = Waiter(lambda: [c.id for c in r.follow(timeout=DEADLINE)])
    t.start()
    wait_for(t.sleeping, "follow to sleep")
    speculo.remove(seg)
    with pytest.raises(FileNotFoundError):
        t.outcome()
    r.close()


def test_asyncio_recipe(seg):
    async def consume(reader, n):
        got = []
        while len(got) < n:
            got.extend(bytes(c.data) for c in reader)
            if len(got) < n:
                await asyncio.to_thread(reader.wait, 1.0)
        return got

    async def main():
        with speculo.Writer(seg) as w, speculo.Reader(seg) as r:
            task = asyncio.create_task(consume(r, 20))
            for i in range(20):
                w.put(b"%d" % i)
                await asyncio.sleep(0)  # let the consumer run between commits
            return await asyncio.wait_for(task, DEADLINE)

    assert asyncio.run(main()) == [b"%d" % i for i in range(20)]


# ---- Ctrl-C: a real process, a real SIGINT ----------------------------------

WAITS = {
    "wait": "r.wait()",
    "wait-timeout": "r.wait(3600)",
    "follow": "for c in r.follow(): pass",
    # the signal lands on another thread: the main thread blocks it
    "wait-signal-elsewhere": "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])\n"
                             "    r.wait()",
}

# The child restores Python's own SIGINT handler: a process started in the
# background by a shell inherits SIGINT ignored, and Python leaves it so.
CHILD = """
import signal, sys, threading, speculo
signal.signal(signal.SIGINT, signal.default_int_handler)
w = speculo.Writer(sys.argv[1] + "w")  # a thread with SIGINT unblocked, sleeping
helper = threading.Thread(target=lambda: speculo.Reader(sys.argv[1] + "w").wait(), daemon=True)
helper.start()
speculo.Writer(sys.argv[1]).close()
r = speculo.Reader(sys.argv[1])
print("ready", flush=True)
try:
    {wait}
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(42)
print("wait returned", flush=True)
"""


@pytest.mark.parametrize("case", WAITS)
def test_ctrl_c_raises_keyboard_interrupt_in_a_wait(seg, case):
    child = spawn_python(CHILD.format(wait=WAITS[case]), seg)
    try:
        assert child.stdout.readline() == "ready\n"
        wait_for(lambda: sleeping_in_futex(child.pid), "the child to sleep in its wait")
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=DEADLINE)
    finally:
        child.kill()
        child.wait()
    assert (child.returncode, out) == (42, "interrupted\n"), err


def test_a_signal_handler_runs_during_a_wait_which_goes_on(seg):
    child = spawn_python("import signal, sys, speculo\n"
                         "signal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\n"
                         "r = speculo.Reader(sys.argv[1])\n"
                         "print('ready', flush=True)\n"
                         "print(r.wait(), flush=True)\n", seg,
                         stdin=subprocess.DEVNULL)
    with speculo.Writer(seg) as w:
        try:
            assert child.stdout.readline() == "ready\n"
            wait_for(lambda: sleeping_in_futex(child.pid), "the child to sleep")
            os.kill(child.pid, signal.SIGUSR1)
            assert child.stdout.readline() == "usr1\n"
            wait_for(lambda: sleeping_in_futex(child.pid), "the child to sleep again")
            w.put(b"x")
            out, err = child.communicate(timeout=DEADLINE)
        finally:
            child.kill()
            child.wait()
    assert (child.returncode, out) == (0, "True\n"), err

