/*
 * speculo stats: the Prometheus text format parsed line by line and
 * compared with `speculo info`, the atomic -o for node_exporter's textfile
 * collector, the table, the rate view (-w) run as a real process until
 * SIGINT, and the bad arguments of the new options.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "speculo.h"
#include "t_proc.h"
#include "t_util.h"

/* ---- a small parser of the Prometheus text format ---- */

#define MAX_SAMPLES 256
#define MAX_LABELS 4

struct prom_sample {
    char metric[64];
    int nlabels;
    char label[MAX_LABELS][32];
    char value_of[MAX_LABELS][256]; /* unescaped */
    char value[64];
};

struct prom {
    struct prom_sample s[MAX_SAMPLES];
    int n;
    char typed[64][64]; /* metrics in the order of their TYPE line */
    char type[64][16];
    int ntyped;
};

static bool metric_name_ok(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
            return false;
    return true;
}

/* A label value between double quotes, unescaped (\\ \" \n); returns the
 * position after the closing quote. */
static const char *label_value(const char *p, char *out, size_t size)
{
    size_t n = 0;
    ck_assert_int_eq(*p, '"');
    for (p++; *p != '"'; p++) {
        ck_assert_msg(*p && *p != '\n', "unterminated label value");
        char c = *p;
        if (c == '\\') {
            p++;
            ck_assert_msg(*p == '\\' || *p == '"' || *p == 'n', "bad escape \\%c", *p);
            c = *p == 'n' ? '\n' : *p;
        }
        ck_assert_uint_lt(n + 1, size);
        out[n++] = c;
    }
    out[n] = '\0';
    return p + 1;
}

static void parse_sample(struct prom *pr, const char *line)
{
    ck_assert_int_lt(pr->n, MAX_SAMPLES);
    struct prom_sample *s = &pr->s[pr->n++];
    memset(s, 0, sizeof *s);
    size_t n = strcspn(line, "{ ");
    ck_assert_uint_lt(n, sizeof s->metric);
    memcpy(s->metric, line, n);
    ck_assert_msg(metric_name_ok(s->metric), "bad metric name in '%s'", line);
    const char *p = line + n;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            ck_assert_int_lt(s->nlabels, MAX_LABELS);
            size_t k = strcspn(p, "=");
            ck_assert_uint_lt(k, sizeof s->label[0]);
            memcpy(s->label[s->nlabels], p, k);
            p = label_value(p + k + 1, s->value_of[s->nlabels], sizeof s->value_of[0]);
            s->nlabels++;
            if (*p == ',')
                p++;
            else
                ck_assert_msg(*p == '}', "bad label list in '%s'", line);
        }
        p++;
    }
    ck_assert_msg(*p == ' ', "no value in '%s'", line);
    snprintf(s->value, sizeof s->value, "%s", p + 1);
    char *end;
    strtod(s->value, &end);
    ck_assert_msg(*s->value && !*end, "bad value in '%s'", line);
}

static int typed_index(const struct prom *pr, const char *metric)
{
    for (int i = 0; i < pr->ntyped; i++)
        if (!strcmp(pr->typed[i], metric))
            return i;
    return -1;
}

/*
 * Parse a whole exposition, checking the rules of the format: every line a
 * HELP, a TYPE or a sample; HELP then TYPE, once per metric, before its
 * samples; a metric's samples together, before the next metric's HELP.
 */
static void parse_prom(struct prom *pr, const char *text)
{
    memset(pr, 0, sizeof *pr);
    char *copy = strdup(text), *save = NULL, current[64] = "";
    bool help_seen = false;
    ck_assert_msg(*text == '\0' || text[strlen(text) - 1] == '\n', "no final newline");
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[64], rest[256];
        if (!strncmp(line, "# HELP ", 7)) {
            ck_assert_int_eq(sscanf(line + 7, "%63s %255[^\n]", name, rest), 2);
            ck_assert_msg(typed_index(pr, name) < 0, "second HELP for %s", name);
            snprintf(current, sizeof current, "%s", name);
            help_seen = true;
        } else if (!strncmp(line, "# TYPE ", 7)) {
            ck_assert_int_eq(sscanf(line + 7, "%63s %255s", name, rest), 2);
            ck_assert_msg(help_seen && !strcmp(name, current), "TYPE of %s not after its HELP",
                          name);
            ck_assert_msg(typed_index(pr, name) < 0, "second TYPE for %s", name);
            ck_assert_msg(!strcmp(rest, "gauge") || !strcmp(rest, "counter"), "type %s", rest);
            ck_assert_int_lt(pr->ntyped, 64);
            snprintf(pr->typed[pr->ntyped], 64, "%s", name);
            snprintf(pr->type[pr->ntyped++], 16, "%.15s", rest);
            help_seen = false;
        } else {
            ck_assert_msg(line[0] != '#', "unknown comment '%s'", line);
            parse_sample(pr, line);
            ck_assert_msg(!strcmp(pr->s[pr->n - 1].metric, current) && typed_index(pr, current) >= 0,
                          "sample of %s outside its metric's block", pr->s[pr->n - 1].metric);
        }
    }
    free(copy);
}

