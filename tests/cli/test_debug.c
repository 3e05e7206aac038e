/*
 * Debugging a segment: ls --all (every record still in the file, with its
 * state), cat --any (a dead record's bytes until a collection drops it)
 * and check (where a file goes wrong: every corruption class of the
 * hostile tests, tests/common/t_corrupt.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "speculo.h"
#include "t_corrupt.h"
#include "t_proc.h"

/* The last blank-separated field of each line of @out, in order. */
static int last_fields(char *out, char **f, int max)
{
    int n = 0;
    char *save;
    for (char *l = strtok_r(out, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save)) {
        char *sp = strrchr(l, ' ');
        f[n++] = sp ? sp + 1 : l;
    }
    return n;
}

/* Obsolete @id explicitly (no command does that: the library does). */
static void obsolete(const char *segment, uint64_t id)
{
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open(segment, NULL, &w), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, id), 0);
    speculo_writer_close(w);
}

/* One record in each state: 1 obsoleted by name (2), 2 live, 3 expired,
 * 4 obsoleted by `replaces` (5), 5 live, 6 obsoleted explicitly. */
static void make_states(const char *seg)
{
    tc_put(seg, "status", "starting");
    tc_put(seg, "status", "running");
    struct tc_result r;
    tc_speculo(&r, "reading", 7, "put", seg, "--ttl", "0.000000001", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    tc_put(seg, NULL, "old");
    tc_speculo(&r, "new", 3, "put", seg, "--replaces", "4", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    tc_put(seg, NULL, "dropped");
    obsolete(seg, 6);
}

START_TEST(ls_all_shows_every_state)
{
    make_states("d");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "ls", "--all", "d", NULL);
    ck_assert_msg(tc_exit(&r) == 0, "%s", r.err);
    ck_assert_uint_eq(r.err_len, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "1  status  8  "));
    char *f[8];
    ck_assert_int_eq(last_fields(r.out, f, 8), 6);
    const char *want[6] = {"obsolete>2", "live", "expired", "obsolete>5", "live", "obsolete"};
    for (int i = 0; i < 6; i++)
        ck_assert_str_eq(f[i], want[i]);
    tc_result_free(&r);

    /* without --all: the live chunks only, as ever */
    tc_speculo(&r, NULL, 0, "ls", "d", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    char *ids[4];
    int n = 0;
    char *save;
    for (char *l = strtok_r(r.out, "\n", &save); l && n < 4; l = strtok_r(NULL, "\n", &save))
        ids[n++] = l;
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ids[0][0], '2');
    ck_assert_int_eq(ids[1][0], '5');
    ck_assert_ptr_null(strstr(r.out, "live"));
    tc_result_free(&r);
}
END_TEST

START_TEST(ls_all_json_has_state_and_place)
{
    make_states("j");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "ls", "--all", "--json", "j", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_msg(tc_json_valid(r.out, r.out_len), "invalid JSON: %s", r.out);
    struct tc_json_span el[8], v;
    ck_assert_int_eq(tc_json_elements(r.out, r.out_len, el, 8), 6);
    const char *state[6] = {"\"obsolete>2\"", "\"live\"", "\"expired\"",
                            "\"obsolete>5\"", "\"live\"", "\"obsolete\""};
    const char *by[6] = {"2", "null", "null", "5", "null", "null"};
    uint64_t prev_end = 0;
    for (int i = 0; i < 6; i++) {
        ck_assert(tc_json_get(el[i].p, el[i].len, "state", &v));
        ck_assert_msg(tc_json_is(&v, state[i]), "record %d: state %.*s", i + 1, (int)v.len, v.p);
        ck_assert(tc_json_get(el[i].p, el[i].len, "obsoleted_by", &v));
        ck_assert(tc_json_is(&v, by[i]));
        ck_assert(tc_json_get(el[i].p, el[i].len, "offset", &v));
        uint64_t off = strtoull(v.p, NULL, 10);
        ck_assert(tc_json_get(el[i].p, el[i].len, "length", &v));
        uint64_t len = strtoull(v.p, NULL, 10);
        ck_assert_uint_eq(off % 64, 0);
        ck_assert_uint_eq(len % 64, 0);
        ck_assert(prev_end == 0 || off == prev_end); /* back to back */
        prev_end = off + len;
    }
    ck_assert(tc_json_get(el[4].p, el[4].len, "replaces", &v));
    ck_assert(tc_json_is(&v, "4"));
    tc_result_free(&r);

    /* ls --json without --all has no state */
    tc_speculo(&r, NULL, 0, "ls", "--json", "j", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_ptr_null(strstr(r.out, "\"state\""));
    tc_result_free(&r);
}
END_TEST

START_TEST(ls_all_after_gc_keeps_only_live)
{
    make_states("g");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "gc", "g", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    tc_speculo(&r, NULL, 0, "ls", "--all", "g", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_msg(!strncmp(r.out, "2  status", 9) && strstr(r.out, "\n5  -"), "%s", r.out);
    char *f[8];
    ck_assert_int_eq(last_fields(r.out, f, 8), 2);
    ck_assert_str_eq(f[0], "live");
    ck_assert_str_eq(f[1], "live");
    tc_result_free(&r);
}
END_TEST

/* cat --any SEG ID must give exactly @data. */
static void assert_cat_any(const char *seg, const char *id, const char *data)
{
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "cat", "--any", seg, id, NULL);
    ck_assert_msg(tc_exit(&r) == 0, "cat --any %s %s: %s", seg, id, r.err);
    ck_assert_str_eq(r.out, data);
    tc_result_free(&r);
}

static void assert_cat_fails(const char *option, const char *seg, const char *key, int status,
                             const char *message)
{
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "cat", option, seg, key, NULL);
    ck_assert_int_eq(tc_exit(&r), status);
    ck_assert_uint_eq(r.out_len, 0);
    ck_assert_msg(strstr(r.err, message), "stderr: %s", r.err);
    tc_result_free(&r);
}

