/*
 * info --json and segments --long / --json: the facts of `speculo info`,
 * typed, for every kind of segment (written to, empty, with a live writer,
 * corrupt), checked against info's own text.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "speculo.h"
#include "t_proc.h"

static void run_ok(struct tc_result *r, const char *a, const char *b, const char *c)
{
    tc_speculo(r, NULL, 0, a, b, c, NULL);
    ck_assert_msg(tc_exit(r) == 0, "speculo %s %s %s: %d (%s)", a, b ? b : "", c ? c : "",
                  tc_exit(r), r->err);
    ck_assert_uint_eq(r->err_len, 0);
}

/* How info's text writes a time. */
static void iso_ns(long long ns, char *buf, size_t size)
{
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    char day[32];
    gmtime_r(&secs, &tm);
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%09lldZ", day, ns % 1000000000);
}

/* Does the JSON value say what the text value says? Numbers as numbers,
 * yes/no of writer_alive as booleans, "-" as null, the rest as strings;
 * a number followed by a remark, "2 (this library reads 1)", as the
 * number. */
static bool same_value(const char *key, const char *text, const struct tc_json_span *v)
{
    size_t digits = strspn(text, "0123456789");
    char want[512];
    if (!strcmp(text, "-"))
        return tc_json_is(v, "null");
    if (!strcmp(key, "writer_alive"))
        return tc_json_is(v, !strcmp(text, "yes") ? "true" : "false");
    if (digits > 0 && (text[digits] == '\0' || text[digits] == ' ')) {
        snprintf(want, sizeof want, "%.*s", (int)digits, text);
        return tc_json_is(v, want);
    }
    snprintf(want, sizeof want, "\"%s\"", text);
    return tc_json_is(v, want);
}

/*
 * The object `json` has exactly the keys of info's `text`, with the same
 * values, plus KEY_ns for each time of a readable segment. Returns the
 * number of keys compared.
 */
static int assert_json_is_text(const char *json, size_t len, const char *text)
{
    struct tc_json_span keys[64], values[64];
    int members = tc_json_members(json, len, keys, values, 64);
    ck_assert_msg(members > 0, "not an object: %s", json);
    char *copy = strdup(text), *save = NULL;
    int lines = 0, times = 0;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *sep = strstr(line, ": ");
        ck_assert_ptr_nonnull(sep);
        *sep = '\0';
        const char *key = line, *val = sep + 2;
        struct tc_json_span v;
        ck_assert_msg(tc_json_get(json, len, key, &v), "no \"%s\" in %s", key, json);
        ck_assert_msg(same_value(key, val, &v), "%s: text '%s', JSON '%.*s'", key, val,
                      (int)v.len, v.p);
        lines++;
        if (strcmp(key, "created") != 0 && strcmp(key, "last_commit") != 0)
            continue;
        /* The time also as a number, the same instant. */
        char key_ns[64], iso[64];
        snprintf(key_ns, sizeof key_ns, "%s_ns", key);
        ck_assert_msg(tc_json_get(json, len, key_ns, &v), "no %s in %s", key_ns, json);
        times++;
        if (!strcmp(val, "-")) {
            ck_assert(tc_json_is(&v, "null"));
            continue;
        }
        iso_ns(strtoll(v.p, NULL, 10), iso, sizeof iso);
        ck_assert_str_eq(iso, val);
    }
    free(copy);
    ck_assert_int_eq(members, lines + times);
    return lines;
}

static void info_text(const char *segment, char **text)
{
    struct tc_result r;
    run_ok(&r, "info", segment, NULL);
    *text = r.out;
    free(r.err);
}

/* Wait (at most T_PATIENCE_MS) until chunk id of segment is no longer live. */
static void wait_expired(const char *segment, uint64_t id)
{
    speculo_reader *rd;
    speculo_chunk c;
    int64_t t0 = t_mono_ns();
    ck_assert_int_eq(speculo_reader_open(segment, &rd), 0);
    while (speculo_reader_get_id(rd, id, &c) == 0) {
        ck_assert_msg(t_ms_since(t0) < T_PATIENCE_MS, "chunk %llu did not expire",
                      (unsigned long long)id);
        t_sleep_ms(5);
    }
    speculo_reader_close(rd);
}

