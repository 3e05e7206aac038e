/*
 * What the CLI says when things go wrong: put's exit status once the chunk
 * is committed, user-given text shown escaped, and the exact reason behind
 * the library's "unsafe directory or file".
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    return tc_info(segment).last_id;
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

/* No byte of stderr may act on a terminal: only printable text and the
 * newlines that end lines. */
static void assert_inert(const char *err)
{
    for (const unsigned char *p = (const unsigned char *)err; *p; p++)
        ck_assert_msg(*p >= 0x20 || *p == '\n', "raw byte 0x%02x in '%s'", *p, err);
    ck_assert_msg(!strstr(err, "\xc2\x9b"), "raw C1 control in '%s'", err);
}

START_TEST(messages_show_user_text_escaped)
{
    static const struct {
        const char *args[6];
        const char *err; /* how stderr starts */
    } cases[] = {
        {{"put", "s", "--ttl", "\x1b[31mred"}, "speculo put: invalid TTL '\\x1b[31mred'"},
        {{"put", "s\x1b]0;title\x07"}, "speculo put: invalid segment name 's\\x1b]0;title\\x07'"},
        {{"put", "s", "--\x1b[2J"}, "speculo put: unrecognized option '--\\x1b[2J'"},
        {{"put", "s", "-\x01"}, "speculo put: invalid option -- '\\x01'"},
        {{"put", "s", "--ttl"}, "speculo put: option '--ttl' requires an argument"},
        {{"put", "s", "-t"}, "speculo put: option requires an argument -- 't'"},
        {{"put", "s", "--help=x"}, "speculo put: option '--help' doesn't allow an argument"},
        {{"tail", "--f", "s"}, "speculo tail: option '--f' is ambiguous; possibilities: "
                               "'--follow' '--from'"},
        {{"cat", "s", "a\nspeculo: forged"},
         "speculo cat: 'a\\nspeculo: forged' is neither a chunk id nor a chunk name"},
        {{"tail", "-n", "\x1b", "s"}, "speculo tail: invalid number of chunks '\\x1b'"},
        {{"gc", "--wait", "1\r", "s"}, "speculo gc: invalid wait '1\\r': seconds, 0 or more"},
        {{"put", "caf\xc3\xa9"}, "speculo put: invalid segment name 'caf\xc3\xa9'"},
        {{"put", "a\xff\xc2\x9b\\"}, "speculo put: invalid segment name 'a\\xff\\u009b\\\\'"},
        {{"\x1b[H"}, "speculo: unknown command '\\x1b[H'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tc_result r;
        const char *const *a = cases[i].args;
        tc_speculo(&r, "x", 1, a[0], a[1], a[2], a[3], a[4], NULL);
        ck_assert_msg(tc_exit(&r) == 2, "case %zu: status %d", i, tc_exit(&r));
        assert_inert(r.err);
        size_t n = strlen(cases[i].err);
        ck_assert_msg(!strncmp(r.err, cases[i].err, n) && strchr("\n:", r.err[n]),
                      "case %zu: stderr '%s', want '%s'", i, r.err, cases[i].err);
        tc_result_free(&r);
    }

    /* A path from $SPECULO_DIR, in an error message. */
    char dir[TC_PATH + 32], want[2 * TC_PATH];
    snprintf(dir, sizeof dir, "%s/d\x1b[1m", tc_tmp);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    setenv("SPECULO_DIR", dir, 1);
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "segments", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    assert_inert(r.err);
    snprintf(want, sizeof want,
             "speculo: %s/d\\x1b[1m: unsafe segment directory: writable by others (chmod go-w "
             "it)\n",
             tc_tmp);
    ck_assert_str_eq(r.err, want);
    tc_result_free(&r);
    tc_speculo(&r, "x", 1, "put", "s", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    assert_inert(r.err);
    tc_result_free(&r);
    setenv("SPECULO_DIR", tc_segdir, 1);
}
END_TEST

/* Every command that the library refuses with -EPERM says what exactly is
 * unsafe, as `segments` does. */
static void expect_fault(const char *const *args, const char *want)
{
    struct tc_result r;
    tc_speculo(&r, "x", 1, args[0], args[1], args[2], args[3], NULL);
    ck_assert_msg(tc_exit(&r) == 1, "%s: status %d (%s)", args[0], tc_exit(&r), r.err);
    ck_assert_msg(!strcmp(r.err, want), "%s: stderr '%s', want '%s'", args[0], r.err, want);
    tc_result_free(&r);
}

static void expect_fault_everywhere(const char *segment, const char *why, bool file)
{
    char want[2 * TC_PATH];
    static const char *const commands[][4] = {
        {"put", "s", NULL}, {"cat", "s", "1", NULL}, {"ls", "s", NULL},
        {"tail", "s", NULL}, {"gc", "s", NULL},      {"info", "s", NULL},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        /* info describes an unsafe file (status: error) rather than fail. */
        if (file && !strcmp(commands[i][0], "info"))
            continue;
        if (file)
            snprintf(want, sizeof want, "speculo: s: unsafe segment file %s/%s: %s\n",
                     getenv("SPECULO_DIR"), segment, why);
        else
            snprintf(want, sizeof want, "speculo: s: unsafe segment directory %s: %s\n",
                     getenv("SPECULO_DIR"), why);
        expect_fault(commands[i], want);
    }
}

START_TEST(unsafe_directory_or_file_is_named_precisely)
{
    tc_put("s", NULL, "data");
    char link[TC_PATH + 32], want[2 * TC_PATH], file[TC_PATH + 64];

    ck_assert_int_eq(chmod(tc_segdir, 0777), 0);
    expect_fault_everywhere("s", "writable by others (chmod go-w it)", false);
    ck_assert_int_eq(chmod(tc_segdir, 0770), 0);
    expect_fault_everywhere("s", "writable by its group (chmod g-w it)", false);
    ck_assert_int_eq(chmod(tc_segdir, 0700), 0);

    snprintf(link, sizeof link, "%s/link", tc_tmp);
    ck_assert_int_eq(symlink(tc_segdir, link), 0);
    setenv("SPECULO_DIR", link, 1);
    expect_fault_everywhere("s", "it is a symbolic link", false);
    /* segments is checked by the CLI itself, in every spelling. */
    static const char *const spellings[] = {"", "/", "/.", "/./"};
    for (size_t i = 0; i < 4; i++) {
        char dir[TC_PATH + 64];
        snprintf(dir, sizeof dir, "%s%s", link, spellings[i]);
        setenv("SPECULO_DIR", dir, 1);
        snprintf(want, sizeof want, "speculo: %s: unsafe segment directory: it is a symbolic link\n",
                 dir);
        static const char *const segments[] = {"segments", NULL, NULL, NULL};
        expect_fault(segments, want);
    }
    setenv("SPECULO_DIR", tc_segdir, 1);

    snprintf(file, sizeof file, "%s/s", tc_segdir);
    ck_assert_int_eq(chmod(file, 0666), 0);
    expect_fault_everywhere("s", "writable by others (chmod go-w it)", true);
    ck_assert_int_eq(chmod(file, 0600), 0);

    snprintf(file, sizeof file, "%s/t", tc_segdir);
    ck_assert_int_eq(symlink("s", file), 0);
    static const char *const cat_t[] = {"cat", "t", "1", NULL};
    snprintf(want, sizeof want, "speculo: t: unsafe segment file %s/t: it is a symbolic link\n",
             tc_segdir);
    expect_fault(cat_t, want);
    unlink(file);
    ck_assert_int_eq(mkfifo(file, 0600), 0);
    snprintf(want, sizeof want, "speculo: t: unsafe segment file %s/t: not a regular file\n",
             tc_segdir);
    expect_fault(cat_t, want);
    unlink(file);

    if (geteuid() != 0)
        return; /* the ownership rules need another owner */
    snprintf(file, sizeof file, "%s/s", tc_segdir);
    ck_assert_int_eq(chown(file, 65534, 65534), 0);
    assert_cat("s", "1", "data"); /* a reader may read it */
    static const char *const put_s[] = {"put", "s", NULL, NULL};
    snprintf(want, sizeof want,
             "speculo: s: unsafe segment file %s/s: not owned by you (a writer writes only to "
             "its own files)\n",
             tc_segdir);
    expect_fault(put_s, want);
    ck_assert_int_eq(chown(file, 0, 0), 0);
    ck_assert_int_eq(chown(tc_segdir, 65534, 65534), 0);
    snprintf(want, sizeof want,
             "speculo: s: unsafe segment directory %s: not owned by you (a writer writes only "
             "in a directory it owns)\n",
             tc_segdir);
    expect_fault(put_s, want);
    ck_assert_int_eq(chown(tc_segdir, 0, 0), 0);
}
END_TEST

TCase *tc_case_messages(void)
{
    TCase *tc = tcase_create("messages");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, put_succeeds_when_its_id_cannot_be_printed);
    tcase_add_test(tc, messages_show_user_text_escaped);
    tcase_add_test(tc, unsafe_directory_or_file_is_named_precisely);
    return tc;
}
