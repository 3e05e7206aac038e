/*
 * The command line: help, usage errors (exit 2), bad server URLs and
 * servers that cannot be used (exit 1, a clear message), a stream that is
 * not the bridge's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tb.h"

#define OUT_LINE "Usage: speculo bridge out SEG --server URL"

START_TEST(help_is_shown_and_exits_0)
{
    char err[4096];
    ck_assert_int_eq(tb_run(tb_origin(), err, sizeof err, "bridge", "--help", NULL), 0);
    ck_assert_int_eq(tb_run(tb_origin(), err, sizeof err, "help", "bridge", NULL), 0);
    ck_assert_int_eq(tb_run(tb_origin(), err, sizeof err, "bridge", "out", "-h", NULL), 0);
    ck_assert_int_eq(tb_run(tb_origin(), err, sizeof err, "--help", NULL), 0);
}
END_TEST

START_TEST(help_text_names_both_directions_and_the_options)
{
    char err[8192];
    ck_assert_int_eq(tb_run(tb_origin(), err, sizeof err, "bridge", "--help", NULL), 0);
    ck_assert_msg(strstr(err, OUT_LINE), "%s", err);
    ck_assert_msg(strstr(err, "speculo bridge in  SEG --server URL"), "%s", err);
    ck_assert_msg(strstr(err, "--stream NAME") && strstr(err, "--replicas N"), "%s", err);
    ck_assert_int_eq(tb_run(tb_origin(), err, sizeof err, "--help", NULL), 0);
    ck_assert_msg(strstr(err, "bridge"), "speculo --help does not list bridge: %s", err);
    ck_assert_int_eq(tb_run(tb_origin(), err, sizeof err, "bridge", NULL), 2);
    ck_assert_msg(strstr(err, "missing direction: out or in"), "%s", err);
    ck_assert_msg(strstr(err, "Try 'speculo bridge --help'"), "%s", err);
}
END_TEST

START_TEST(usage_errors_exit_2)
{
    static const char *const cases[][8] = {
        {"bridge", "sideways", "s", "--server", "x", NULL},
        {"bridge", "out", "--server", "x", NULL},
        {"bridge", "out", "s", NULL},
        {"bridge", "out", "s", "t", "--server", "x", NULL},
        {"bridge", "out", ".bad", "--server", "x", NULL},
        {"bridge", "out", "s", "--server", "x", "--replicas", "0", NULL},
        {"bridge", "out", "s", "--server", "x", "--replicas", "6", NULL},
        {"bridge", "in", "s", "--server", "x", "--replicas", "3", NULL},
        {"bridge", "out", "s", "--server", "x", "--stream", "a.b", NULL},
        {"bridge", "out", "s", "--server", "x", "--bogus", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[4096];
        const char *const *c = cases[i];
        int rc =
            tb_run(tb_origin(), err, sizeof err, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]);
        ck_assert_msg(rc == 2, "case %zu: exit %d: %s", i, rc, err);
        ck_assert_msg(strstr(err, "speculo bridge"), "case %zu: %s", i, err);
    }
}
END_TEST

START_TEST(bad_urls_exit_1_with_a_clear_message)
{
    const char *bad[] = {
        "nats://:x",          "foo bar", "http://127.0.0.1:4222",  "nats://127.0.0.1:99999",
        "nats://127.0.0.1:0", "",        "nats://127.0.0.1:4222,", "nats://h:1/path"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (int dir = 0; dir < 2; dir++) {
            char err[4096];
            int rc = tb_run(dir ? tb_mirror() : tb_origin(), err, sizeof err, "bridge",
                            dir ? "in" : "out", "s", "--server", bad[i], NULL);
            ck_assert_msg(rc == 1, "'%s': exit %d: %s", bad[i], rc, err);
            ck_assert_msg(strstr(err, "invalid server URL"), "'%s': %s", bad[i], err);
        }
}
END_TEST

START_TEST(unreachable_servers_exit_1_saying_why)
{
    char url[64], err[4096];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", tb_free_port());
    ck_assert_int_eq(
        tb_run(tb_origin(), err, sizeof err, "bridge", "out", "s", "--server", url, NULL), 1);
    ck_assert_msg(strstr(err, "cannot connect to") && strstr(err, "Connection refused"), "%s", err);
    ck_assert_int_eq(tb_run(tb_mirror(), err, sizeof err, "bridge", "in", "s", "--server",
                            "nats://no-such-host.invalid:4222", NULL),
                     1);
    ck_assert_msg(strstr(err, "cannot resolve host"), "%s", err);
}
END_TEST

START_TEST(a_server_without_jetstream_is_refused)
{
    struct t_nats s;
    tb_server_start_plain(&s, "plain");
    char err[4096];
    ck_assert_int_eq(
        tb_run(tb_origin(), err, sizeof err, "bridge", "out", "s", "--server", s.url, NULL), 1);
    ck_assert_msg(strstr(err, "JetStream is not enabled"), "%s", err);
    tb_server_stop(&s);
}
END_TEST

START_TEST(a_stream_that_is_not_the_bridges_is_refused)
{
    struct t_nats s;
    tb_server_start(&s, "solo");
    struct tb_js j;
    tb_js_connect(&j, s.url);
    const char *subjects[] = {"other.>"};
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    c.Name = "speculo-s";
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    ck_assert_int_eq(js_AddStream(&si, j.js, &c, NULL, &je), NATS_OK);
    jsStreamInfo_Destroy(si);
    tb_js_close(&j);
    char err[4096];
    ck_assert_int_eq(
        tb_run(tb_origin(), err, sizeof err, "bridge", "out", "s", "--server", s.url, NULL), 1);
    ck_assert_msg(strstr(err, "was not made by speculo bridge"), "%s", err);
    tb_server_stop(&s);
}
END_TEST

START_TEST(a_second_writer_of_the_mirror_is_refused)
{
    struct t_nats s;
    tb_server_start(&s, "solo");
    speculo_writer *w = tb_writer(tb_mirror(), "s");
    char err[4096];
    ck_assert_int_eq(
        tb_run(tb_mirror(), err, sizeof err, "bridge", "in", "s", "--server", s.url, NULL), 1);
    ck_assert_msg(strstr(err, "another live writer"), "%s", err);
    speculo_writer_close(w);
    tb_server_stop(&s);
}
END_TEST

/* speculo works without the bridge's program (a host without libnats):
 * speculo bridge then says what is missing */
