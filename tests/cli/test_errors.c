/*
 * Exit statuses and messages: 0 success, 1 error with `speculo: SEG: ...`
 * on stderr, 2 usage error; --help and --version.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_proc.h"

struct expect {
    const char *args[8]; /* NULL-terminated */
    int status;
    const char *err;     /* exact stderr, or its first line for usage errors */
};

static void check(const struct expect *e)
{
    struct tc_result r;
    const char *const *a = e->args;
    tc_speculo(&r, "data", 4, a[0], a[1], a[2], a[3], a[4], a[5], a[6], NULL);
    char cmd[256] = "";
    for (int i = 0; a[i]; i++)
        snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %s", a[i]);
    ck_assert_msg(tc_exit(&r) == e->status, "speculo%s: status %d, want %d (%s)", cmd,
                  tc_exit(&r), e->status, r.err);
    if (e->status == 2) {
        ck_assert_msg(!strncmp(r.err, e->err, strlen(e->err)), "speculo%s: stderr '%s'", cmd,
                      r.err);
        ck_assert_msg(strstr(r.err, "--help"), "speculo%s: no hint in '%s'", cmd, r.err);
    } else {
        ck_assert_msg(!strcmp(r.err, e->err), "speculo%s: stderr '%s', want '%s'", cmd, r.err,
                      e->err);
    }
    ck_assert_msg(e->status == 0 || r.out_len == 0, "speculo%s: output on error", cmd);
    tc_result_free(&r);
}