/* The value of metric for segment; NULL when there is no such sample. */
static const char *prom_value(const struct prom *pr, const char *metric, const char *segment)
{
    for (int i = 0; i < pr->n; i++)
        if (!strcmp(pr->s[i].metric, metric) && pr->s[i].nlabels > 0 &&
            !strcmp(pr->s[i].label[0], "segment") && !strcmp(pr->s[i].value_of[0], segment))
            return pr->s[i].value;
    return NULL;
}

static char *run_out(const char *a, const char *b, const char *c, const char *d)
{
    struct tc_result r;
    tc_speculo(&r, NULL, 0, a, b, c, d, NULL);
    ck_assert_msg(tc_exit(&r) == 0, "speculo %s %s: %d (%s)", a, b ? b : "", tc_exit(&r), r.err);
    free(r.err);
    return r.out;
}

static void make_dir(void)
{
    ck_assert(mkdir(tc_segdir, 0700) == 0 || errno == EEXIST);
}

static void write_corrupt(const char *segment)
{
    char path[TC_PATH + 256];
    make_dir();
    snprintf(path, sizeof path, "%s/%s", tc_segdir, segment);
    tc_write_file(path, "junk", 4);
}

START_TEST(prometheus_output_follows_the_text_format)
{
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open("live", NULL, &w), 0);
    struct speculo_commit_options named = {"cfg", 0, 0};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(speculo_writer_put(w, "abc", 3, &named, NULL), 0);
    tc_put("idle", NULL, "x");
    write_corrupt("broken");

    char *out = run_out("stats", "--prometheus", NULL, NULL);
    struct prom pr;
    parse_prom(&pr, out);

    /* Every numeric key of info, with the value info gives. */
    char *text = run_out("info", "live", NULL, NULL), *save = NULL;
    int numeric = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *sep = strstr(line, ": ");
        *sep = '\0';
        const char *key = line, *val = sep + 2;
        if (!strcmp(key, "writer_alive"))
            val = !strcmp(val, "yes") ? "1" : "0";
        else if (!val[0] || strspn(val, "0123456789") != strlen(val))
            continue;
        char metric[96];
        snprintf(metric, sizeof metric, "speculo_%s", key);
        const char *got = prom_value(&pr, metric, "live");
        ck_assert_msg(got && !strcmp(got, val), "%s: '%s', info says '%s'", metric,
                      got ? got : "(none)", val);
        int t = typed_index(&pr, metric);
        bool counter = !strcmp(key, "last_id") || !strcmp(key, "generation");
        ck_assert_str_eq(pr.type[t], counter ? "counter" : "gauge");
        numeric++;
    }
    ck_assert_int_eq(numeric, 14);
    free(text);

    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    ck_assert_str_eq(prom_value(&pr, "speculo_writer_pid", "live"), pid);
    ck_assert_str_eq(prom_value(&pr, "speculo_writer_alive", "live"), "1");
    ck_assert_str_eq(prom_value(&pr, "speculo_writer_alive", "idle"), "0");
    ck_assert_str_eq(prom_value(&pr, "speculo_segment_ok", "live"), "1");
    ck_assert_ptr_nonnull(prom_value(&pr, "speculo_last_commit_timestamp_seconds", "idle"));
    /* A segment that cannot be read has only segment_ok 0. */
    ck_assert_str_eq(prom_value(&pr, "speculo_segment_ok", "broken"), "0");
    for (int i = 0; i < pr.n; i++)
        ck_assert_msg(strcmp(pr.s[i].value_of[0], "broken") || !strcmp(pr.s[i].metric,
                                                                         "speculo_segment_ok"),
                      "%s of a broken segment", pr.s[i].metric);
    free(out);

    /* The segments named, only. */
    out = run_out("stats", "-p", "idle", NULL);
    parse_prom(&pr, out);
    ck_assert_ptr_null(prom_value(&pr, "speculo_segment_ok", "live"));
    ck_assert_str_eq(prom_value(&pr, "speculo_last_id", "idle"), "1");
    free(out);
    speculo_writer_close(w);
}
END_TEST

