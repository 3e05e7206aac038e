/*
 * speculo prune: what dead writers left goes; a live writer's segment
 * stays, whatever namespace that writer is in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "speculo.h"
#include "t_proc.h"

static bool exists(const char *name)
{
    char path[TC_PATH + 64];
    snprintf(path, sizeof path, "%s/%s", tc_segdir, name);
    return access(path, F_OK) == 0;
}

static void leftover(const char *name)
{
    char path[TC_PATH + 64];
    snprintf(path, sizeof path, "%s/%s", tc_segdir, name);
    tc_write_file(path, "leftover", 8);
}

/* A writer kept by this test process (as a long-running program would). */
static speculo_writer *hold_writer(const char *segment)
{
    ck_assert_int_eq(setenv("SPECULO_DIR", tc_segdir, 1), 0);
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open(segment, NULL, &w), 0);
    ck_assert_int_eq(speculo_writer_put(w, "x", 1, NULL, NULL), 0);
    return w;
}

START_TEST(prune_removes_dead_and_keeps_live)
{
    tc_put("dead", NULL, "a\n");
    speculo_writer *w = hold_writer("live");
    leftover(".dead.gc.00000000000000aa");
    leftover(".gone.new.4242"); /* of a segment that no longer exists */
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "prune", NULL);
    ck_assert_msg(tc_exit(&r) == 0, "%s", r.err);
    ck_assert_msg(strstr(r.out, "removed dead (") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "removed .dead.gc.00000000000000aa (") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "removed .gone.new.4242 (") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "freed 3 files, ") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "live") == NULL, "%s", r.out);
    tc_result_free(&r);
    ck_assert(!exists("dead"));
    ck_assert(!exists(".dead.gc.00000000000000aa"));
    ck_assert(exists("live"));
    speculo_writer_close(w);
    /* its writer gone, it goes too */
    tc_speculo(&r, NULL, 0, "prune", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_msg(strstr(r.out, "removed live (") != NULL, "%s", r.out);
    tc_result_free(&r);
    ck_assert(!exists("live"));
}
END_TEST

START_TEST(prune_dry_run_touches_nothing)
{
    tc_put("dead", NULL, "a\n");
    leftover(".dead.gc.00000000000000aa");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "prune", "--dry-run", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_msg(strstr(r.out, "would remove dead (") != NULL, "%s", r.out);
    ck_assert_msg(strstr(r.out, "would free 2 files, ") != NULL, "%s", r.out);
    tc_result_free(&r);
    ck_assert(exists("dead"));
    ck_assert(exists(".dead.gc.00000000000000aa"));
}
END_TEST

START_TEST(prune_older_than_keeps_recent_segments)
{
    tc_put("fresh", NULL, "a\n");
    struct tc_result r;
    const char *durations[] = {"1h", "90s", "10m", "2d", "3600", "0.5h"};
    for (size_t i = 0; i < sizeof durations / sizeof *durations; i++) {
        tc_speculo(&r, NULL, 0, "prune", "--older-than", durations[i], NULL);
        ck_assert_msg(tc_exit(&r) == 0, "%s: %s", durations[i], r.err);
        ck_assert_str_eq(r.out, "freed 0 files, 0 bytes\n");
        tc_result_free(&r);
    }
    ck_assert(exists("fresh"));
    tc_speculo(&r, NULL, 0, "prune", "--older-than", "0", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    ck_assert(!exists("fresh"));
}
END_TEST

START_TEST(prune_bad_arguments_exit_2)
{
    const char *bad[] = {"5x", "-1", "", "h", "1hh", "1e3", "9999999999999999999d"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct tc_result r;
        tc_speculo(&r, NULL, 0, "prune", "--older-than", bad[i], NULL);
        ck_assert_msg(tc_exit(&r) == 2, "'%s': status %d", bad[i], tc_exit(&r));
        tc_result_free(&r);
    }
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "prune", "extra", NULL);
    ck_assert_int_eq(tc_exit(&r), 2);
    tc_result_free(&r);
}
END_TEST

/* prune run in a PID namespace of its own (a container) must not take a
 * segment whose writer lives outside it. */
START_TEST(prune_in_pid_namespace_keeps_live_writers_segment)
{
    if (geteuid() != 0 || system("unshare --pid --fork --mount-proc true >/dev/null 2>&1") != 0) {
        fprintf(stderr, "prune_in_pid_namespace...: no unshare as root, skipped\n");
        return;
    }
    speculo_writer *w = hold_writer("live");
    char *argv[] = {"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", tc_cli, "prune", NULL};
    struct tc_result r;
    tc_run_argv(&r, argv);
    ck_assert_msg(tc_exit(&r) == 0, "%s", r.err);
    ck_assert_str_eq(r.out, "freed 0 files, 0 bytes\n");
    tc_result_free(&r);
    ck_assert(exists("live"));
    speculo_writer_close(w);
}
END_TEST

TCase *tc_case_prune(void)
{
    TCase *tc = tcase_create("prune");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, prune_removes_dead_and_keeps_live);
    tcase_add_test(tc, prune_dry_run_touches_nothing);
    tcase_add_test(tc, prune_older_than_keeps_recent_segments);
    tcase_add_test(tc, prune_bad_arguments_exit_2);
    tcase_add_test(tc, prune_in_pid_namespace_keeps_live_writers_segment);
    return tc;
}