/* A segment with every kind of chunk, and this process as its writer. */
static speculo_writer *busy_segment(const char *segment)
{
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open(segment, NULL, &w), 0);
    struct speculo_commit_options named = {"cfg", 0, 0}, soon = {NULL, 1000000, 0};
    uint64_t id;
    ck_assert_int_eq(speculo_writer_put(w, "v1", 2, &named, NULL), 0);
    ck_assert_int_eq(speculo_writer_put(w, "v2", 2, &named, NULL), 0);
    ck_assert_int_eq(speculo_writer_put(w, "stream", 6, NULL, NULL), 0);
    ck_assert_int_eq(speculo_writer_put(w, "brief", 5, &soon, &id), 0);
    wait_expired(segment, id);
    return w;
}

START_TEST(info_json_has_the_keys_and_values_of_info)
{
    speculo_writer *w = busy_segment("s");
    char *text;
    info_text("s", &text);
    struct tc_result r;
    run_ok(&r, "info", "--json", "s");
    ck_assert_msg(tc_json_valid(r.out, r.out_len), "invalid JSON: %s", r.out);
    ck_assert_int_eq(assert_json_is_text(r.out, r.out_len, text), 18);
    /* What the segment is, typed. */
    struct tc_json_span v;
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    ck_assert(tc_json_get(r.out, r.out_len, "writer_pid", &v) && tc_json_is(&v, pid));
    ck_assert(tc_json_get(r.out, r.out_len, "writer_alive", &v) && tc_json_is(&v, "true"));
    ck_assert(tc_json_get(r.out, r.out_len, "live_chunks", &v) && tc_json_is(&v, "2"));
    ck_assert(tc_json_get(r.out, r.out_len, "expired_chunks", &v) && tc_json_is(&v, "1"));
    ck_assert(tc_json_get(r.out, r.out_len, "obsolete_chunks", &v) && tc_json_is(&v, "1"));
    ck_assert(tc_json_get(r.out, r.out_len, "status", &v) && tc_json_is(&v, "\"ok\""));
    tc_result_free(&r);
    free(text);
    speculo_writer_close(w);

    /* A segment without a commit: its last commit is null. */
    ck_assert_int_eq(speculo_writer_open("empty", NULL, &w), 0);
    speculo_writer_close(w);
    info_text("empty", &text);
    run_ok(&r, "info", "-j", "empty");
    assert_json_is_text(r.out, r.out_len, text);
    ck_assert(tc_json_get(r.out, r.out_len, "last_commit", &v) && tc_json_is(&v, "null"));
    ck_assert(tc_json_get(r.out, r.out_len, "writer_alive", &v) && tc_json_is(&v, "false"));
    tc_result_free(&r);
    free(text);

    tc_speculo(&r, NULL, 0, "info", "--json", "nosuch", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_str_eq(r.err, "speculo: nosuch: no such segment\n");
    ck_assert_uint_eq(r.out_len, 0);
    tc_result_free(&r);
}
END_TEST

static void write_corrupt(const char *segment, const char *bytes)
{
    char path[TC_PATH + 256];
    ck_assert(mkdir(tc_segdir, 0700) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/%s", tc_segdir, segment);
    tc_write_file(path, bytes, strlen(bytes));
}

/* A segment that cannot be read is described as info describes it. */
START_TEST(info_json_of_a_corrupt_segment_says_what_info_says)
{
    write_corrupt("bad", "not a segment at all");
    char *text;
    info_text("bad", &text);
    ck_assert_ptr_nonnull(strstr(text, "status: error\n"));
    struct tc_result r;
    run_ok(&r, "info", "--json", "bad");
    ck_assert_msg(tc_json_valid(r.out, r.out_len), "invalid JSON: %s", r.out);
    assert_json_is_text(r.out, r.out_len, text);
    struct tc_json_span v;
    ck_assert(tc_json_get(r.out, r.out_len, "file_size", &v) && tc_json_is(&v, "20"));
    tc_result_free(&r);
    free(text);
}
END_TEST

START_TEST(segments_json_is_an_array_of_info_json)
{
    struct tc_result r;
    run_ok(&r, "segments", "--json", NULL);
    ck_assert_str_eq(r.out, "[]\n"); /* no directory yet */
    tc_result_free(&r);

    speculo_writer *w = busy_segment("mid");
    tc_put("alpha", NULL, "a");
    tc_put("zulu", "n", "z");
    write_corrupt("bad", "garbage");
    static const char *const order[] = {"alpha", "bad", "mid", "zulu"};

    run_ok(&r, "segments", "--json", NULL);
    ck_assert_msg(tc_json_valid(r.out, r.out_len), "invalid JSON: %s", r.out);
    struct tc_json_span items[8];
    ck_assert_int_eq(tc_json_elements(r.out, r.out_len, items, 8), 4);
    for (int i = 0; i < 4; i++) {
        struct tc_json_span name;
        char want[64];
        ck_assert(tc_json_get(items[i].p, items[i].len, "segment", &name));
        snprintf(want, sizeof want, "\"%s\"", order[i]);
        ck_assert_msg(tc_json_is(&name, want), "element %d is %.*s", i, (int)name.len, name.p);
        /* Each element is what info --json says of the segment. */
        char *text;
        info_text(order[i], &text);
        assert_json_is_text(items[i].p, items[i].len, text);
        free(text);
    }
    tc_result_free(&r);
    speculo_writer_close(w);
}
END_TEST

/* Split a line into blank-separated fields (in place); their count. */
static int fields(char *line, char **f, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " ", &save); tok && n < max; tok = strtok_r(NULL, " ", &save))
        f[n++] = tok;
    return n;
}

