/*
 * A 3-node cluster on loopback, an R3 stream, and its leader SIGKILLed
 * while chunks flow: the bridges carry on through the new leader and the
 * mirror ends equal to the origin.
 */
#include <stdio.h>
#include <string.h>

#include "tb.h"

static void wait_replicas_current(struct tb_js *j, const char *stream, char *leader, size_t size)
{
    int64_t t0 = t_mono_ns();
    while (!tb_stream_replicas_current(j, stream, leader, size)) {
        ck_assert_msg(t_ms_since(t0) < TB_WAIT_MS,
                      "stream %s: no leader with both replicas current", stream);
        t_sleep_ms(50);
    }
}

START_TEST(r3_stream_survives_its_leader_killed_mid_stream)
{
    struct t_nats_cluster c;
    tb_cluster_start(&c);
    struct tb_bridge out = {0}, in = {0};
    tb_bridge_start(&out, tb_origin(), "out", "s", c.urls, "--replicas", "3", NULL);
    tb_bridge_start(&in, tb_mirror(), "in", "s", c.urls, NULL);
    tb_log_wait(&out, "created stream speculo-s (3 replicas", TB_WAIT_MS);
    struct tb_wchild wc;
    tb_wchild_start(&wc, tb_origin(), "s", (size_t)2 << 20);
    tb_wait_mirror_id("s", 300, TB_WAIT_MS);

    struct tb_js j;
    tb_js_connect(&j, c.urls);
    char leader[64];
    wait_replicas_current(&j, "speculo-s", leader, sizeof leader);
    struct t_nats *victim = t_nats_cluster_find(&c, leader);
    ck_assert_msg(victim != NULL, "leader %s is not one of ours", leader);
    tb_server_kill(victim);

    /* chunks go on flowing through the new leader */
    uint64_t last = 0;
    tb_live(tb_mirror(), "s", &last);
    tb_wchild_wait_count(&wc, tb_wchild_count(&wc) + 500, TB_WAIT_MS);
    tb_wait_mirror_id("s", last + 500, TB_WAIT_MS);
    tb_wchild_stop(&wc);
    tb_wait_same("s", TB_WAIT_MS);
    tb_stream_unique_ids(&j, "speculo-s");

    /* the killed node comes back and catches up */
    tb_server_restart(victim);
    char leader2[64];
    wait_replicas_current(&j, "speculo-s", leader2, sizeof leader2);
    ck_assert_str_ne(leader2, "");
    tb_js_close(&j);
    ck_assert_int_eq(tb_bridge_stop(&out), 0);
    ck_assert_int_eq(tb_bridge_stop(&in), 0);
    for (int i = 0; i < 3; i++)
        tb_server_stop(&c.s[i]);
}
END_TEST

TCase *tb_case_cluster(void)
{
    TCase *tc = tcase_create("cluster");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, r3_stream_survives_its_leader_killed_mid_stream);
    return tc;
}
