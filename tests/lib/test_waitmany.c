/*
 * speculo_wait(): several readers at once, and wakeups from another thread
 * or a signal handler.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "th.h"

/* A helper process that commits to @seg once told to (a byte on @go). */
struct committer {
    struct th_child c;
    struct t_sync go;
};

static void committer_start(struct committer *k, const char *seg)
{
    ck_assert_int_eq(t_sync_init(&k->go), 0);
    if (th_fork(&k->c)) {
        speculo_writer *w = th_child_writer(seg, NULL);
        th_child_ready(&k->c);
        int b = t_sync_wait(&k->go, 30000);
        T_CHILD_EQ(b, 'c');
        T_CHILD_EQ(speculo_writer_put(w, "new", 3, NULL, NULL), 0);
        speculo_writer_close(w);
        _exit(0);
    }
    th_await_ready(&k->c);
}

START_TEST(wait_many_returns_the_readers_with_news)
{
    speculo_writer *wa = th_writer("a", 0);
    speculo_writer *wb = th_writer("b", 0);
    th_puts(wa, "1", NULL);
    struct speculo_wait_item items[2] = {{.reader = th_reader("a")}, {.reader = th_reader("b")}};
    ck_assert_int_eq(speculo_wait(items, 2, NULL, -1), 1);
    ck_assert_int_eq(items[0].ready, 1);
    ck_assert_int_eq(items[1].ready, 0);
    th_puts(wb, "2", NULL);
    ck_assert_int_eq(speculo_wait(items, 2, NULL, 0), 2);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(items[0].reader, &c), 0);
    ck_assert_int_eq(speculo_reader_next(items[1].reader, &c), 0);
    ck_assert_int_eq(speculo_wait(items, 2, NULL, 10), -ETIMEDOUT);
    ck_assert_int_eq(items[0].ready + items[1].ready, 0);
    speculo_writer_close(wa);
    speculo_writer_close(wb);
    speculo_reader_close(items[0].reader);
    speculo_reader_close(items[1].reader);
}
END_TEST

/* Blocked on two segments, woken by a commit to the second from another
 * process. */
START_TEST(wait_many_sleeps_until_a_commit)
{
    speculo_writer *wa = th_writer("a", 0);
    speculo_writer_close(wa);
    struct committer k;
    committer_start(&k, "b");
    struct speculo_wait_item items[2] = {{.reader = th_reader("a")}, {.reader = th_reader("b")}};
    ck_assert_int_eq(t_sync_post(&k.go, 'c'), 0);
    ck_assert_int_eq(speculo_wait(items, 2, NULL, 30000), 1);
    ck_assert_int_eq(items[1].ready, 1);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(items[1].reader, &c), 0);
    th_chunk_is(&c, "new", 3);
    ck_assert_int_eq(t_wait(k.c.pid, 10000), 0);
    speculo_reader_close(items[0].reader);
    speculo_reader_close(items[1].reader);
}
END_TEST

START_TEST(wait_many_watch_sees_obsoletion)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t id = th_puts(w, "x", NULL);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    struct speculo_wait_item commits = {.reader = r},
                             watch = {.reader = r, .events = SPECULO_WAIT_WATCH};
    ck_assert_int_eq(speculo_writer_obsolete(w, id), 0);
    ck_assert_int_eq(speculo_wait(&commits, 1, NULL, 0), -ETIMEDOUT);
    ck_assert_int_eq(speculo_wait(&watch, 1, NULL, 0), 1);
    struct speculo_watch ev;
    ck_assert_int_eq(speculo_reader_watch(r, 0, &ev), 0);
    ck_assert_uint_eq(ev.obsoleted, 1);
    ck_assert_int_eq(speculo_wait(&watch, 1, NULL, 0), -ETIMEDOUT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* Signal a wakeup once a reader of segment "s" waits (T_PATIENCE_MS at
 * most), so that the signal finds the wait asleep. */
static void *signal_when_waiting(void *wk)
{
    struct t_seg_map m;
    if (t_seg_map("s", &m) == 0) {
        (void)t_seg_await_waiters(&m, 1, T_PATIENCE_MS);
        t_seg_unmap(&m);
    }
    speculo_wakeup_signal(wk);
    return NULL;
}

static void *signal_now(void *wk)
{
    speculo_wakeup_signal(wk);
    return NULL;
}

START_TEST(wakeup_from_another_thread_ends_wait)
{
    speculo_writer *w = th_writer("s", 0);
    struct speculo_wait_item item = {.reader = th_reader("s")};
    speculo_wakeup *wk;
    ck_assert_int_eq(speculo_wakeup_create(&wk), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, signal_when_waiting, wk), 0);
    ck_assert_int_eq(speculo_wait(&item, 1, wk, -1), -ECANCELED);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    /* it stays signalled until cleared */
    ck_assert_int_eq(speculo_wait(&item, 1, wk, -1), -ECANCELED);
    ck_assert_int_eq(speculo_wakeup_clear(wk), 1);
    ck_assert_int_eq(speculo_wakeup_clear(wk), 0);
    ck_assert_int_eq(speculo_wait(&item, 1, wk, 0), -ETIMEDOUT);
    /* the wakeup alone */
    ck_assert_int_eq(pthread_create(&t, NULL, signal_now, wk), 0);
    ck_assert_int_eq(speculo_wait(NULL, 0, wk, -1), -ECANCELED);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    speculo_wakeup_destroy(wk);
    speculo_reader_close(item.reader);
    speculo_writer_close(w);
}
END_TEST

