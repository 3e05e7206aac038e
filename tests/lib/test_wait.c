/*
 * wait: returns at once when something is pending, times out, is woken by
 * a commit, a GC switch or a removal from another process, does not spin,
 * is interrupted by signals, and works for a reader without write access.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "th.h"

#define OTHER_UID 65534

/* A segment "s" holding one chunk, and a reader that has read it. */
static speculo_reader *drained_reader(void)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t id = th_puts(w, "first", NULL);
    speculo_writer_close(w);
    speculo_reader *r = th_reader("s");
    th_nexts(r, id, "first");
    th_next_none(r);
    return r;
}

/* Something pending: wait returns 0 without blocking. wait(0) may not
 * block at all; and as nothing else happens meanwhile, a wait(5000) that
 * blocked would time out, a wait(-1) would never return (the case's
 * timeout would fail it). */
START_TEST(wait_returns_at_once_when_pending)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    uint64_t a = th_puts(w, "a", NULL);
    ck_assert_int_eq(speculo_reader_wait(r, 0), 0);
    ck_assert_int_eq(speculo_reader_wait(r, 5000), 0);
    ck_assert_int_eq(speculo_reader_wait(r, -1), 0);
    th_nexts(r, a, "a");
    /* Again after catching up. */
    uint64_t b = th_puts(w, "b", NULL);
    ck_assert_int_eq(speculo_reader_wait(r, 0), 0);
    ck_assert_int_eq(speculo_reader_wait(r, 5000), 0);
    th_nexts(r, b, "b");
    /* Nothing pending: wait(0) says so. */
    ck_assert_int_eq(speculo_reader_wait(r, 0), -ETIMEDOUT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* Nothing new: -ETIMEDOUT once the timeout has passed, not before (how
 * much later depends on the machine, and is not asserted). */
START_TEST(wait_times_out)
{
    speculo_reader *r = drained_reader();
    int64_t t0 = t_mono_ns();
    ck_assert_int_eq(speculo_reader_wait(r, 200), -ETIMEDOUT);
    int64_t ms = t_ms_since(t0);
    ck_assert_msg(ms >= 195, "wait(200) timed out after %lld ms", (long long)ms);
    /* Expired chunks are not "something new". */
    speculo_writer *w = th_writer("s", 0);
    th_put(w, "x", 1, NULL, 1000000, 0);
    int64_t gone = t_expired_by(1000000);
    speculo_writer_close(w);
    t_sleep_until_real(gone);
    th_next_none(r);
    t0 = t_mono_ns();
    ck_assert_int_eq(speculo_reader_wait(r, 100), -ETIMEDOUT);
    ms = t_ms_since(t0);
    ck_assert_msg(ms >= 95, "wait(100) timed out after %lld ms", (long long)ms);
    speculo_reader_close(r);
}
END_TEST

/* Blocking is sleeping: CPU time is what a spinning wait would burn, and
 * unlike wall time it does not grow on a loaded machine. */
START_TEST(wait_does_not_spin)
{
    speculo_reader *r = drained_reader();
    int64_t cpu = t_cpu_ns();
    ck_assert_int_eq(speculo_reader_wait(r, 400), -ETIMEDOUT);
    int64_t used = (t_cpu_ns() - cpu) / 1000000;
    ck_assert_msg(used < 40, "wait(400) used %lld ms of CPU", (long long)used);
    speculo_reader_close(r);
}
END_TEST

/* Child: open the writer (unless it is to remove the segment), say 'r',
 * wait until the test's reader has registered in wait() (from then on an
 * action wakes it), note the time, then do `what`; then stay until the
 * test has seen its wait return, so that closing the writer is not what
 * woke it. */
enum action { DO_PUT, DO_GC, DO_REMOVE };

static void child_act(struct th_child *self, struct t_sync *done, enum action what,
                      int64_t *when)
{
    speculo_writer *w = what != DO_REMOVE ? th_child_writer("s", NULL) : NULL;
    struct t_seg_map m;
    T_CHILD_EQ(t_seg_map("s", &m), 0);
    th_child_ready(self);
    T_CHILD_EQ(t_seg_await_waiters(&m, 1, T_PATIENCE_MS), 0);
    t_seg_unmap(&m);
    *when = t_mono_ns();
    switch (what) {
    case DO_PUT: {
        struct speculo_commit_options o = {.name = "news"};
        T_CHILD_EQ(speculo_writer_put(w, "from child", 10, &o, NULL), 0);
        break;
    }
    case DO_GC:
        T_CHILD_EQ(speculo_writer_gc(w), 0);
        break;
    case DO_REMOVE:
        T_CHILD_EQ(speculo_segment_remove("s", 0), 0);
        break;
    }
    (void)t_sync_wait(done, T_PATIENCE_MS);
    speculo_writer_close(w);
    _exit(0);
}

/* The reader, blocked in wait(timeout_ms), is woken by a child's action,
 * and not before it. */
static void woken_by(speculo_reader *r, enum action what, int timeout_ms)
{
    int64_t *when = t_shared_alloc(sizeof(int64_t));
    ck_assert_ptr_nonnull(when);
    struct t_sync done;
    ck_assert_int_eq(t_sync_init(&done), 0);
    struct th_child actor;
    if (th_fork(&actor))
        child_act(&actor, &done, what, when);
    th_await_ready(&actor);
    int rc = speculo_reader_wait(r, timeout_ms);
    int64_t woke = t_mono_ns();
    ck_assert_int_eq(t_sync_post(&done, 'd'), 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(*when != 0 && woke >= *when, "wait returned 0 before the child acted");
    ck_assert_int_eq(t_wait(actor.pid, T_PATIENCE_MS), 0);
    t_shared_free(when, sizeof(int64_t));
    t_sync_close(&actor.ready);
    t_sync_close(&done);
}

START_TEST(wait_woken_by_commit_from_other_process)
{
    speculo_reader *r = drained_reader();
    woken_by(r, DO_PUT, T_PATIENCE_MS);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_str_eq(c.name, "news");
    th_chunk_is(&c, "from child", 10);
    th_next_none(r);
    speculo_reader_close(r);
}
END_TEST

START_TEST(wait_forever_woken_by_commit)
{
    speculo_reader *r = drained_reader();
    woken_by(r, DO_PUT, -1);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "news", &c), 0);
    speculo_reader_close(r);
}
END_TEST