START_TEST(segments_long_prints_one_line_per_segment)
{
    speculo_writer *w = busy_segment("held");
    tc_put("done", NULL, "x");
    write_corrupt("bad", "garbage!");
    speculo_writer *empty;
    ck_assert_int_eq(speculo_writer_open("fresh", NULL, &empty), 0);
    speculo_writer_close(empty);

    struct tc_result r;
    run_ok(&r, "segments", "--long", NULL);
    char *save = NULL, *lines[8];
    int n = 0;
    for (char *l = strtok_r(r.out, "\n", &save); l && n < 8; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    ck_assert_int_eq(n, 4);
    ck_assert_str_eq(lines[0] + strspn(lines[0], "bad "), "8  error: segment file is corrupt or "
                                                          "not a segment");
    char *f[8], pid[32];
    snprintf(pid, sizeof pid, "%d/alive", (int)getpid());
    static const char *const want[3][4] = {
        {"done", "4194304", "1", "-"}, {"fresh", "4194304", "0", "-"}, {"held", "4194304", "2", NULL}};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fields(lines[i + 1], f, 8), 5);
        for (int k = 0; k < 3; k++)
            ck_assert_str_eq(f[k], want[i][k]);
        ck_assert_str_eq(f[3], want[i][3] ? want[i][3] : pid);
        if (i == 1)
            ck_assert_str_eq(f[4], "-");
        else
            ck_assert_msg(strlen(f[4]) == 24 && f[4][10] == 'T' && f[4][23] == 'Z', "'%s'", f[4]);
    }
    tc_result_free(&r);
    speculo_writer_close(w);
}
END_TEST

TCase *tc_case_info_json(void)
{
    TCase *tc = tcase_create("info_json");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, info_json_has_the_keys_and_values_of_info);
    tcase_add_test(tc, info_json_of_a_corrupt_segment_says_what_info_says);
    tcase_add_test(tc, segments_json_is_an_array_of_info_json);
    tcase_add_test(tc, segments_long_prints_one_line_per_segment);
    return tc;
}
