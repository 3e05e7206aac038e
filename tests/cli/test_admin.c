/*
 * gc, rm, and the writer role: rm of a segment a reader holds, rm refusing
 * a live writer, put and gc waiting for the writer role.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "speculo.h"
#include "t_proc.h"

static int64_t generation(const char *seg)
{
    return (int64_t)tc_info(seg).generation;
}

START_TEST(gc_collects_and_keeps_live_chunks)
{
    for (int i = 0; i < 20; i++)
        tc_put("g", "k", i % 2 ? "odd" : "even");
    tc_put("g", NULL, "stream");
    int64_t gen = generation("g");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "gc", "g", NULL);
    ck_assert_msg(tc_exit(&r) == 0, "gc: %s", r.err);
    ck_assert_uint_eq(r.out_len + r.err_len, 0);
    tc_result_free(&r);
    ck_assert_int_eq(generation("g"), gen + 1);
    tc_speculo(&r, NULL, 0, "tail", "g", NULL);
    ck_assert_str_eq(r.out, "oddstream");
    tc_result_free(&r);

    /* gc does not create a missing segment. */
    tc_speculo(&r, NULL, 0, "gc", "nothing", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_str_eq(r.err, "speculo: nothing: no such segment\n");
    tc_result_free(&r);
    tc_speculo(&r, NULL, 0, "segments", NULL);
    ck_assert_str_eq(r.out, "g\n");
    tc_result_free(&r);
}
END_TEST

START_TEST(rm_leaves_a_reader_its_data)
{
    tc_put("held", "blk", "still here");
    speculo_reader *rd;
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_open("held", &rd), 0);
    ck_assert_int_eq(speculo_reader_get(rd, "blk", &c), 0);

    struct tc_result r;
    tc_speculo(&r, NULL, 0, "rm", "held", NULL);
    ck_assert_msg(tc_exit(&r) == 0, "rm: %s", r.err);
    tc_result_free(&r);

    ck_assert_uint_eq(c.size, 10);
    ck_assert_int_eq(memcmp(c.data, "still here", 10), 0);
    speculo_chunk next;
    ck_assert_int_eq(speculo_reader_next(rd, &next), -ENOENT);
    speculo_reader_close(rd);

    tc_speculo(&r, NULL, 0, "segments", NULL);
    ck_assert_str_eq(r.out, "");
    tc_result_free(&r);
    tc_speculo(&r, NULL, 0, "rm", "held", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_str_eq(r.err, "speculo: held: no such segment\n");
    tc_result_free(&r);
}
END_TEST

/* This test process holds the writer role while the CLI tries its luck. */
START_TEST(live_writer_blocks_rm_put_and_gc)
{
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open("busy", NULL, &w), 0);
    ck_assert_int_eq(speculo_writer_put(w, "x", 1, NULL, NULL), 0);
    char msg[256];

    struct tc_result r;
    tc_speculo(&r, NULL, 0, "rm", "busy", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    snprintf(msg, sizeof msg,
             "speculo: busy: its writer (pid %d) is alive; use --force to remove it\n",
             (int)getpid());
    ck_assert_str_eq(r.err, msg);
    tc_result_free(&r);

    int64_t t0 = t_mono_ns();
    tc_speculo(&r, "y", 1, "put", "busy", "--wait", "0.3", NULL);
    int64_t waited = t_ms_since(t0);
    ck_assert_int_eq(tc_exit(&r), 1);
    snprintf(msg, sizeof msg,
             "speculo: busy: another process (pid %d) is the writer; gave up after 0.300 s\n",
             (int)getpid());
    ck_assert_str_eq(r.err, msg);
    ck_assert_int_ge(waited, 300); /* and gave up: how much later is the machine's */
    tc_result_free(&r);

    tc_speculo(&r, NULL, 0, "gc", "busy", "-w", "0", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    tc_result_free(&r);

    /* A put that waits gets the role once the writer lets go: closed once
     * the put sleeps between its tries (stdin, /dev/null, is read first). */
    struct tc_child c;
    tc_spawn(&c, "put", "busy", "late", "--wait", "60", NULL);
    ck_assert_int_eq(t_await_asleep(c.pid, T_PATIENCE_MS), 0);
    speculo_writer_close(w);
    int status;
    ck_assert(tc_wait(&c, T_PATIENCE_MS, &status));
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char out[16] = "";
    tc_read(&c, out, 2, T_PATIENCE_MS);
    ck_assert_str_eq(out, "2\n");
    tc_kill(&c);

    ck_assert_int_eq(speculo_writer_open("busy", NULL, &w), 0);
    tc_speculo(&r, NULL, 0, "rm", "--force", "busy", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    speculo_writer_close(w);
}
END_TEST

TCase *tc_case_admin(void)
{
    TCase *tc = tcase_create("admin");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, gc_collects_and_keeps_live_chunks);
    tcase_add_test(tc, rm_leaves_a_reader_its_data);
    tcase_add_test(tc, live_writer_blocks_rm_put_and_gc);
    return tc;
}