START_TEST(wait_woken_by_gc_switch)
{
    speculo_reader *r = drained_reader();
    woken_by(r, DO_GC, T_PATIENCE_MS);
    th_next_none(r);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.generation, 2);
    speculo_reader_close(r);
}
END_TEST

START_TEST(wait_woken_by_remove)
{
    speculo_reader *r = drained_reader();
    woken_by(r, DO_REMOVE, T_PATIENCE_MS);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), -ENOENT);
    speculo_reader_close(r);
}
END_TEST

/* Child reader: wait and read `rounds` chunks, each exactly once; say 'a'
 * after each. */
static void child_wake_rounds(struct th_child *self, struct t_sync *ack, int rounds, uid_t uid)
{
    if (uid && t_become(uid, 0) < 0)
        _exit(T_CHILD_FAILED);
    speculo_reader *r = th_child_reader("s");
    speculo_chunk c;
    while (speculo_reader_next(r, &c) == 0)
        ;
    /* Nothing pending: a short wait times out. */
    int64_t t0 = t_mono_ns();
    T_CHILD_EQ(speculo_reader_wait(r, 100), -ETIMEDOUT);
    T_CHILD_ASSERT(t_ms_since(t0) >= 95);
    th_child_ready(self);
    for (int i = 0; i < rounds; i++) {
        T_CHILD_EQ(speculo_reader_wait(r, T_PATIENCE_MS), 0);
        T_CHILD_EQ(speculo_reader_next(r, &c), 0);
        char want[32];
        snprintf(want, sizeof(want), "round %d", i);
        T_CHILD_EQ(c.size, strlen(want));
        T_CHILD_ASSERT(memcmp(c.data, want, c.size) == 0);
        T_CHILD_EQ(speculo_reader_next(r, &c), -EAGAIN);
        T_CHILD_EQ(t_sync_post(ack, 'a'), 0);
    }
    speculo_reader_close(r);
    _exit(0);
}

/* Commit `rounds` chunks, each once a child (as uid, 0 = unchanged) is
 * asleep in wait(): each wakes it, and it reads that one chunk. How soon
 * it wakes is measured by `make bench` (1b, and 1h for a reader without
 * write access). */
static void woken_by_each_commit(speculo_writer *w, uid_t uid)
{
    enum { ROUNDS = 12 };
    struct t_sync ack;
    ck_assert_int_eq(t_sync_init(&ack), 0);
    struct th_child reader;
    if (th_fork(&reader))
        child_wake_rounds(&reader, &ack, ROUNDS, uid);
    th_await_ready(&reader);
    for (int i = 0; i < ROUNDS; i++) {
        char v[32];
        snprintf(v, sizeof(v), "round %d", i);
        /* after its 'a' (or 'r'), the child sleeps only in wait() */
        ck_assert_int_eq(t_await_asleep(reader.pid, T_PATIENCE_MS), 0);
        th_puts(w, v, NULL);
        ck_assert_int_eq(t_sync_wait(&ack, T_PATIENCE_MS), 'a');
    }
    ck_assert_int_eq(t_wait(reader.pid, T_PATIENCE_MS), 0);
    t_sync_close(&reader.ready);
    t_sync_close(&ack);
}

