/*
 * What the CLI says when things go wrong: put's exit status once the chunk
 * is committed.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "speculo.h"
#include "t_proc.h"

/* Run a shell script with $CLI set to the speculo under test. */
static void run_script(struct tc_result *r, const char *script)
{
    char cmd[2 * TC_PATH];
    snprintf(cmd, sizeof cmd, "CLI='%s'; %s", tc_cli, script);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    tc_run_argv(r, argv);
}

static uint64_t last_id(const char *segment)
{
    speculo_reader *rd;
    struct speculo_segment_info info;
    ck_assert_int_eq(speculo_reader_open(segment, &rd), 0);
    ck_assert_int_eq(speculo_reader_info(rd, &info), 0);
    speculo_reader_close(rd);
    return info.last_id;
}

static void assert_cat(const char *segment, const char *key, const char *want)
{
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "cat", segment, key, NULL);
    ck_assert_msg(tc_exit(&r) == 0, "cat %s %s: %s", segment, key, r.err);
    ck_assert_str_eq(r.out, want);
    tc_result_free(&r);
}

/* The exit status says whether the chunk was committed: a put whose id
 * cannot be printed succeeded, says so on stderr, and a script that
 * retries on failure does not commit twice. */
START_TEST(put_succeeds_when_its_id_cannot_be_printed)
{
    static const struct {
        const char *script, *err;
    } cases[] = {
        {"printf one | \"$CLI\" put s >&-",
         "speculo: s: warning: committed chunk 1, but could not print its id: Bad file "
         "descriptor\n"},
        {"printf two | \"$CLI\" put s >/dev/full",
         "speculo: s: warning: committed chunk 2, but could not print its id: No space left "
         "on device\n"},
        {"printf three > \"$SPECULO_DIR/../in\"; \"$CLI\" put s < \"$SPECULO_DIR/../in\" >&-",
         "speculo: s: warning: committed chunk 3, but could not print its id: Bad file "
         "descriptor\n"},
    };
    struct tc_result r;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_script(&r, cases[i].script);
        ck_assert_msg(tc_exit(&r) == 0, "%s: status %d (%s)", cases[i].script, tc_exit(&r), r.err);
        ck_assert_str_eq(r.err, cases[i].err);
        tc_result_free(&r);
        ck_assert_uint_eq(last_id("s"), i + 1);
    }
    assert_cat("s", "1", "one");
    assert_cat("s", "2", "two");
    assert_cat("s", "3", "three");

    run_script(&r, "for t in 1 2 3; do printf once | \"$CLI\" put r >&- && exit 0; done; exit 1");
    ck_assert_msg(tc_exit(&r) == 0, "retry loop: %s", r.err);
    tc_result_free(&r);
    ck_assert_uint_eq(last_id("r"), 1);
    tc_speculo(&r, NULL, 0, "ls", "r", NULL);
    ck_assert_msg(strchr(r.out, '\n') == r.out + r.out_len - 1, "one chunk expected: %s", r.out);
    tc_result_free(&r);
}
END_TEST

TCase *tc_case_messages(void)
{
    TCase *tc = tcase_create("messages");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, put_succeeds_when_its_id_cannot_be_printed);
    return tc;
}
