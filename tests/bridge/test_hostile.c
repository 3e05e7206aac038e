/*
 * Hostile and foreign messages on the stream's subjects: each is logged
 * and skipped, nothing of them is committed, both sides keep running, and
 * a restart reads past them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"
#include "tb.h"

#define V BR_H_VERSION, BR_VERSION

static void uid_of(const char *dir, const char *seg, char *out, size_t size)
{
    speculo_reader *r = NULL;
    ck_assert_int_eq(speculo_reader_open_at(dir, seg, 0, &r), 0);
    struct speculo_segment_ident id;
    ck_assert_int_eq(speculo_reader_ident(r, &id), 0);
    snprintf(out, size, "%016" PRIx64, id.uid);
    speculo_reader_close(r);
}

/* Every kind of garbage the mirror must refuse, published as `uid` (the
 * origin's) where a uid makes it look like ours. */
static int publish_garbage(struct tb_js *j, const char *uid)
{
    const char *p = "speculo.speculo-h.";
    char subj[128];
    int n = 0;
#define SUBJ(tail) (snprintf(subj, sizeof subj, "%s%s", p, tail), subj)
    /* not ours at all */
    tb_publish(j, SUBJ("c.junk"), "garbage", 7, NULL), n++;
    tb_publish(j, SUBJ("n.x"), "", 0, "Content-Type", "text/plain", NULL), n++;
    /* ours, but wrong */
    tb_publish(j, SUBJ("c.a"), "x", 1, BR_H_VERSION, "2", BR_H_KIND, "chunk", NULL), n++;
    tb_publish(j, SUBJ("c.b"), "x", 1, V, BR_H_KIND, "bogus", BR_H_UID, uid, NULL), n++;
    tb_publish(j, SUBJ("c.c"), "x", 1, V, BR_H_KIND, "chunk", BR_H_UID, "xyz", NULL), n++;
    tb_publish(j, SUBJ("c.d"), "x", 1, V, BR_H_KIND, "chunk", BR_H_UID, uid, BR_H_ID, "999999",
               BR_H_EXPIRES, "0", NULL),
        n++; /* no commit time */
    tb_publish(j, SUBJ("c.e"), "x", 1, V, BR_H_KIND, "chunk", BR_H_UID, uid, BR_H_ID, "999999",
               BR_H_COMMITTED, "1", BR_H_EXPIRES, "0", BR_H_NAME, "9bad", NULL),
        n++;
    tb_publish(j, SUBJ("c.f"), "not entries", 11, V, BR_H_KIND, "frame", BR_H_UID, uid,
               BR_H_EXPIRES, "0", BR_H_IDS, "999990-999991", NULL),
        n++;
    tb_publish(j, SUBJ("c.g"), "x", 1, V, BR_H_KIND, "frame", BR_H_UID, uid, BR_H_EXPIRES, "0",
               BR_H_IDS, "5-1", NULL),
        n++;
    tb_publish(j, SUBJ("p.h"), "x", 1, V, BR_H_KIND, "part", BR_H_UID, uid, BR_H_ID, "999999",
               BR_H_COMMITTED, "1", BR_H_EXPIRES, "0", BR_H_PART, "0/2", BR_H_SIZE, "1",
               BR_H_OFFSET, "1", NULL),
        n++; /* its bytes go past the chunk's end */
    tb_publish(j, SUBJ("e"), "", 0, V, BR_H_KIND, "epoch", BR_H_UID, "not-hex-at-all!!", NULL), n++;
    /* well formed, but of an origin that is not the one mirrored */
    tb_publish(j, SUBJ("c.0000000000000001.5"), "x", 1, V, BR_H_KIND, "chunk", BR_H_UID,
               "0000000000000001", BR_H_ID, "999999", BR_H_COMMITTED, "1", BR_H_EXPIRES, "0", NULL),
        n++;
    /* a chunk announced in parts claiming 32 TiB, whose parts never come:
     * nothing is reserved for it, nothing committed */
    tb_publish(j, SUBJ("p.i"), "x", 1, V, BR_H_KIND, "part", BR_H_UID, uid, BR_H_ID, "999998",
               BR_H_COMMITTED, "1", BR_H_EXPIRES, "0", BR_H_PART, "0/1000000", BR_H_SIZE,
               "35184372088832", BR_H_OFFSET, "0", NULL);
#undef SUBJ
    return n;
}