START_TEST(exit_statuses_and_messages)
{
    tc_put("s", "blk", "x");
    static const struct expect table[] = {
        {{NULL}, 2, "Usage: speculo"},
        {{"bogus"}, 2, "speculo: unknown command 'bogus'"},
        {{"--bogus"}, 2, "speculo: unrecognized option '--bogus'"},
        {{"put"}, 2, "speculo put: missing segment name"},
        {{"put", "s", "a", "b"}, 2, "speculo put: too many arguments"},
        {{"put", "s", "--ttl", "-1"}, 2, "speculo put: invalid TTL '-1'"},
        {{"put", "s", "--ttl", "abc"}, 2, "speculo put: invalid TTL 'abc'"},
        {{"put", "s", "--ttl", "1.5.2"}, 2, "speculo put: invalid TTL '1.5.2'"},
        {{"put", "s", "--ttl", ""}, 2, "speculo put: invalid TTL ''"},
        {{"put", "s", "--ttl", "nan"}, 2, "speculo put: invalid TTL 'nan'"},
        {{"put", "s", "--ttl", "1e3"}, 2, "speculo put: invalid TTL '1e3'"},
        {{"put", "s", "--ttl"}, 2, "speculo put: option '--ttl' requires an argument"},
        {{"put", "s", "--replaces", "x"}, 2, "speculo put: invalid chunk id 'x'"},
        {{"put", "s", "--bogus"}, 2, "speculo put: unrecognized option '--bogus'"},
        {{"put", "s", "9lives"}, 2, "speculo put: invalid chunk name '9lives'"},
        {{"put", "bad/name"}, 2, "speculo put: invalid segment name 'bad/name'"},
        {{"put", ".hidden"}, 2, "speculo put: invalid segment name '.hidden'"},
        {{"cat", "s"}, 2, "speculo cat: missing operand"},
        {{"cat", "s", "1", "2"}, 2, "speculo cat: too many arguments"},
        {{"cat", "s", "no/such"}, 2, "speculo cat: 'no/such' is neither"},
        {{"cat", "nosuch", "1"}, 1, "speculo: nosuch: no such segment\n"},
        {{"cat", "s", "99"}, 1, "speculo: s: no live chunk with id 99\n"},
        {{"cat", "s", "99999999999999999999999"}, 1,
         "speculo: s: no live chunk with id 99999999999999999999999\n"},
        {{"cat", "s", "nope"}, 1, "speculo: s: no live chunk named 'nope'\n"},
        {{"ls"}, 2, "speculo ls: missing segment name"},
        {{"ls", "nosuch"}, 1, "speculo: nosuch: no such segment\n"},
        {{"tail", "-n", "x", "s"}, 2, "speculo tail: invalid number of chunks 'x'"},
        {{"tail", "-n", "1", "--from", "1", "s"}, 2, "speculo tail: -n and --from"},
        {{"tail", "nosuch"}, 1, "speculo: nosuch: no such segment\n"},
        {{"info", "nosuch"}, 1, "speculo: nosuch: no such segment\n"},
        {{"info"}, 2, "speculo info: missing segment name"},
        {{"segments", "x"}, 2, "speculo segments: too many arguments"},
        {{"gc", "nosuch"}, 1, "speculo: nosuch: no such segment\n"},
        {{"gc", "--wait", "-1", "s"}, 2, "speculo gc: invalid wait '-1'"},
        {{"rm", "nosuch"}, 1, "speculo: nosuch: no such segment\n"},
        {{"rm", "--wait", "1", "s"}, 2, "speculo rm: unrecognized option '--wait'"},
        {{"cat", "s", "blk"}, 0, ""},
        {{"put", "s", "--ttl", ".25"}, 0, ""},
        {{"put", "s", "n2", "--ttl", "3."}, 0, ""},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        check(&table[i]);
}
END_TEST

START_TEST(help_of_every_command_exits_0)
{
    static const char *const cmds[] = {"put",      "cat", "ls", "tail", "info",
                                       "segments", "gc",  "rm", "stats"};
    struct tc_result r;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "Usage: speculo %s", cmds[i]);
        tc_speculo(&r, NULL, 0, cmds[i], "--help", NULL);
        ck_assert_msg(tc_exit(&r) == 0, "%s --help: %d", cmds[i], tc_exit(&r));
        ck_assert_msg(!strncmp(r.out, want, strlen(want)), "%s --help: '%s'", cmds[i], r.out);
        ck_assert_uint_eq(r.err_len, 0);
        tc_result_free(&r);
        tc_speculo(&r, NULL, 0, cmds[i], "-h", NULL);
        ck_assert_int_eq(tc_exit(&r), 0);
        tc_result_free(&r);
    }
    tc_speculo(&r, NULL, 0, "--help", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        ck_assert_msg(strstr(r.out, cmds[i]), "speculo --help does not name %s", cmds[i]);
    tc_result_free(&r);
    tc_speculo(&r, NULL, 0, "help", "gc", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_int_eq(strncmp(r.out, "Usage: speculo gc", 17), 0);
    tc_result_free(&r);
    tc_speculo(&r, NULL, 0, "--version", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_int_eq(strncmp(r.out, "speculo 0.", 10), 0);
    tc_result_free(&r);
}
END_TEST

/* A reader of our output that leaves early is not an error. */
START_TEST(closed_output_pipe_is_not_an_error)
{
    static char big[4 << 20];
    memset(big, 'x', sizeof big);
    struct tc_result r;
    tc_speculo(&r, big, sizeof big, "put", "p", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    static const char *const cmds[][3] = {{"cat", "p", "1"}, {"tail", "p", NULL}};
    for (size_t i = 0; i < 2; i++) {
        struct tc_child c;
        tc_spawn(&c, cmds[i][0], cmds[i][1], cmds[i][2], NULL);
        char buf[16];
        ck_assert_uint_eq(tc_read(&c, buf, sizeof buf, T_PATIENCE_MS), sizeof buf);
        close(c.out);
        c.out = -1;
        int status;
        ck_assert(tc_wait(&c, T_PATIENCE_MS, &status));
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %#x",
                      cmds[i][0], status);
        tc_kill(&c);
    }
}
END_TEST

TCase *tc_case_errors(void)
{
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exit_statuses_and_messages);
    tcase_add_test(tc, help_of_every_command_exits_0);
    tcase_add_test(tc, closed_output_pipe_is_not_an_error);
    return tc;
}
