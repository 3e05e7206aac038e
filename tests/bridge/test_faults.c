/*
 * Failures while chunks flow: out and in each SIGKILLed and restarted, the
 * server stopped and started again, the origin segment removed and
 * created again. A writer process commits all along; at the end the
 * mirror must hold exactly the origin's live chunks (no gap, no
 * duplicate), and the stream each chunk once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tb.h"

/* A chunk this big now and then: it travels in parts (default max_payload
 * 1 MiB), so kills land in the middle of one too. */
#define BIG ((size_t)3 << 20)

static void start_all(struct t_nats *s, struct tb_bridge *out, struct tb_bridge *in)
{
    tb_server_start(s, "solo");
    memset(out, 0, sizeof *out);
    memset(in, 0, sizeof *in);
    tb_bridge_start(out, tb_origin(), "out", "s", s->url, NULL);
    tb_bridge_start(in, tb_mirror(), "in", "s", s->url, NULL);
}

static void finish(struct t_nats *s, struct tb_bridge *out, struct tb_bridge *in)
{
    tb_wait_same("s", TB_WAIT_MS);
    struct tb_js j;
    tb_js_connect(&j, s->url);
    tb_stream_unique_ids(&j, "speculo-s");
    tb_js_close(&j);
    ck_assert_int_eq(tb_bridge_stop(out), 0);
    ck_assert_int_eq(tb_bridge_stop(in), 0);
    tb_server_stop(s);
}

/* Kill `b` (out or in) three times while the stream flows: first once the
 * mirror has 500 chunks, then each time after the restarted process has
 * resumed and the mirror has gained 300 more. */
static void kill_three_times(struct t_nats *s, struct tb_bridge *b, const char *dir,
                             const char *direction, const char *resumed, struct tb_wchild *wc)
{
    uint64_t want = 500;
    for (int round = 1; round <= 3; round++) {
        tb_wait_mirror_id("s", want, TB_WAIT_MS);
        tb_bridge_kill(b);
        tb_wchild_wait_count(wc, tb_wchild_count(wc) + 200, TB_WAIT_MS);
        tb_bridge_start(b, dir, direction, "s", s->url, NULL);
        int64_t t0 = t_mono_ns();
        while (tb_log_count(b, resumed) < round) {
            if (t_ms_since(t0) > TB_WAIT_MS) {
                tb_log_dump(b);
                ck_abort_msg("%s did not resume", direction);
            }
            t_sleep_ms(20);
        }
        uint64_t last = 0;
        tb_live(tb_mirror(), "s", &last);
        want = last + 300;
    }
}

START_TEST(out_killed_and_restarted_loses_nothing)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_all(&s, &out, &in);
    struct tb_wchild wc;
    tb_wchild_start(&wc, tb_origin(), "s", BIG);
    kill_three_times(&s, &out, tb_origin(), "out", "resuming epoch", &wc);
    tb_wchild_wait_count(&wc, tb_wchild_count(&wc) + 300, TB_WAIT_MS);
    tb_wchild_stop(&wc);
    finish(&s, &out, &in);
}
END_TEST

START_TEST(in_killed_and_restarted_loses_nothing)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_all(&s, &out, &in);
    struct tb_wchild wc;
    tb_wchild_start(&wc, tb_origin(), "s", BIG);
    kill_three_times(&s, &in, tb_mirror(), "in", "resuming after chunk", &wc);
    tb_wchild_wait_count(&wc, tb_wchild_count(&wc) + 300, TB_WAIT_MS);
    tb_wchild_stop(&wc);
    finish(&s, &out, &in);
}
END_TEST