START_TEST(wait_woken_by_each_commit)
{
    speculo_writer *w = th_writer("s", 0);
    woken_by_each_commit(w, 0);
    speculo_writer_close(w);
}
END_TEST

static void read_only_wait(mode_t file_mode)
{
    speculo_writer *w = th_writer_at(__FILE__, __LINE__, "s", 0, 0640);
    th_puts(w, "before", NULL);
    char path[256];
    ck_assert_int_eq(t_path(path, sizeof(path), "s"), 0);
    ck_assert_int_eq(chmod(path, file_mode), 0);
    ck_assert_int_eq(chmod(t_dir(), 0750), 0);
    woken_by_each_commit(w, OTHER_UID);
    speculo_writer_close(w);
}

START_TEST(wait_read_only_reader_0640)
{
    read_only_wait(0640);
}
END_TEST

START_TEST(wait_read_only_reader_0440)
{
    read_only_wait(0440);
}
END_TEST

START_TEST(wait_read_only_reader_does_not_spin)
{
    speculo_writer *w = th_writer_at(__FILE__, __LINE__, "s", 0, 0640);
    th_puts(w, "x", NULL);
    ck_assert_int_eq(chmod(t_dir(), 0750), 0);
    struct th_child reader;
    if (th_fork(&reader)) {
        T_CHILD_EQ(t_become(OTHER_UID, 0), 0);
        speculo_reader *r = th_child_reader("s");
        speculo_chunk c;
        T_CHILD_EQ(speculo_reader_next(r, &c), 0);
        int64_t cpu = t_cpu_ns(), t0 = t_mono_ns();
        T_CHILD_EQ(speculo_reader_wait(r, 500), -ETIMEDOUT);
        T_CHILD_ASSERT(t_ms_since(t0) >= 495);
        /* Sleeping in slices of a millisecond costs little CPU; spinning
         * costs it all. */
        int64_t used = (t_cpu_ns() - cpu) / 1000000;
        if (used >= 150)
            fprintf(stderr, "read-only wait(500) used %lld ms of CPU\n", (long long)used);
        T_CHILD_ASSERT(used < 150);
        speculo_reader_close(r);
        _exit(0);
    }
    ck_assert_int_eq(t_wait(reader.pid, T_PATIENCE_MS), 0);
    speculo_writer_close(w);
}
END_TEST

START_TEST(wait_waiters_counted_while_blocked)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "x", NULL);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    const struct seg_header *h = t_seg_hdr(&m);
    ck_assert_uint_eq(atomic_load(&h->waiters), 0);
    struct th_child reader;
    if (th_fork(&reader)) {
        speculo_reader *r = th_child_reader("s");
        speculo_chunk c;
        T_CHILD_EQ(speculo_reader_next(r, &c), 0);
        T_CHILD_EQ(speculo_reader_wait(r, -1), 0);
        T_CHILD_EQ(speculo_reader_next(r, &c), 0);
        T_CHILD_EQ(c.size, 4);
        speculo_reader_close(r);
        _exit(0);
    }
    ck_assert_int_eq(t_seg_await_waiters(&m, 1, T_PATIENCE_MS), 0);
    uint32_t seq = atomic_load(&h->wake_seq);
    th_puts(w, "wake", NULL);
    ck_assert_int_eq(t_wait(reader.pid, T_PATIENCE_MS), 0);
    ck_assert_uint_eq(atomic_load(&h->waiters), 0);
    ck_assert_uint_ne(atomic_load(&h->wake_seq), seq);
    t_seg_unmap(&m);
    speculo_writer_close(w);
}
END_TEST

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* A signal that arrives while wait() sleeps ends it with -EINTR. It is sent
 * by a child once the test process is registered in wait() and asleep, and
 * again every 100 ms until the wait returned: one that landed in the
 * instant between the registration and the sleep would be lost (as it
 * would for any call that blocks). */
