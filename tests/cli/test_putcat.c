/*
 * put and cat: byte-exact round trips (NUL bytes, empty, 100+ MiB, through
 * a pipe and from a regular file), named updates, TTLs, --replaces.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t_proc.h"

/* Bytes that are not text: every value, NULs included, no pattern that a
 * line- or string-based bug would pass by luck. */
static char *binary(size_t len, uint32_t seed)
{
    char *p = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (i % 7 == 0) ? '\0' : (char)(seed >> 16);
    }
    return p;
}

/* cat SEG KEY must give exactly data[0..len). */
static void assert_cat(const char *seg, const char *key, const char *data, size_t len)
{
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "cat", seg, key, NULL);
    ck_assert_msg(tc_exit(&r) == 0, "cat %s %s: %s", seg, key, r.err);
    ck_assert_uint_eq(r.out_len, len);
    ck_assert_msg(memcmp(r.out, data, len) == 0, "cat %s %s: bytes differ", seg, key);
    ck_assert_uint_eq(r.err_len, 0);
    tc_result_free(&r);
}

static void assert_cat_fails(const char *seg, const char *key, const char *message)
{
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "cat", seg, key, NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_uint_eq(r.out_len, 0);
    ck_assert_str_eq(r.err, message);
    tc_result_free(&r);
}