START_TEST(server_restarted_mid_stream_loses_nothing)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_all(&s, &out, &in);
    struct tb_wchild wc;
    tb_wchild_start(&wc, tb_origin(), "s", BIG);
    tb_wait_mirror_id("s", 300, TB_WAIT_MS);
    tb_server_stop(&s);
    /* the writer goes on while the engine is down */
    uint64_t before = tb_wchild_count(&wc);
    tb_wchild_wait_count(&wc, before + 500, TB_WAIT_MS);
    tb_log_wait(&out, "cannot publish", TB_WAIT_MS);
    tb_server_restart(&s);
    tb_log_wait(&out, "publishing again", TB_WAIT_MS);
    tb_wchild_wait_count(&wc, tb_wchild_count(&wc) + 300, TB_WAIT_MS);
    tb_wchild_stop(&wc);
    finish(&s, &out, &in);
    ck_assert(tb_log_has(&in, "reconnected"));
}
END_TEST

START_TEST(origin_removed_and_created_again_is_followed)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_all(&s, &out, &in);
    speculo_writer *w = tb_writer(tb_origin(), "s");
    for (int i = 0; i < 50; i++)
        tb_put_pattern(w, 100, i % 10 ? NULL : "n", 0);
    tb_wait_same("s", TB_WAIT_MS);
    /* removed: removed on the mirror too */
    speculo_writer_close(w);
    ck_assert_int_eq(speculo_segment_remove_at(tb_origin(), "s", 0), 0);
    tb_log_wait(&in, "removed here too", TB_WAIT_MS);
    ck_assert_uint_eq(tb_live(tb_mirror(), "s", NULL), 0);
    tb_wait_same("s", TB_WAIT_MS);
    /* created again: a new epoch, ids from 1 */
    w = tb_writer(tb_origin(), "s");
    for (int i = 0; i < 20; i++)
        tb_put_pattern(w, 10, NULL, 0);
    tb_wait_same("s", TB_WAIT_MS);
    /* removed and created again at once, by a plain rm of the file */
    speculo_writer_close(w);
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/s", tb_origin());
    ck_assert_int_eq(unlink(path), 0);
    w = tb_writer(tb_origin(), "s");
    tb_put_pattern(w, 10, "only", 0);
    tb_wait_same("s", TB_WAIT_MS);
    ck_assert_uint_eq(tb_live(tb_mirror(), "s", NULL), 1);
    /* the old epochs' messages are deleted: the marker and `only` stay */
    struct tb_js j;
    tb_js_connect(&j, s.url);
    tb_wait_stream_msgs_at_most(&j, "speculo-s", 2, TB_WAIT_MS);
    tb_js_close(&j);
    speculo_writer_close(w);
    ck_assert_int_eq(tb_bridge_stop(&out), 0);
    ck_assert_int_eq(tb_bridge_stop(&in), 0);
    tb_server_stop(&s);
}
END_TEST

START_TEST(mirror_restarted_across_an_origin_recreation_follows_it)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_all(&s, &out, &in);
    speculo_writer *w = tb_writer(tb_origin(), "s");
    for (int i = 0; i < 30; i++)
        tb_put_pattern(w, 100, NULL, 0);
    tb_wait_same("s", TB_WAIT_MS);
    ck_assert_int_eq(tb_bridge_stop(&in), 0);
    speculo_writer_close(w);
    ck_assert_int_eq(speculo_segment_remove_at(tb_origin(), "s", 0), 0);
    w = tb_writer(tb_origin(), "s");
    for (int i = 0; i < 5; i++)
        tb_put_pattern(w, 100, NULL, 0);
    tb_log_wait(&out, "new epoch", TB_WAIT_MS);
    tb_bridge_start(&in, tb_mirror(), "in", "s", s.url, NULL);
    tb_wait_same("s", TB_WAIT_MS);
    speculo_writer_close(w);
    ck_assert_int_eq(tb_bridge_stop(&out), 0);
    ck_assert_int_eq(tb_bridge_stop(&in), 0);
    tb_server_stop(&s);
}
END_TEST

TCase *tb_case_faults(void)
{
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, out_killed_and_restarted_loses_nothing);
    tcase_add_test(tc, in_killed_and_restarted_loses_nothing);
    tcase_add_test(tc, server_restarted_mid_stream_loses_nothing);
    tcase_add_test(tc, origin_removed_and_created_again_is_followed);
    tcase_add_test(tc, mirror_restarted_across_an_origin_recreation_follows_it);
    return tc;
}
