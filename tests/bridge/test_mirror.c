/*
 * The mapping, end to end through one nats-server: what the mirror holds
 * is what the origin holds (ids, names, bytes, commit times, expiry), in
 * commit order, chunks of any size; names keep their latest version;
 * expiry and obsoletion reach the mirror; the stream keeps only what is
 * live.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb.h"

#define HOUR_NS 3600000000000LL

static void start_pair(struct t_nats *s, struct tb_bridge *out, struct tb_bridge *in,
                       const char *seg)
{
    tb_server_start(s, "solo");
    memset(out, 0, sizeof *out);
    memset(in, 0, sizeof *in);
    tb_bridge_start(out, tb_origin(), "out", seg, s->url, NULL);
    tb_bridge_start(in, tb_mirror(), "in", seg, s->url, NULL);
}

static void stop_pair(struct tb_bridge *out, struct tb_bridge *in)
{
    int ro = tb_bridge_stop(out), ri = tb_bridge_stop(in);
    if (ro != 0)
        tb_log_dump(out);
    if (ri != 0)
        tb_log_dump(in);
    ck_assert_int_eq(ro, 0);
    ck_assert_int_eq(ri, 0);
    ck_assert(tb_log_has(out, "stopped"));
    ck_assert(tb_log_has(in, "stopped"));
}

START_TEST(existing_then_live_chunks_reach_the_mirror)
{
    speculo_writer *w = tb_writer(tb_origin(), "s");
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "n%d", i % 7);
        tb_put_pattern(w, (size_t)(i * 37) % 5000, i % 5 == 0 ? name : NULL,
                       i % 3 == 0 ? HOUR_NS : 0);
    }
    struct t_nats s;
    struct tb_bridge out, in;
    start_pair(&s, &out, &in, "s");
    tb_wait_same("s", TB_WAIT_MS);
    tb_log_wait(&out, "caught up", TB_WAIT_MS);
    tb_log_wait(&in, "caught up", TB_WAIT_MS);
    /* then live ones, with replaces and names interleaved */
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "n%d", i % 11);
        uint64_t id = tb_put_pattern(w, (size_t)(i * 91) % 3000, i % 4 == 0 ? name : NULL, 0);
        if (i % 10 == 9)
            tb_put(w, "r", 1, NULL, 0, id);
    }
    tb_wait_same("s", TB_WAIT_MS);
    speculo_writer_close(w);
    stop_pair(&out, &in);
    tb_server_stop(&s);
}
END_TEST

START_TEST(names_keep_their_latest_version_in_the_stream_too)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_pair(&s, &out, &in, "names");
    speculo_writer *w = tb_writer(tb_origin(), "names");
    char name[16], data[32];
    for (int round = 0; round < 60; round++)
        for (int k = 0; k < 5; k++) {
            snprintf(name, sizeof name, "key.%d", k);
            int n = snprintf(data, sizeof data, "v%d-%d", k, round);
            tb_put(w, data, (size_t)n, name, 0, 0);
        }
    tb_wait_same("names", TB_WAIT_MS);
    ck_assert_uint_eq(tb_live(tb_mirror(), "names", NULL), 5);
    /* the epoch marker and one message a name */
    struct tb_js j;
    tb_js_connect(&j, s.url);
    tb_wait_stream_msgs_at_most(&j, "speculo-names", 6, TB_WAIT_MS);
    tb_js_close(&j);
    speculo_writer_close(w);
    stop_pair(&out, &in);
    tb_server_stop(&s);
}
END_TEST

START_TEST(expiry_is_kept_and_honoured)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_pair(&s, &out, &in, "ttl");
    speculo_writer *w = tb_writer(tb_origin(), "ttl");
    const int64_t ttl = 3000000000LL;
    for (int i = 0; i < 200; i++)
        tb_put_pattern(w, 64, NULL, ttl);
    tb_put_pattern(w, 100, "t.a", ttl);
    tb_put_pattern(w, 100, "t.b", ttl);
    tb_put_pattern(w, 100, "keep.a", 0);
    uint64_t last = tb_put_pattern(w, 100, "keep.b", 0);
    /* equal: the same expiry instants (or both past them already) */
    tb_wait_same("ttl", TB_WAIT_MS);
    tb_wait_mirror_id("ttl", last, TB_WAIT_MS);
    /* once expired, gone on the mirror, and their messages from the stream:
     * left are the marker and the two names that never expire */
    struct tb_js j;
    tb_js_connect(&j, s.url);
    tb_wait_stream_msgs_at_most(&j, "speculo-ttl", 3, TB_WAIT_MS);
    tb_js_close(&j);
    ck_assert_uint_eq(tb_live(tb_mirror(), "ttl", NULL), 2);
    tb_wait_same("ttl", TB_WAIT_MS);
    speculo_writer_close(w);
    stop_pair(&out, &in);
    tb_server_stop(&s);
}
END_TEST