START_TEST(put_cat_binary_with_nul_bytes)
{
    size_t len = 70000;
    char *data = binary(len, 1);
    struct tc_result r;
    tc_speculo(&r, data, len, "put", "bin", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_str_eq(r.out, "1\n");
    tc_result_free(&r);
    assert_cat("bin", "1", data, len);
    free(data);
}
END_TEST

START_TEST(put_cat_empty_chunk)
{
    struct tc_result r;
    tc_speculo(&r, "", 0, "put", "e", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_str_eq(r.out, "1\n");
    tc_result_free(&r);
    /* From an empty regular file too (the sized path). */
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/empty", tc_tmp);
    tc_write_file(path, "", 0);
    tc_speculo_file(&r, path, "put", "e", "blank", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_str_eq(r.out, "2\n");
    tc_result_free(&r);
    assert_cat("e", "1", "", 0);
    assert_cat("e", "blank", "", 0);
}
END_TEST

/* 120 MiB from a regular file goes straight into the segment; 101 MiB
 * through a pipe goes through the growing buffer. */
START_TEST(put_cat_large_chunks)
{
    size_t big = (size_t)120 << 20, piped = ((size_t)101 << 20) + 3;
    char *data = binary(big, 7);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/big", tc_tmp);
    tc_write_file(path, data, big);
    struct tc_result r;
    tc_speculo_file(&r, path, "put", "large", "file", NULL);
    ck_assert_msg(tc_exit(&r) == 0, "put from file: %s", r.err);
    tc_result_free(&r);
    remove(path);
    assert_cat("large", "file", data, big);

    tc_speculo(&r, data + 5, piped, "put", "large", NULL);
    ck_assert_msg(tc_exit(&r) == 0, "put from pipe: %s", r.err);
    ck_assert_str_eq(r.out, "2\n");
    tc_result_free(&r);
    assert_cat("large", "2", data + 5, piped);
    free(data);
}
END_TEST

START_TEST(named_update_replaces_previous_version)
{
    ck_assert_uint_eq(tc_put("cfg", "mode", "v1\n"), 1);
    ck_assert_uint_eq(tc_put("cfg", "mode", "v2\n"), 2);
    assert_cat("cfg", "mode", "v2\n", 3);
    assert_cat("cfg", "2", "v2\n", 3);
    assert_cat_fails("cfg", "1", "speculo: cfg: no live chunk with id 1\n");
    assert_cat_fails("cfg", "other", "speculo: cfg: no live chunk named 'other'\n");

    struct tc_result r;
    tc_speculo(&r, NULL, 0, "ls", "cfg", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    unsigned long long id = 0, size = 0;
    char name[64] = "";
    ck_assert_int_eq(sscanf(r.out, "%llu %63s %llu", &id, name, &size), 3);
    ck_assert_uint_eq(id, 2);
    ck_assert_str_eq(name, "mode");
    ck_assert_uint_eq(size, 3);
    ck_assert_msg(strchr(r.out, '\n') == r.out + r.out_len - 1, "one line expected: %s", r.out);
    tc_result_free(&r);
}
END_TEST

START_TEST(replaces_obsoletes_the_given_chunk)
{
    ck_assert_uint_eq(tc_put("rep", NULL, "old"), 1);
    struct tc_result r;
    tc_speculo(&r, "new", 3, "put", "rep", "--replaces", "1", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_str_eq(r.out, "2\n");
    tc_result_free(&r);
    assert_cat_fails("rep", "1", "speculo: rep: no live chunk with id 1\n");
    assert_cat("rep", "2", "new", 3);

    tc_speculo(&r, "x", 1, "put", "rep", "--replaces", "99", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_str_eq(r.err, "speculo: rep: no live chunk with id 99 to replace\n");
    tc_result_free(&r);
}
END_TEST

/* A chunk with a TTL can be read until it expires, not after; one with
 * --ttl 0 never expires. "Until" is checked with a TTL this machine can
 * check within (t_ttl_ns()), in a segment of its own for each attempt. */
START_TEST(ttl_expires_and_zero_never_does)
{
    struct tc_result r;
    char seg[16], ttl[32], gone_msg[64];
    int64_t gone = 0;
    for (int attempt = 0;; attempt++) {
        int64_t ttl_ns = t_ttl_ns(800000000, attempt), before = t_real_ns();
        snprintf(seg, sizeof seg, "ttl%d", attempt);
        snprintf(ttl, sizeof ttl, "%.3f", (double)ttl_ns / 1e9);
        tc_speculo(&r, "soon", 4, "put", seg, "--ttl", ttl, NULL);
        gone = t_expired_by(ttl_ns);
        ck_assert_int_eq(tc_exit(&r), 0);
        tc_result_free(&r);
        tc_speculo(&r, "kept", 4, "put", seg, "keep", "--ttl", "0", NULL);
        ck_assert_int_eq(tc_exit(&r), 0);
        tc_result_free(&r);
        tc_speculo(&r, NULL, 0, "cat", seg, "1", NULL);
        if (t_real_ns() < before + ttl_ns) { /* the cat ended before the expiry */
            ck_assert_msg(tc_exit(&r) == 0, "cat %s 1: %s", seg, r.err);
            ck_assert(r.out_len == 4 && memcmp(r.out, "soon", 4) == 0);
            tc_result_free(&r);
            break;
        }
        tc_result_free(&r);
        ck_assert_msg(attempt + 1 < T_TTL_ATTEMPTS, "never read within a TTL of %s s", ttl);
    }

    t_sleep_until_real(gone);
    snprintf(gone_msg, sizeof gone_msg, "speculo: %s: no live chunk with id 1\n", seg);
    assert_cat_fails(seg, "1", gone_msg);
    assert_cat(seg, "keep", "kept", 4);
    tc_speculo(&r, NULL, 0, "ls", seg, NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_ptr_null(strstr(r.out, "  -  ")); /* no unnamed chunk left */
    ck_assert_ptr_nonnull(strstr(r.out, "keep"));
    tc_result_free(&r);
}
END_TEST

/* Fractional seconds are exact: 2.5 s is 2 500 000 000 ns, not a double's
 * approximation of it. */
START_TEST(ttl_fraction_is_exact)
{
    struct tc_result r;
    tc_speculo(&r, "x", 1, "put", "frac", "--ttl", "2.5", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    tc_speculo(&r, NULL, 0, "ls", "--json", "frac", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    long long committed = 0, expires = 0;
    const char *c = strstr(r.out, "\"committed_ns\": ");
    const char *e = strstr(r.out, "\"expires_ns\": ");
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(e);
    committed = atoll(c + 16);
    expires = atoll(e + 14);
    ck_assert_int_eq(expires - committed, 2500000000LL);
    tc_result_free(&r);
}
END_TEST

TCase *tc_case_putcat(void)
{
    TCase *tc = tcase_create("put_cat");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, put_cat_binary_with_nul_bytes);
    tcase_add_test(tc, put_cat_empty_chunk);
    tcase_add_test(tc, put_cat_large_chunks);
    tcase_add_test(tc, named_update_replaces_previous_version);
    tcase_add_test(tc, replaces_obsoletes_the_given_chunk);
    tcase_add_test(tc, ttl_expires_and_zero_never_does);
    tcase_add_test(tc, ttl_fraction_is_exact);
    return tc;
}