/* --label values reach the output escaped, and read back as given. */
START_TEST(prometheus_label_values_are_escaped)
{
    tc_put("s", NULL, "x");
    const char *value = "a \"quoted\" back\\slash\nnewline \xc3\xa9";
    char arg[256];
    snprintf(arg, sizeof arg, "user=%s", value);
    char *out = run_out("stats", "--prometheus", "--label", arg);
    ck_assert_ptr_nonnull(strstr(out, "{segment=\"s\",user=\"a \\\"quoted\\\" back\\\\slash\\nnewline "
                                      "\xc3\xa9\"} "));
    struct prom pr;
    parse_prom(&pr, out);
    ck_assert_int_gt(pr.n, 14);
    for (int i = 0; i < pr.n; i++) {
        ck_assert_int_eq(pr.s[i].nlabels, 2);
        ck_assert_str_eq(pr.s[i].label[1], "user");
        ck_assert_str_eq(pr.s[i].value_of[1], value);
    }
    free(out);
}
END_TEST

static ino_t inode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_ino;
}

/* -o replaces the file by a rename: a reader holding the old one keeps it
 * whole, the new one has all of it, and nothing else is left around. */
START_TEST(output_file_is_replaced_atomically)
{
    tc_put("s", NULL, "x");
    char dir[TC_PATH + 32], file[TC_PATH + 64];
    snprintf(dir, sizeof dir, "%s/textfile", tc_tmp);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(file, sizeof file, "%s/speculo.prom", dir);
    tc_write_file(file, "old contents\n", 13);
    ino_t old = inode_of(file);
    int held = open(file, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(held, 0);

    mode_t mask = umask(027);
    char *out = run_out("stats", "--prometheus", "-o", file);
    umask(mask);
    ck_assert_str_eq(out, "");
    free(out);

    char old_text[64] = "";
    ck_assert_int_eq(read(held, old_text, sizeof old_text - 1), 13);
    ck_assert_str_eq(old_text, "old contents\n");
    close(held);
    ck_assert_int_ne(inode_of(file), old);
    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    ck_assert_int_eq(t_dir_count(dir), 1);

    char *expected = run_out("stats", "--prometheus", NULL, NULL), buf[16384];
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, expected);
    free(expected);

    /* A directory that does not exist: an error, nothing made. */
    struct tc_result r;
    snprintf(file, sizeof file, "%s/missing/speculo.prom", dir);
    tc_speculo(&r, NULL, 0, "stats", "-p", "-o", file, NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_ptr_nonnull(strstr(r.err, "cannot create a temporary file next to it"));
    tc_result_free(&r);
    ck_assert_int_eq(t_dir_count(dir), 1);
}
END_TEST

START_TEST(table_has_a_line_per_segment)
{
    tc_put("one", NULL, "x");
    tc_put("one", NULL, "y");
    write_corrupt("two");
    char *out = run_out("stats", NULL, NULL, NULL);
    char *save = NULL, *lines[4];
    int n = 0;
    for (char *l = strtok_r(out, "\n", &save); l && n < 4; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(lines[0], "SEGMENT  FORMAT  GEN  CAPACITY     DATA  USED  DEAD  LIVE  "
                               "EXPIRED  OBSOLETE  NAMED  FIRST_ID  LAST_ID  WRITER");
    ck_assert_int_eq(strncmp(lines[1], "one ", 4), 0);
    /* LIVE and LAST_ID end where their titles end. */
    long live_end = strstr(lines[0], "LIVE") - lines[0] + 4;
    ck_assert_int_eq(lines[1][live_end - 1], '2');
    ck_assert_int_eq(lines[1][live_end], ' ');
    ck_assert_str_eq(lines[2], "two      error: segment file is corrupt or not a segment");
    free(out);

    struct tc_result r;
    tc_speculo(&r, NULL, 0, "stats", "one", "nosuch", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_str_eq(r.err, "speculo: nosuch: no such segment\n");
    ck_assert_ptr_nonnull(strstr(r.out, "\none "));
    tc_result_free(&r);
}
END_TEST

/* ---- the rate view ---- */

/* The next line the child prints, within T_PATIENCE_MS (fails the test if
 * none). */
static void read_line(struct tc_child *c, char *buf, size_t size)
{
    size_t n = 0;
    int64_t t0 = t_mono_ns();
    while (n + 1 < size) {
        int left = (int)(T_PATIENCE_MS - t_ms_since(t0));
        ck_assert_msg(left > 0 && tc_read(c, buf + n, 1, left) == 1, "no line from stats -w");
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
}

struct watch_line {
    char time[64], segment[64], commits[64], bytes[64], gcs[16], live[16];
};

/* Read lines until one for `segment` satisfies want(); returns it. */
static void wait_line(struct tc_child *c, const char *segment, struct watch_line *l,
                      bool (*want)(const struct watch_line *))
{
    char buf[512];
    for (;;) {
        read_line(c, buf, sizeof buf);
        /* BYTES/S is "N unit" (or "~N unit"): 7 fields; or "-": 6. */
        char f[8][64];
        int n = sscanf(buf, "%63s %63s %63s %63s %63s %63s %63s %63s", f[0], f[1], f[2], f[3],
                       f[4], f[5], f[6], f[7]);
        ck_assert_msg(n >= 3, "bad line '%s'", buf);
        if (strcmp(f[1], segment) != 0 || !strcmp(f[2], "error:"))
            continue;
        ck_assert_msg(n == 6 || n == 7, "bad line '%s'", buf);
        snprintf(l->time, sizeof l->time, "%s", f[0]);
        snprintf(l->segment, sizeof l->segment, "%s", f[1]);
        snprintf(l->commits, sizeof l->commits, "%s", f[2]);
        if (n == 6)
            snprintf(l->bytes, sizeof l->bytes, "%s", f[3]);
        else
            snprintf(l->bytes, sizeof l->bytes, "%.12s %.12s", f[3], f[4]);
        snprintf(l->gcs, sizeof l->gcs, "%.15s", f[n - 2]);
        snprintf(l->live, sizeof l->live, "%.15s", f[n - 1]);
        if (want(l))
            return;
    }
}

static bool any(const struct watch_line *l)
{
    (void)l;
    return true;
}

static bool committed(const struct watch_line *l)
{
    return strcmp(l->commits, "-") && atof(l->commits) > 0;
}

static bool collected(const struct watch_line *l)
{
    return strcmp(l->gcs, "-") && atoi(l->gcs) > 0;
}

static bool no_rate(const struct watch_line *l)
{
    return !strcmp(l->commits, "-");
}

START_TEST(watch_prints_rates_until_interrupted)
{
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open("w", NULL, &w), 0);
    ck_assert_int_eq(speculo_writer_put(w, "first", 5, NULL, NULL), 0);

    struct tc_child c;
    tc_spawn(&c, "stats", "-w", "0.05", "w", NULL);
    char header[256];
    read_line(&c, header, sizeof header);
    ck_assert_str_eq(header, "TIME                      SEGMENT   COMMITS/S       BYTES/S   GCS"
                             "      LIVE");
    struct watch_line l;
    wait_line(&c, "w", &l, any);
    ck_assert_msg(strlen(l.time) == 24 && l.time[10] == 'T', "time '%s'", l.time);

    /* Commits show as a rate, with the bytes they took. */
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(speculo_writer_put(w, "0123456789", 10, NULL, NULL), 0);
    wait_line(&c, "w", &l, committed);
    ck_assert_str_eq(l.gcs, "0");
    ck_assert_msg(l.bytes[0] != '~' && l.bytes[0] != '-' && atof(l.bytes) > 0, "bytes '%s'",
                  l.bytes);

    /* Across a collection bytes_used shrinks: the bytes are an estimate. */
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    wait_line(&c, "w", &l, collected);
    ck_assert_msg(l.bytes[0] == '~', "bytes across a collection '%s'", l.bytes);
    ck_assert_str_eq(l.live, "21");

    /* A segment made anew has no rate at first. */
    speculo_writer_close(w);
    ck_assert_int_eq(speculo_segment_remove("w", 0), 0);
    ck_assert_int_eq(speculo_writer_open("w", NULL, &w), 0);
    ck_assert_int_eq(speculo_writer_put(w, "again", 5, NULL, NULL), 0);
    wait_line(&c, "w", &l, no_rate);
    wait_line(&c, "w", &l, any);
    ck_assert_str_eq(l.live, "1");
    speculo_writer_close(w);

    ck_assert_int_eq(kill(c.pid, SIGINT), 0);
    int status;
    ck_assert(tc_wait(&c, 10000, &status));
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT, "status %#x", status);
    tc_kill(&c);
}
END_TEST

/* ---- bad arguments ---- */

START_TEST(bad_arguments_are_usage_errors)
{
    static const struct {
        const char *args[6];
        const char *err;
    } cases[] = {
        {{"info", "--json"}, "speculo info: missing segment name"},
        {{"info", "--json", "a", "b"}, "speculo info: too many arguments"},
        {{"segments", "--long", "--json"}, "speculo segments: --long and --json cannot"},
        {{"segments", "-l", "x"}, "speculo segments: too many arguments"},
        {{"stats", "-w", "0"}, "speculo stats: invalid interval '0'"},
        {{"stats", "-w", "-1"}, "speculo stats: invalid interval '-1'"},
        {{"stats", "--watch", "soon"}, "speculo stats: invalid interval 'soon'"},
        {{"stats", "-w"}, "speculo stats: option requires an argument -- 'w'"},
        {{"stats", "-w", "1", "--prometheus"}, "speculo stats: --watch prints for people"},
        {{"stats", "-w", "1", "-o", "f"}, "speculo stats: --watch prints for people"},
        {{"stats", "--label", "a=b"}, "speculo stats: --label goes with --prometheus"},
        {{"stats", "-p", "--label", "9a=b"}, "speculo stats: invalid label '9a=b'"},
        {{"stats", "-p", "--label", "segment=b"}, "speculo stats: invalid label 'segment=b'"},
        {{"stats", "-p", "--label", "__a=b"}, "speculo stats: invalid label '__a=b'"},
        {{"stats", "-p", "--label", "novalue"}, "speculo stats: invalid label 'novalue'"},
        {{"stats", "-p", "--label", "a=\xff"}, "speculo stats: invalid label 'a=\\xff': the "
                                               "value must be UTF-8"},
        {{"stats", "-o", ""}, "speculo stats: empty output file name"},
        {{"stats", "-o"}, "speculo stats: option requires an argument -- 'o'"},
        {{"stats", "bad/name"}, "speculo stats: invalid segment name 'bad/name'"},
        {{"stats", "--bogus"}, "speculo stats: unrecognized option '--bogus'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tc_result r;
        const char *const *a = cases[i].args;
        tc_speculo(&r, NULL, 0, a[0], a[1], a[2], a[3], a[4], NULL);
        ck_assert_msg(tc_exit(&r) == 2, "case %zu (%s %s): status %d (%s)", i, a[0], a[1],
                      tc_exit(&r), r.err);
        ck_assert_msg(!strncmp(r.err, cases[i].err, strlen(cases[i].err)),
                      "case %zu: stderr '%s', want '%s'", i, r.err, cases[i].err);
        ck_assert_msg(strstr(r.err, "--help"), "case %zu: no hint in '%s'", i, r.err);
        ck_assert_uint_eq(r.out_len, 0);
        tc_result_free(&r);
    }
}
END_TEST

TCase *tc_case_stats(void)
{
    TCase *tc = tcase_create("stats");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, prometheus_output_follows_the_text_format);
    tcase_add_test(tc, prometheus_label_values_are_escaped);
    tcase_add_test(tc, output_file_is_replaced_atomically);
    tcase_add_test(tc, table_has_a_line_per_segment);
    tcase_add_test(tc, watch_prints_rates_until_interrupted);
    tcase_add_test(tc, bad_arguments_are_usage_errors);
    return tc;
}