START_TEST(wait_interrupted_by_signal)
{
    speculo_reader *r = drained_reader();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART */
    ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
    struct t_sync done;
    ck_assert_int_eq(t_sync_init(&done), 0);
    pid_t waiter = getpid(), sender = t_fork();
    ck_assert_int_ge(sender, 0);
    if (sender == 0) {
        struct t_seg_map m;
        T_CHILD_EQ(t_seg_map("s", &m), 0);
        T_CHILD_EQ(t_seg_await_waiters(&m, 1, T_PATIENCE_MS), 0);
        T_CHILD_EQ(t_await_asleep(waiter, T_PATIENCE_MS), 0);
        do
            T_CHILD_EQ(kill(waiter, SIGALRM), 0);
        while (t_sync_wait(&done, 100) == -ETIMEDOUT);
        _exit(0);
    }
    int rc = speculo_reader_wait(r, -1);
    ck_assert_int_eq(t_sync_post(&done, 'd'), 0);
    ck_assert_int_eq(rc, -EINTR);
    ck_assert_int_ge(alarms, 1);
    ck_assert_int_eq(t_wait(sender, T_PATIENCE_MS), 0);
    t_sync_close(&done);
    speculo_reader_close(r);
}
END_TEST

START_TEST(wait_after_switch_then_blocks)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", NULL);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    /* The switch is news: no need to block. */
    ck_assert_int_eq(speculo_reader_wait(r, 0), 0);
    th_next_none(r);
    /* Once seen, it is not news any more. */
    int64_t t0 = t_mono_ns();
    ck_assert_int_eq(speculo_reader_wait(r, 150), -ETIMEDOUT);
    ck_assert_int_ge(t_ms_since(t0), 145);
    uint64_t b = th_puts(w, "b", NULL);
    ck_assert_int_eq(speculo_reader_wait(r, T_PATIENCE_MS), 0);
    th_nexts(r, b, "b");
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* A reader without write access (it sleeps in slices, unregistered) is
 * woken by a switch, then by a commit in the new file. */
START_TEST(wait_read_only_reader_woken_by_gc)
{
    speculo_writer *w = th_writer_at(__FILE__, __LINE__, "s", 64 << 10, 0640);
    th_puts(w, "x", NULL);
    ck_assert_int_eq(chmod(t_dir(), 0750), 0);
    struct t_sync switched;
    ck_assert_int_eq(t_sync_init(&switched), 0);
    struct th_child reader;
    if (th_fork(&reader)) {
        T_CHILD_EQ(t_become(OTHER_UID, 0), 0);
        speculo_reader *r = th_child_reader("s");
        speculo_chunk c;
        T_CHILD_EQ(speculo_reader_next(r, &c), 0);
        th_child_ready(&reader);
        T_CHILD_EQ(speculo_reader_wait(r, T_PATIENCE_MS), 0);
        T_CHILD_EQ(speculo_reader_next(r, &c), -EAGAIN);
        struct speculo_segment_info info;
        T_CHILD_EQ(speculo_reader_info(r, &info), 0);
        T_CHILD_EQ(info.generation, 2);
        T_CHILD_EQ(t_sync_post(&switched, 's'), 0);
        /* And then a commit in the new file. */
        T_CHILD_EQ(speculo_reader_wait(r, T_PATIENCE_MS), 0);
        T_CHILD_EQ(speculo_reader_next(r, &c), 0);
        T_CHILD_ASSERT(c.size == 5 && memcmp(c.data, "after", 5) == 0);
        speculo_reader_close(r);
        _exit(0);
    }
    th_await_ready(&reader);
    ck_assert_int_eq(t_await_asleep(reader.pid, T_PATIENCE_MS), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(t_sync_wait(&switched, T_PATIENCE_MS), 's');
    th_puts(w, "after", NULL);
    ck_assert_int_eq(t_wait(reader.pid, T_PATIENCE_MS), 0);
    t_sync_close(&switched);
    speculo_writer_close(w);
}
END_TEST

Suite *wait_suite(void)
{
    Suite *s = suite_create("wait");
    TCase *tc = th_tcase("wait", 20);
    tcase_add_test(tc, wait_returns_at_once_when_pending);
    tcase_add_test(tc, wait_times_out);
    tcase_add_test(tc, wait_does_not_spin);
    tcase_add_test(tc, wait_woken_by_commit_from_other_process);
    tcase_add_test(tc, wait_forever_woken_by_commit);
    tcase_add_test(tc, wait_woken_by_gc_switch);
    tcase_add_test(tc, wait_woken_by_remove);
    tcase_add_test(tc, wait_woken_by_each_commit);
    tcase_add_test(tc, wait_waiters_counted_while_blocked);
    tcase_add_test(tc, wait_interrupted_by_signal);
    tcase_add_test(tc, wait_after_switch_then_blocks);
    suite_add_tcase(s, tc);

    if (th_root()) {
        tc = th_tcase("read_only", 20);
        tcase_add_test(tc, wait_read_only_reader_0640);
        tcase_add_test(tc, wait_read_only_reader_0440);
        tcase_add_test(tc, wait_read_only_reader_does_not_spin);
        tcase_add_test(tc, wait_read_only_reader_woken_by_gc);
        suite_add_tcase(s, tc);
    }
    return s;
}
