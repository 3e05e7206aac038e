/*
 * ls (columns and --json), info (the library's description, verbatim) and
 * segments.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "speculo.h"
#include "t_proc.h"

/* Split a line into at most `max` blank-separated fields (in place). */
static int fields(char *line, char **f, int max)
{
    int n = 0;
    for (char *tok = strtok(line, " "); tok && n < max; tok = strtok(NULL, " "))
        f[n++] = tok;
    return n;
}

static bool iso_time(const char *s)
{
    /* 2026-11-26T07:13:28.123Z */
    return strlen(s) == 24 && s[4] == '-' && s[10] == 'T' && s[19] == '.' && s[23] == 'Z';
}

START_TEST(ls_prints_aligned_columns)
{
    tc_put("l", NULL, "abc");
    struct tc_result r;
    tc_speculo(&r, "1234567890", 10, "put", "l", "temperature", "--ttl", "100", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    tc_put("l", NULL, "");

    tc_speculo(&r, NULL, 0, "ls", "l", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_uint_eq(r.err_len, 0);
    char *save, *lines[4];
    int n = 0;
    for (char *l = strtok_r(r.out, "\n", &save); l && n < 4; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    ck_assert_int_eq(n, 3);
    /* Aligned: the commit time starts at the same column on every line. */
    long col = strstr(lines[0], " 20") - lines[0];
    for (int i = 1; i < 3; i++)
        ck_assert_int_eq(strstr(lines[i], " 20") - lines[i], col);

    const char *want[3][3] = {{"1", "-", "3"}, {"2", "temperature", "10"}, {"3", "-", "0"}};
    for (int i = 0; i < 3; i++) {
        char *f[6];
        ck_assert_int_eq(fields(lines[i], f, 6), 5);
        for (int k = 0; k < 3; k++)
            ck_assert_str_eq(f[k], want[i][k]);
        ck_assert_msg(iso_time(f[3]), "commit time '%s'", f[3]);
        if (i == 1)
            ck_assert_msg(iso_time(f[4]) && strcmp(f[4], f[3]) > 0, "expiry '%s'", f[4]);
        else
            ck_assert_str_eq(f[4], "-");
    }
    tc_result_free(&r);
}
END_TEST

START_TEST(ls_json_is_one_valid_document)
{
    tc_put("j", NULL, "x");
    tc_put("j", "Name_with.dots-1", "y");
    tc_put("j", "Name_with.dots-1", "zz");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "ls", "--json", "j", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_msg(tc_json_valid(r.out, r.out_len), "invalid JSON: %s", r.out);
    ck_assert_int_eq(r.out[0], '[');
    ck_assert_ptr_nonnull(strstr(r.out, "\"id\": 1, \"name\": null, \"size\": 1,"));
    ck_assert_ptr_nonnull(strstr(r.out, "\"id\": 3, \"name\": \"Name_with.dots-1\", \"size\": 2,"));
    ck_assert_ptr_nonnull(strstr(r.out, "\"replaces\": 2}"));
    ck_assert_ptr_null(strstr(r.out, "\"id\": 2,"));
    tc_result_free(&r);

    /* A segment with nothing live is still a document. */
    tc_speculo(&r, "t", 1, "put", "gone", "--ttl", "0.05", NULL);
    int64_t gone = t_expired_by(50000000);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    t_sleep_until_real(gone);
    tc_speculo(&r, NULL, 0, "ls", "gone", "--json", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_str_eq(r.out, "[]\n");
    tc_result_free(&r);

    static const char *const bad[] = {"[1,]", "{\"a\":1} x", "[01]", "\"\x01\"", "[\"\xff\"]", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(!tc_json_valid(bad[i], strlen(bad[i])), "accepted '%s'", bad[i]);
    const char *good = " {\"a\\u0001\": [true, null, -1.5e3, {}, []], \"\xc3\xa9\": 0}\n";
    ck_assert(tc_json_valid(good, strlen(good)));
}
END_TEST

START_TEST(info_prints_the_library_description)
{
    tc_put("inf", "a", "1");
    tc_put("inf", "a", "2");
    tc_put("inf", NULL, "3");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "info", "inf", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    char want[8192];
    int n = speculo_segment_describe("inf", want, sizeof want);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(r.out, want);
    ck_assert_ptr_nonnull(strstr(r.out, "live_chunks: 2\n"));
    tc_result_free(&r);
}
END_TEST

START_TEST(segments_lists_valid_names_sorted)
{
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "segments", NULL);
    ck_assert_int_eq(tc_exit(&r), 0); /* no directory yet: no segments */
    ck_assert_str_eq(r.out, "");
    tc_result_free(&r);

    tc_put("beta", NULL, "b");
    tc_put("alpha", NULL, "a");
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/.reserved", tc_segdir);
    tc_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/not valid", tc_segdir);
    tc_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/subdir", tc_segdir);
    ck_assert_int_eq(mkdir(path, 0700), 0);

    tc_speculo(&r, NULL, 0, "segments", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_str_eq(r.out, "alpha\nbeta\n");
    tc_result_free(&r);
}
END_TEST

TCase *tc_case_list(void)
{
    TCase *tc = tcase_create("list");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, ls_prints_aligned_columns);
    tcase_add_test(tc, ls_json_is_one_valid_document);
    tcase_add_test(tc, info_prints_the_library_description);
    tcase_add_test(tc, segments_lists_valid_names_sorted);
    return tc;
}