static speculo_wakeup *alarm_wakeup;

static void on_alarm(int sig)
{
    (void)sig;
    speculo_wakeup_signal(alarm_wakeup);
}

/* From a signal handler (SA_RESTART: the signal alone does not end the
 * wait, the wakeup does). */
START_TEST(wakeup_from_signal_handler_ends_wait)
{
    speculo_writer *w = th_writer("s", 0);
    struct speculo_wait_item item = {.reader = th_reader("s")};
    ck_assert_int_eq(speculo_wakeup_create(&alarm_wakeup), 0);
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
    ck_assert_int_eq(speculo_wait(&item, 1, alarm_wakeup, 0), -ETIMEDOUT);
    alarm(1);
    int rc;
    do
        rc = speculo_wait(&item, 1, alarm_wakeup, -1);
    while (rc == -EINTR);
    ck_assert_int_eq(rc, -ECANCELED);
    speculo_wakeup_destroy(alarm_wakeup);
    speculo_reader_close(item.reader);
    speculo_writer_close(w);
}
END_TEST

START_TEST(wait_many_rejects_bad_arguments)
{
    speculo_writer *w = th_writer("s", 0);
    struct speculo_wait_item items[SPECULO_WAIT_MAX + 1];
    for (size_t i = 0; i <= SPECULO_WAIT_MAX; i++)
        items[i] = (struct speculo_wait_item){.reader = th_reader("s")};
    ck_assert_int_eq(speculo_wait(items, SPECULO_WAIT_MAX + 1, NULL, 0), -EINVAL);
    ck_assert_int_eq(speculo_wait(items, SPECULO_WAIT_MAX, NULL, 0), -ETIMEDOUT);
    th_puts(w, "x", NULL);
    ck_assert_int_eq(speculo_wait(items, SPECULO_WAIT_MAX, NULL, 0), SPECULO_WAIT_MAX);
    ck_assert_int_eq(speculo_wait(NULL, 1, NULL, 0), -EINVAL);
    ck_assert_int_eq(speculo_wait(NULL, 0, NULL, 0), -EINVAL);
    items[0].events = 4;
    ck_assert_int_eq(speculo_wait(items, 1, NULL, 0), -EINVAL);
    struct speculo_wait_item none = {0};
    ck_assert_int_eq(speculo_wait(&none, 1, NULL, 0), -EINVAL);
    ck_assert_int_eq(speculo_wakeup_create(NULL), -EINVAL);
    ck_assert_int_eq(speculo_wakeup_clear(NULL), -EINVAL);
    speculo_wakeup_signal(NULL);
    speculo_wakeup_destroy(NULL);
    for (size_t i = 0; i <= SPECULO_WAIT_MAX; i++)
        speculo_reader_close(items[i].reader);
    speculo_writer_close(w);
}
END_TEST

Suite *wait_many_suite(void)
{
    Suite *s = suite_create("wait_many");
    TCase *tc = th_tcase("wait_many", 30);
    tcase_add_test(tc, wait_many_returns_the_readers_with_news);
    tcase_add_test(tc, wait_many_sleeps_until_a_commit);
    tcase_add_test(tc, wait_many_watch_sees_obsoletion);
    tcase_add_test(tc, wakeup_from_another_thread_ends_wait);
    tcase_add_test(tc, wakeup_from_signal_handler_ends_wait);
    tcase_add_test(tc, wait_many_rejects_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}