START_TEST(without_speculo_bridge_installed_it_says_so)
{
    char bin[PATH_MAX + 16], cmd[4 * PATH_MAX];
    snprintf(bin, sizeof bin, "%s/bin", t_dir());
    snprintf(cmd, sizeof cmd, "mkdir '%s' && cp '%s' '%s/speculo'", bin, tb_cli, bin);
    ck_assert_int_eq(system(cmd), 0);
    char speculo[PATH_MAX + 32], log[PATH_MAX + 32];
    snprintf(speculo, sizeof speculo, "%s/speculo", bin);
    snprintf(log, sizeof log, "%s/alone.log", t_dir());
    char *argv[] = {"speculo", "bridge", "out", "s", "--server", "nats://127.0.0.1:4222", NULL};
    pid_t pid = t_speculo_spawn(speculo, tb_origin(), log, argv);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(t_wait(pid, TB_WAIT_MS), 1);
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char out[1024] = "";
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(out, "speculo: bridge: not available") && strstr(out, "speculo-bridge"),
                  "%s", out);
}
END_TEST

TCase *tb_case_cli(void)
{
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, help_is_shown_and_exits_0);
    tcase_add_test(tc, help_text_names_both_directions_and_the_options);
    tcase_add_test(tc, usage_errors_exit_2);
    tcase_add_test(tc, bad_urls_exit_1_with_a_clear_message);
    tcase_add_test(tc, unreachable_servers_exit_1_saying_why);
    tcase_add_test(tc, a_server_without_jetstream_is_refused);
    tcase_add_test(tc, a_stream_that_is_not_the_bridges_is_refused);
    tcase_add_test(tc, a_second_writer_of_the_mirror_is_refused);
    tcase_add_test(tc, without_speculo_bridge_installed_it_says_so);
    return tc;
}