START_TEST(chunks_of_any_size_arrive_whole)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_pair(&s, &out, &in, "big");
    speculo_writer *w = tb_writer(tb_origin(), "big");
    const size_t room = (1u << 20) - 4096; /* a message's payload at the default max_payload */
    const size_t sizes[] = {0,        1,    16383,    16384,    16385,
                            room - 1, room, room + 1, 1u << 20, 3 * (1u << 20) + 5,
                            16u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        tb_put_pattern(w, sizes[i], NULL, 0);
    tb_put_pattern(w, 16u << 20, "big.named", 0);
    tb_put_pattern(w, 5u << 20, "big.named", 0); /* replaces it */
    tb_put_pattern(w, 7, NULL, 0);
    tb_wait_same("big", TB_WAIT_MS);
    speculo_writer_close(w);
    stop_pair(&out, &in);
    tb_server_stop(&s);
}
END_TEST

START_TEST(obsoletion_reaches_the_mirror_and_the_stream)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_pair(&s, &out, &in, "obs");
    speculo_writer *w = tb_writer(tb_origin(), "obs");
    uint64_t a = tb_put(w, "a", 1, NULL, 0, 0);
    uint64_t b = tb_put(w, "b", 1, NULL, 0, 0);
    uint64_t c = tb_put(w, "c", 1, NULL, 0, 0);
    tb_wait_mirror_id("obs", c, TB_WAIT_MS);
    tb_put(w, "d", 1, NULL, 0, b);                      /* replaces b */
    ck_assert_int_eq(speculo_writer_obsolete(w, c), 0); /* explicitly */
    tb_wait_same("obs", TB_WAIT_MS);
    ck_assert_uint_eq(tb_live(tb_mirror(), "obs", NULL), 2);
    /* while out is stopped: an obsoletion, then a collection that drops
     * the record; out learns of it when it comes back */
    ck_assert_int_eq(tb_bridge_stop(&out), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, a), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    tb_bridge_start(&out, tb_origin(), "out", "obs", s.url, NULL);
    tb_wait_same("obs", TB_WAIT_MS);
    ck_assert_uint_eq(tb_live(tb_mirror(), "obs", NULL), 1);
    /* everything dead is deleted from the stream: the marker, d, and the
     * notices as long as a message holding what they name is there */
    struct tb_js j;
    tb_js_connect(&j, s.url);
    tb_wait_stream_msgs_at_most(&j, "speculo-obs", 2, TB_WAIT_MS);
    tb_js_close(&j);
    speculo_writer_close(w);
    stop_pair(&out, &in);
    tb_server_stop(&s);
}
END_TEST

START_TEST(in_started_first_waits_for_the_stream)
{
    struct t_nats s;
    tb_server_start(&s, "solo");
    struct tb_bridge out = {0}, in = {0};
    tb_bridge_start(&in, tb_mirror(), "in", "late", s.url, NULL);
    tb_log_wait(&in, "waiting for stream speculo-late", TB_WAIT_MS);
    speculo_writer *w = tb_writer(tb_origin(), "late");
    tb_put(w, "x", 1, "first", 0, 0);
    tb_bridge_start(&out, tb_origin(), "out", "late", s.url, NULL);
    tb_wait_same("late", TB_WAIT_MS);
    tb_put(w, "y", 1, "first", 0, 0);
    tb_wait_same("late", TB_WAIT_MS);
    speculo_writer_close(w);
    stop_pair(&out, &in);
    tb_server_stop(&s);
}
END_TEST

START_TEST(out_started_first_waits_for_the_segment)
{
    struct t_nats s;
    struct tb_bridge out, in;
    start_pair(&s, &out, &in, "later");
    tb_log_wait(&out, "waiting for the segment to be created", TB_WAIT_MS);
    speculo_writer *w = tb_writer(tb_origin(), "later");
    tb_put(w, "x", 1, NULL, 0, 0);
    tb_wait_same("later", TB_WAIT_MS);
    speculo_writer_close(w);
    stop_pair(&out, &in);
    tb_server_stop(&s);
}
END_TEST

TCase *tb_case_mirror(void)
{
    TCase *tc = tcase_create("mirror");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, existing_then_live_chunks_reach_the_mirror);
    tcase_add_test(tc, names_keep_their_latest_version_in_the_stream_too);
    tcase_add_test(tc, expiry_is_kept_and_honoured);
    tcase_add_test(tc, chunks_of_any_size_arrive_whole);
    tcase_add_test(tc, obsoletion_reaches_the_mirror_and_the_stream);
    tcase_add_test(tc, in_started_first_waits_for_the_stream);
    tcase_add_test(tc, out_started_first_waits_for_the_segment);
    return tc;
}