START_TEST(hostile_messages_are_logged_skipped_and_survived)
{
    struct t_nats s;
    tb_server_start(&s, "solo");
    struct tb_bridge out = {0}, in = {0};
    speculo_writer *w = tb_writer(tb_origin(), "h");
    for (int i = 0; i < 20; i++)
        tb_put_pattern(w, 50, i % 4 ? NULL : "cfg", 0);
    tb_bridge_start(&out, tb_origin(), "out", "h", s.url, NULL);
    tb_bridge_start(&in, tb_mirror(), "in", "h", s.url, NULL);
    tb_wait_same("h", TB_WAIT_MS);

    char uid[20];
    uid_of(tb_origin(), "h", uid, sizeof uid);
    struct tb_js j;
    tb_js_connect(&j, s.url);
    int n = publish_garbage(&j, uid);
    /* a few lines a minute at most (5): the first ones say why */
    tb_log_wait_count(&in, "ignored message", 5, TB_WAIT_MS);
    ck_assert_int_le(tb_log_count(&in, "ignored message"), n);
    ck_assert(tb_log_has(&in, "not a speculo bridge message"));
    ck_assert(tb_bridge_alive(&in) && tb_bridge_alive(&out));
    /* nothing of them committed; the mirror goes on */
    for (int i = 0; i < 20; i++)
        tb_put_pattern(w, 70, NULL, 0);
    tb_wait_same("h", TB_WAIT_MS);
    /* restarted, both read past them */
    ck_assert_int_eq(tb_bridge_stop(&out), 0);
    ck_assert_int_eq(tb_bridge_stop(&in), 0);
    tb_bridge_start(&out, tb_origin(), "out", "h", s.url, NULL);
    tb_bridge_start(&in, tb_mirror(), "in", "h", s.url, NULL);
    tb_log_wait(&out, "that are not speculo's", TB_WAIT_MS);
    tb_put_pattern(w, 80, "cfg", 0);
    tb_wait_same("h", TB_WAIT_MS);
    tb_log_wait(&in, "caught up", TB_WAIT_MS);
    ck_assert(tb_bridge_alive(&in) && tb_bridge_alive(&out));
    tb_js_close(&j);
    speculo_writer_close(w);
    ck_assert_int_eq(tb_bridge_stop(&out), 0);
    ck_assert_int_eq(tb_bridge_stop(&in), 0);
    tb_server_stop(&s);
}
END_TEST

START_TEST(another_origin_cannot_take_the_stream)
{
    struct t_nats s;
    tb_server_start(&s, "solo");
    speculo_writer *w = tb_writer(tb_origin(), "h");
    tb_put(w, "a", 1, NULL, 0, 0);
    struct tb_bridge out = {0};
    tb_bridge_start(&out, tb_origin(), "out", "h", s.url, NULL);
    tb_log_wait(&out, "caught up", TB_WAIT_MS);
    /* a segment of the same name elsewhere (another host or directory),
     * forwarded to the same stream: refused */
    speculo_writer *w2 = tb_writer(tb_mirror(), "h");
    tb_put(w2, "b", 1, NULL, 0, 0);
    char err[4096];
    ck_assert_int_eq(
        tb_run(tb_mirror(), err, sizeof err, "bridge", "out", "h", "--server", s.url, NULL), 1);
    ck_assert_msg(strstr(err, "is fed from") && strstr(err, "/origin/h"), "%s", err);
    ck_assert(tb_bridge_alive(&out));
    /* a marker of another origin appearing anyway: the forwarder stops */
    struct tb_js j;
    tb_js_connect(&j, s.url);
    tb_publish(&j, "speculo.speculo-h.e", "", 0, V, BR_H_KIND, "epoch", BR_H_UID,
               "0123456789abcdef", BR_H_ORIGIN, "elsewhere:/dev/shm/h", NULL);
    tb_js_close(&j);
    int64_t t0 = t_mono_ns();
    while (tb_bridge_alive(&out) && t_ms_since(t0) < TB_WAIT_MS)
        t_sleep_ms(20);
    ck_assert_int_eq(tb_bridge_stop(&out), 1);
    ck_assert(tb_log_has(&out, "another origin (elsewhere:/dev/shm/h"));
    speculo_writer_close(w);
    speculo_writer_close(w2);
    tb_server_stop(&s);
}
END_TEST

TCase *tb_case_hostile(void)
{
    TCase *tc = tcase_create("hostile");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, hostile_messages_are_logged_skipped_and_survived);
    tcase_add_test(tc, another_origin_cannot_take_the_stream);
    return tc;
}