START_TEST(cat_any_until_collected)
{
    make_states("c");
    /* dead records: plain cat refuses them, --any gives their bytes */
    assert_cat_fails("--", "c", "1", 1, "no live chunk with id 1");
    assert_cat_any("c", "1", "starting");
    assert_cat_any("c", "3", "reading");
    assert_cat_any("c", "4", "old");
    assert_cat_any("c", "6", "dropped");
    assert_cat_any("c", "2", "running"); /* and live ones */
    assert_cat_fails("--any", "c", "7", 1, "speculo: c: no chunk with id 7\n");
    assert_cat_fails("--any", "c", "status", 2, "--any takes a chunk id, not 'status'");

    struct tc_result r;
    tc_speculo(&r, NULL, 0, "gc", "c", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    tc_result_free(&r);
    assert_cat_fails("--any", "c", "1", 1,
                     "speculo: c: no record with id 1 in the file: collected (or never "
                     "committed)\n");
    assert_cat_fails("--any", "c", "6", 1, "collected");
    assert_cat_any("c", "5", "new");
}
END_TEST

START_TEST(check_sound_segment_says_ok_with_counts)
{
    make_states("k");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "check", "k", NULL);
    ck_assert_msg(tc_exit(&r) == 0, "%s%s", r.out, r.err);
    ck_assert_uint_eq(r.err_len, 0);
    const char *first = "ok: 6 records (2 live, 1 expired, 2 obsolete>ID, 1 obsolete), ids 1-6, "
                        "generation 1\n";
    ck_assert_msg(!strncmp(r.out, first, strlen(first)), "%s", r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "768 in records (256 live, 512 dead"));
    ck_assert_ptr_nonnull(strstr(r.out, "\nid table: 6 of "));
    ck_assert_ptr_nonnull(strstr(r.out, "\nname index: 1 of "));
    ck_assert_ptr_nonnull(strstr(r.out, "longest lookup: 1 slot\n"));
    tc_result_free(&r);

    tc_speculo(&r, NULL, 0, "check", "--json", "k", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_msg(tc_json_valid(r.out, r.out_len), "invalid JSON: %s", r.out);
    struct tc_json_span v;
    ck_assert(tc_json_get(r.out, r.out_len, "status", &v) && tc_json_is(&v, "\"ok\""));
    ck_assert(tc_json_get(r.out, r.out_len, "offset", &v) && tc_json_is(&v, "null"));
    ck_assert(tc_json_get(r.out, r.out_len, "records", &v) && tc_json_is(&v, "6"));
    ck_assert(tc_json_get(r.out, r.out_len, "dead_bytes", &v) && tc_json_is(&v, "512"));
    ck_assert(tc_json_get(r.out, r.out_len, "collisions", &v) && tc_json_is(&v, "[]"));
    tc_result_free(&r);

    tc_speculo(&r, NULL, 0, "check", "absent", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_uint_eq(r.out_len, 0);
    ck_assert_ptr_nonnull(strstr(r.err, "speculo: absent: "));
    tc_result_free(&r);
    tc_speculo(&r, NULL, 0, "check", NULL);
    ck_assert_int_eq(tc_exit(&r), 2);
    tc_result_free(&r);
}
END_TEST

START_TEST(check_reports_each_corruption_class)
{
    for (size_t i = 0; i < t_corruption_count; i++) {
        const struct t_corruption *k = &t_corruptions[i];
        struct t_fixture f;
        ck_assert_int_eq(t_fixture_make(NULL, &f), 0);
        uint64_t at;
        ck_assert_msg(k->make(&f, &at) == 0, "%s: could not make it", k->name);
        t_fixture_done(&f);
        struct tc_result r;
        tc_speculo(&r, NULL, 0, "check", "s", NULL);
        char want[64];
        snprintf(want, sizeof want, "offset %llu: ", (unsigned long long)at);
        ck_assert_msg(tc_exit(&r) == 1 && !strncmp(r.out, want, strlen(want)) &&
                          strstr(r.out, k->reason) && strchr(r.out, '\n') == r.out + r.out_len - 1,
                      "%s: exit %d, printed \"%s\", expected '%s...%s'", k->name, tc_exit(&r),
                      r.out, want, k->reason);
        tc_result_free(&r);

        tc_speculo(&r, NULL, 0, "check", "--json", "s", NULL);
        struct tc_json_span v;
        ck_assert_int_eq(tc_exit(&r), 1);
        ck_assert_msg(tc_json_valid(r.out, r.out_len), "%s: invalid JSON: %s", k->name, r.out);
        ck_assert(tc_json_get(r.out, r.out_len, "status", &v));
        ck_assert(tc_json_is(&v, k->status == -EPROTO ? "\"other_version\"" : "\"corrupt\""));
        ck_assert(tc_json_get(r.out, r.out_len, "offset", &v));
        ck_assert_uint_eq(strtoull(v.p, NULL, 10), at);
        tc_result_free(&r);
        ck_assert_int_eq(unlink(f.path), 0);
    }
}
END_TEST

/* A name whose home slot another name holds, found by hashing candidate
 * names with the segment's seed. */
START_TEST(check_verbose_lists_colliding_names)
{
    tc_put("n", "first", "1");
    char path[sizeof tc_segdir + 8];
    snprintf(path, sizeof path, "%s/n", tc_segdir);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map_path(path, &m), 0);
    uint64_t mask = t_seg_hdr(&m)->index_slots - 1;
    char other[32];
    uint64_t home = t_seg_same_home(&m, "first", other, sizeof other);
    t_seg_unmap(&m);
    tc_put("n", other, "2");
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "check", "-v", "n", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_ptr_nonnull(strstr(r.out, "1 names out of their home slot, 2 sharing one"));
    char want[256];
    snprintf(want, sizeof want,
             "collision: '%s' (id 2) in slot %llu, its home slot %llu holds 'first' (id 1): a "
             "lookup visits 2 slots (same home slot)\n",
             other, (unsigned long long)((home + 1) & mask), (unsigned long long)home);
    ck_assert_msg(strstr(r.out, want), "%s", r.out);
    tc_result_free(&r);

    tc_speculo(&r, NULL, 0, "check", "--json", "n", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    struct tc_json_span v, el[2];
    ck_assert(tc_json_get(r.out, r.out_len, "collisions", &v));
    ck_assert_int_eq(tc_json_elements(v.p, v.len, el, 2), 1);
    ck_assert(tc_json_get(el[0].p, el[0].len, "home_name", &v));
    ck_assert(tc_json_is(&v, "\"first\""));
    tc_result_free(&r);
}
END_TEST

TCase *tc_case_debug(void)
{
    TCase *tc = tcase_create("debug");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ls_all_shows_every_state);
    tcase_add_test(tc, ls_all_json_has_state_and_place);
    tcase_add_test(tc, ls_all_after_gc_keeps_only_live);
    tcase_add_test(tc, cat_any_until_collected);
    tcase_add_test(tc, check_sound_segment_says_ok_with_counts);
    tcase_add_test(tc, check_reports_each_corruption_class);
    tcase_add_test(tc, check_verbose_lists_colliding_names);
    return tc;
}
