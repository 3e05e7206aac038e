/*
 * watch: speculo_reader_watch() reports obsoletions (explicit, by a named
 * update, by `replaces`), moves to another file (GC switch, removal, a
 * segment created again) and commits, each once; an explicit obsoletion
 * wakes a blocked watcher. speculo_reader_ident() tells a segment created
 * again from a collected one.
 */
#include <pthread.h>

#include "th.h"

Suite *watch_suite(void);

#define MS INT64_C(1000000)

/* Report what watch(0) sees now: 0 and *ev, or -ETIMEDOUT. */
static int watch_now(speculo_reader *r, struct speculo_watch *ev)
{
    memset(ev, 0xa5, sizeof *ev);
    return speculo_reader_watch(r, 0, ev);
}

START_TEST(watch_reports_each_obsoletion_once)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    struct speculo_watch ev;
    uint64_t a = th_puts(w, "a", NULL), b = th_puts(w, "b", NULL);

    /* commits alone: news, but nothing obsoleted */
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_uint_eq(ev.obsoleted, 0);
    ck_assert_int_eq(ev.moved, 0);
    th_nexts(r, a, "a");
    th_nexts(r, b, "b");
    ck_assert_int_eq(watch_now(r, &ev), -ETIMEDOUT);

    ck_assert_int_eq(speculo_writer_obsolete(w, a), 0);
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_uint_eq(ev.obsoleted, 1);
    ck_assert_int_eq(ev.moved, 0);
    ck_assert_int_eq(watch_now(r, &ev), -ETIMEDOUT); /* consumed */

    /* `replaces` and a named update: one each, and a commit to read */
    uint64_t c = th_put(w, "c", 1, NULL, 0, b);
    uint64_t v1 = th_puts(w, "v1", "doc");
    uint64_t v2 = th_puts(w, "v2", "doc");
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_uint_eq(ev.obsoleted, 2);
    ck_assert_int_eq(ev.moved, 0);
    th_nexts(r, c, "c");
    th_nexts(r, v2, "v2"); /* v1 was obsoleted: skipped */
    ck_assert_uint_lt(v1, v2);
    ck_assert_int_eq(watch_now(r, &ev), -ETIMEDOUT);

    /* wait() is not about obsoletions */
    ck_assert_int_eq(speculo_writer_obsolete(w, c), 0);
    ck_assert_int_eq(speculo_reader_wait(r, 0), -ETIMEDOUT);
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_uint_eq(ev.obsoleted, 1);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(watch_expiry_is_not_news)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    struct speculo_watch ev;
    uint64_t id = th_put(w, "x", 1, NULL, 20 * MS, 0);
    int64_t gone = t_expired_by(20 * MS);

    th_nexts(r, id, "x");
    t_sleep_until_real(gone);
    ck_assert_int_eq(watch_now(r, &ev), -ETIMEDOUT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

struct blocked {
    speculo_reader *r;
    struct speculo_watch ev;
    int rc;
};

static void *watch_thread(void *arg)
{
    struct blocked *b = arg;

    b->rc = speculo_reader_watch(b->r, T_PATIENCE_MS, &b->ev);
    return NULL;
}

/* A watcher asleep on the futex is woken by speculo_writer_obsolete(),
 * which commits nothing. */
START_TEST(watch_woken_by_obsolete)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t id = th_puts(w, "a", NULL);
    struct blocked b = {.r = th_reader("s")};
    struct t_seg_map m;
    pthread_t t;

    th_nexts(b.r, id, "a");
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, watch_thread, &b), 0);
    /* registered: from now on an obsoletion wakes it */
    ck_assert_int_eq(t_seg_await_waiters(&m, 1, T_PATIENCE_MS), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, id), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_uint_eq(b.ev.obsoleted, 1);
    t_seg_unmap(&m);
    speculo_reader_close(b.r);
    speculo_writer_close(w);
}
END_TEST

/* A collection switches the reader to the next file: no move, and the
 * obsoletions made on either side of the switch are all counted. */
START_TEST(watch_counts_across_gc_switch)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_ident before, after;
    struct speculo_watch ev;
    uint64_t a = th_puts(w, "a", NULL), b = th_puts(w, "b", NULL);
    uint64_t c = th_puts(w, "c", NULL);

    th_nexts(r, a, "a");
    th_nexts(r, b, "b");
    th_nexts(r, c, "c");
    ck_assert_int_eq(speculo_reader_ident(r, &before), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, a), 0); /* in the old file */
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, b), 0); /* in the new one */
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_uint_eq(ev.obsoleted, 2);
    ck_assert_int_eq(ev.moved, 0);
    ck_assert_int_eq(watch_now(r, &ev), -ETIMEDOUT);
    ck_assert_int_eq(speculo_reader_ident(r, &after), 0);
    ck_assert_uint_eq(after.uid, before.uid);
    ck_assert_int_eq(after.created_ns, before.created_ns);
    ck_assert_uint_eq(after.generation, before.generation + 1);
    ck_assert_int_eq(speculo_writer_obsolete(w, c), 0);
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_uint_eq(ev.obsoleted, 1);
    ck_assert_int_eq(ev.moved, 0);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* Two collections before the reader looks: the file in between, and
 * what was obsoleted in it, were never seen: a move. */
START_TEST(watch_reports_skipped_generation)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_ident id;
    struct speculo_watch ev;
    uint64_t a = th_puts(w, "a", NULL), b = th_puts(w, "b", NULL);

    th_nexts(r, a, "a");
    th_nexts(r, b, "b");
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, a), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_int_eq(ev.moved, 1);
    ck_assert_int_eq(watch_now(r, &ev), -ETIMEDOUT);
    ck_assert_int_eq(speculo_reader_ident(r, &id), 0);
    ck_assert_uint_eq(id.generation, 3);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* Removed, then created again: two moves, and another identity. */
START_TEST(watch_reports_removal_and_recreation)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_ident first, second;
    struct speculo_watch ev;

    th_puts(w, "a", NULL);
    speculo_writer_close(w);
    ck_assert_int_eq(speculo_reader_ident(r, &first), 0);
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_int_eq(ev.moved, 1);
    w = th_writer("s", 0);
    th_puts(w, "b", NULL);
    ck_assert_int_eq(watch_now(r, &ev), 0);
    ck_assert_int_eq(ev.moved, 1);
    ck_assert_int_eq(speculo_reader_ident(r, &second), 0);
    ck_assert_uint_ne(second.uid, first.uid);
    ck_assert_uint_eq(second.generation, 1);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(watch_and_ident_refuse_null)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    struct speculo_watch ev;
    struct speculo_segment_ident id;

    ck_assert_int_eq(speculo_reader_watch(NULL, 0, &ev), -EINVAL);
    ck_assert_int_eq(speculo_reader_watch(r, 0, NULL), -EINVAL);
    ck_assert_int_eq(speculo_reader_ident(NULL, &id), -EINVAL);
    ck_assert_int_eq(speculo_reader_ident(r, NULL), -EINVAL);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

Suite *watch_suite(void)
{
    Suite *s = suite_create("watch");
    TCase *tc = th_tcase("watch", 30);

    tcase_add_test(tc, watch_reports_each_obsoletion_once);
    tcase_add_test(tc, watch_expiry_is_not_news);
    tcase_add_test(tc, watch_woken_by_obsolete);
    tcase_add_test(tc, watch_counts_across_gc_switch);
    tcase_add_test(tc, watch_reports_skipped_generation);
    tcase_add_test(tc, watch_reports_removal_and_recreation);
    tcase_add_test(tc, watch_and_ident_refuse_null);
    suite_add_tcase(s, tc);
    return s;
}
