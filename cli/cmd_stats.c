/*
 * speculo stats [--prometheus [--label NAME=VALUE]...] [-o FILE] [SEG...]
 * speculo stats -w SECONDS [SEG...]
 *
 * The numbers of `speculo info` for monitoring: a table for people, the
 * Prometheus text format for node_exporter's textfile collector (written
 * atomically with -o, so that the collector never reads half a file), and
 * a rate view that prints commits/s and bytes/s every few seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char stats_help[] =
    "Usage: speculo stats [--prometheus [--label NAME=VALUE]...] [-o FILE] [SEG...]\n"
    "       speculo stats --watch SECONDS [SEG...]\n"
    "\n"
    "The numbers of 'speculo info' for each segment SEG (every segment of the\n"
    "segment directory when none is given): a table, one line per segment.\n"
    "\n"
    "Options:\n"
    "  -p, --prometheus        the Prometheus text format instead: every numeric\n"
    "                          key of 'speculo info' as speculo_KEY{segment=\"SEG\"},\n"
    "                          with # HELP and # TYPE lines\n"
    "  -l, --label NAME=VALUE  add this label to every sample (--prometheus; may\n"
    "                          be repeated), e.g. to tell users or hosts apart\n"
    "  -o, --output FILE       write to FILE instead of stdout, atomically: a\n"
    "                          temporary file in FILE's directory renamed over it\n"
    "                          (for node_exporter's textfile collector)\n"
    "  -w, --watch SECONDS     every SECONDS until interrupted, one line per\n"
    "                          segment: the commits and the bytes committed per\n"
    "                          second since the previous line, the collections\n"
    "                          in between and the live chunks\n"
    "  -h, --help              show this help\n";

#define MAX_LABELS 8

struct stats_args {
    bool prometheus;
    const char *output;
    int64_t watch_ns; /* 0: no --watch */
    const char *label_name[MAX_LABELS];
    const char *label_value[MAX_LABELS];
    size_t labels;
    char **segments; /* the operands, or NULL for all */
    size_t nsegments;
};

/* A label name of the Prometheus data model, not reserved ("__...") and
 * not ours ("segment"). */
static bool label_name_ok(const char *s, size_t n)
{
    if (n == 0 || (n >= 2 && s[0] == '_' && s[1] == '_') || (n == 7 && !strncmp(s, "segment", 7)))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!letter && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* --label NAME=VALUE: the '=' is overwritten, argv being ours. */
static int label_option(const char *prog, char *arg, struct stats_args *a)
{
    char *eq = strchr(arg, '=');
    if (!eq || !label_name_ok(arg, (size_t)(eq - arg)))
        return usage_error(prog,
                           "invalid label '%s': NAME=VALUE, NAME of [A-Za-z0-9_] not starting "
                           "with a digit or '__', and not 'segment'",
                           printable(arg));
    if (!valid_utf8(eq + 1))
        return usage_error(prog, "invalid label '%s': the value must be UTF-8", printable(arg));
    if (a->labels == MAX_LABELS)
        return usage_error(prog, "too many labels (at most %d)", MAX_LABELS);
    *eq = '\0';
    a->label_name[a->labels] = arg;
    a->label_value[a->labels++] = eq + 1;
    return CLI_CONTINUE;
}

static int stats_option(int opt, char **argv, struct stats_args *a)
{
    switch (opt) {
    case 'p':
        a->prometheus = true;
        return CLI_CONTINUE;
    case 'o':
        if (!*optarg)
            return usage_error(argv[0], "empty output file name");
        a->output = optarg;
        return CLI_CONTINUE;
    case 'l':
        return label_option(argv[0], optarg, a);
    case 'w':
        if (!parse_seconds(optarg, &a->watch_ns) || a->watch_ns == 0)
            return usage_error(argv[0], "invalid interval '%s': seconds, more than 0",
                               printable(optarg));
        return CLI_CONTINUE;
    default:
        return common_option(opt, argv[0], stats_help);
    }
}

static int parse_stats(int argc, char **argv, struct stats_args *a)
{
    static const struct option longopts[] = {
        {"prometheus", no_argument, NULL, 'p'},   {"label", required_argument, NULL, 'l'},
        {"output", required_argument, NULL, 'o'}, {"watch", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int opt;
    memset(a, 0, sizeof *a);
    while ((opt = cli_getopt(argc, argv, "pl:o:w:h", longopts)) != -1) {
        int status = stats_option(opt, argv, a);
        if (status != CLI_CONTINUE)
            return status;
    }
    if (a->watch_ns && (a->prometheus || a->output))
        return usage_error(argv[0], "--watch prints for people: not with --prometheus or -o");
    if (a->labels && !a->prometheus)
        return usage_error(argv[0], "--label goes with --prometheus");
    for (int i = optind; i < argc; i++) {
        int status = segment_name_option(argv[0], argv[i]);
        if (status != CLI_CONTINUE)
            return status;
    }
    a->segments = argc > optind ? argv + optind : NULL;
    a->nsegments = (size_t)(argc - optind);
    return CLI_CONTINUE;
}

/* ---- the reports ---- */

struct reports {
    struct seg_report *v;
    size_t n;
};

static void reports_free(struct reports *r)
{
    for (size_t i = 0; i < r->n; i++)
        seg_report_free(&r->v[i]);
    free(r->v);
}

/*
 * The reports of the segments asked for, in order. A segment named on the
 * command line that does not exist is an error (reported; the others are
 * still given); one of the directory's that is removed meanwhile is left
 * out. EXIT_OK or EXIT_ERR.
 */
static int load_reports(char **names, size_t count, bool named, struct reports *out)
{
    int status = EXIT_OK;
    out->n = 0;
    out->v = calloc(count ? count : 1, sizeof *out->v);
    if (!out->v)
        return fail("stats", "%s", strerror(ENOMEM));
    for (size_t i = 0; i < count; i++) {
        int rc = seg_report_load(names[i], &out->v[out->n]);
        if (rc == 0)
            out->n++;
        else if (rc == -ENOENT && named)
            status = fail(names[i], "no such segment");
        else if (rc != -ENOENT)
            status = fail_code(names[i], rc);
    }
    return status;
}

/* The segments to report: those named, or all of the directory's. */
struct names {
    char **v;
    size_t n;
    bool listed; /* from the directory: v is ours to free */
};

static int names_get(const struct stats_args *a, struct names *nm)
{
    nm->listed = !a->segments;
    if (nm->listed)
        return list_segments(&nm->v, &nm->n);
    nm->v = a->segments;
    nm->n = a->nsegments;
    return EXIT_OK;
}

static void names_free(struct names *nm)
{
    if (nm->listed)
        free_names(nm->v, nm->n);
}

/* ---- Prometheus text format ---- */

/* A label value: backslash, double quote and newline escaped. */
static void prom_label_value(FILE *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(out, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
}

static void prom_sample_start(FILE *out, const char *metric, const char *segment,
                              const struct stats_args *a)
{
    fprintf(out, "speculo_%s{segment=\"", metric);
    prom_label_value(out, segment);
    fputc('"', out);
    for (size_t i = 0; i < a->labels; i++) {
        fprintf(out, ",%s=\"", a->label_name[i]);
        prom_label_value(out, a->label_value[i]);
        fputc('"', out);
    }
    fputs("} ", out);
}

static void prom_header(FILE *out, const char *metric, const char *help, bool counter)
{
    fprintf(out, "# HELP speculo_%s %s\n# TYPE speculo_%s %s\n", metric, help, metric,
            counter ? "counter" : "gauge");
}

/* A time as seconds since the epoch, exactly: no float rounding. */
static void prom_time_metric(FILE *out, const struct reports *r, const struct stats_args *a,
                             const char *metric, const char *help, size_t offset)
{
    prom_header(out, metric, help, false);
    for (size_t i = 0; i < r->n; i++) {
        int64_t ns;
        memcpy(&ns, (const char *)&r->v[i].info + offset, sizeof ns);
        if (!r->v[i].ok || ns <= 0)
            continue;
        prom_sample_start(out, metric, r->v[i].segment, a);
        fprintf(out, "%lld.%09lld\n", (long long)(ns / 1000000000), (long long)(ns % 1000000000));
    }
}

/* Metric by metric, as the format wants: its HELP and TYPE, then one
 * sample per segment. A segment that cannot be read has only
 * speculo_segment_ok 0. */
static void print_prometheus(FILE *out, const struct reports *r, const struct stats_args *a)
{
    prom_header(out, "segment_ok",
                "1 when the segment can be read (info status: ok), 0 when it cannot (corrupt, "
                "another format version); its other metrics are then absent.",
                false);
    for (size_t i = 0; i < r->n; i++) {
        prom_sample_start(out, "segment_ok", r->v[i].segment, a);
        fputs(r->v[i].ok ? "1\n" : "0\n", out);
    }
    for (size_t k = 0; k < info_key_count; k++) {
        const struct info_key *key = &info_keys[k];
        prom_header(out, key->key, key->help, key->counter);
        for (size_t i = 0; i < r->n; i++) {
            if (!r->v[i].ok)
                continue;
            prom_sample_start(out, key->key, r->v[i].segment, a);
            fprintf(out, "%llu\n", (unsigned long long)info_value(key, &r->v[i].info));
        }
    }
    prom_time_metric(out, r, a, "created_timestamp_seconds",
                     "When the segment was created, in seconds since the epoch.",
                     offsetof(struct speculo_segment_info, created_ns));
    prom_time_metric(out, r, a, "last_commit_timestamp_seconds",
                     "When the newest chunk was committed, in seconds since the epoch; absent "
                     "before the first commit.",
                     offsetof(struct speculo_segment_info, last_commit_ns));
}

/* ---- the table ---- */

static const char *const table_header[] = {
    "SEGMENT", "FORMAT",  "GEN",      "CAPACITY", "DATA",     "USED",    "DEAD",
    "LIVE",    "EXPIRED", "OBSOLETE", "NAMED",    "FIRST_ID", "LAST_ID", "WRITER",
};
enum { TABLE_COLS = sizeof table_header / sizeof table_header[0] };

/* One row: the name, info_keys in order, but writer_pid and writer_alive
 * in one WRITER column. */
static int table_add_report(struct table *t, const struct seg_report *rep)
{
    char cells[TABLE_COLS][48], error[300], why[256];
    const char *row[TABLE_COLS];
    size_t n = 0;
    row[n++] = rep->segment;
    if (!rep->ok) {
        snprintf(error, sizeof error, "error: %s",
                 seg_report_text_value(rep, "error", why, sizeof why) ? why : "unreadable");
        row[n++] = error;
        return table_row(t, row, n);
    }
    for (size_t k = 0; k < info_key_count && n + 1 < TABLE_COLS; k++) {
        if (!strncmp(info_keys[k].key, "writer_", 7))
            continue;
        snprintf(cells[n], sizeof cells[n], "%llu",
                 (unsigned long long)info_value(&info_keys[k], &rep->info));
        row[n] = cells[n];
        n++;
    }
    format_writer(&rep->info, cells[n], sizeof cells[n]);
    row[n] = cells[n];
    return table_row(t, row, n + 1);
}

static int print_table(FILE *out, const struct reports *r)
{
    struct table t;
    /* Every column but the name and the writer is a number. */
    table_init(&t, table_header, TABLE_COLS, ((1u << TABLE_COLS) - 1) & ~1u & ~(1u << 13));
    int rc = 0;
    for (size_t i = 0; i < r->n && rc == 0; i++)
        rc = table_add_report(&t, &r->v[i]);
    if (rc == 0)
        table_print(out, &t, true);
    table_free(&t);
    return rc;
}

/* ---- output, to stdout or atomically to a file ---- */

static int print_stats(FILE *out, const struct reports *r, const struct stats_args *a)
{
    if (a->prometheus) {
        print_prometheus(out, r, a);
        return 0;
    }
    return print_table(out, r);
}

/*
 * A reader of `path` (node_exporter's collector) sees the old file or the
 * new one, never part of one: the text goes to a temporary file in the
 * same directory (a dot name without .prom, which the collector skips),
 * is synced, and is renamed over `path`. It is readable as a file created
 * by open(2) would be (0666 less the umask): the collector runs as another
 * user.
 */
static int write_atomically(const char *path, const struct reports *r, const struct stats_args *a)
{
    const char *slash = strrchr(path, '/');
    char tmp[PATH_MAX];
    int n = slash
                ? snprintf(tmp, sizeof tmp, "%.*s/.%s.XXXXXX", (int)(slash - path), path, slash + 1)
                : snprintf(tmp, sizeof tmp, ".%s.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return fail(path, "%s", strerror(ENAMETOOLONG));
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return fail(path, "cannot create a temporary file next to it: %s", strerror(errno));
    mode_t mask = umask(0);
    umask(mask);
    FILE *f = fdopen(fd, "w");
    int err = f && fchmod(fd, 0666 & ~mask) == 0 ? 0 : errno;
    if (!err && print_stats(f, r, a) < 0)
        err = ENOMEM;
    if (!err && (fflush(f) == EOF || ferror(f) || fsync(fd) < 0))
        err = errno ? errno : EIO;
    if (f ? fclose(f) == EOF && !err : close(fd) < 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) < 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return fail(path, "%s", strerror(err));
    }
    return EXIT_OK;
}

static int stats_once(const struct stats_args *a)
{
    struct names nm;
    int status = names_get(a, &nm);
    if (status != EXIT_OK)
        return status;
    struct reports r;
    status = load_reports(nm.v, nm.n, !nm.listed, &r);
    int written = EXIT_ERR;
    if (r.v && a->output) {
        written = write_atomically(a->output, &r, a);
    } else if (r.v) {
        written = print_stats(stdout, &r, a) < 0 ? fail("stats", "%s", strerror(ENOMEM)) : EXIT_OK;
        written = finish_stdout(written);
    }
    reports_free(&r);
    names_free(&nm); /* after the reports, which point to the names */
    return written != EXIT_OK ? written : status;
}

/* ---- the rate view ---- */

/* What a segment looked like at the previous line. */
struct sample {
    char name[SPECULO_SEGMENT_NAME_MAX + 1];
    bool seen;     /* in the latest round */
    int64_t at_ns; /* monotonic */
    struct speculo_segment_info info;
};

struct samples {
    struct sample *v;
    size_t n, cap;
};

static struct sample *sample_of(struct samples *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].name, name))
            return &s->v[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct sample *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return NULL;
        s->v = v;
        s->cap = cap;
    }
    struct sample *new = &s->v[s->n++];
    memset(new, 0, sizeof *new);
    snprintf(new->name, sizeof new->name, "%s", name);
    return new;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "123.4 KiB" */
static void format_bytes(double v, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/*
 * The rates between two looks at a segment. Chunk ids count commits and
 * go on across collections, so commits/s is exact. bytes_used only grows
 * between collections (records are appended, never taken back), so its
 * growth is the bytes committed, records' headers and padding included;
 * but a collection starts a new file holding only the live records, so
 * across one (generation changed) the growth is unknown: it is then
 * estimated as the commits times the mean record size of the new file,
 * and marked with '~'. A segment created again (created_ns changed) has
 * no rate yet.
 */
static void rate_cells(const struct sample *prev, const struct speculo_segment_info *now,
                       int64_t now_ns, char *commits, char *bytes, char *gcs, size_t size)
{
    const struct speculo_segment_info *was = &prev->info;
    double dt = (double)(now_ns - prev->at_ns) / 1e9;
    if (!prev->at_ns || was->created_ns != now->created_ns || now->last_id < was->last_id ||
        now->generation < was->generation || dt <= 0) {
        snprintf(commits, size, "-");
        snprintf(bytes, size, "-");
        snprintf(gcs, size, "-");
        return;
    }
    uint64_t ncommits = now->last_id - was->last_id;
    uint64_t ngcs = now->generation - was->generation;
    snprintf(commits, size, "%.1f", (double)ncommits / dt);
    snprintf(gcs, size, "%llu", (unsigned long long)ngcs);
    if (ngcs == 0 && now->bytes_used >= was->bytes_used) {
        format_bytes((double)(now->bytes_used - was->bytes_used) / dt, bytes, size);
        return;
    }
    uint64_t records = now->live_chunks + now->expired_chunks + now->obsolete_chunks;
    double mean = records ? (double)now->bytes_used / (double)records : 0;
    bytes[0] = '~';
    format_bytes((double)ncommits * mean / dt, bytes + 1, size - 1);
}

#define WATCH_FORMAT "%-24s  %-*s  %10s  %12s  %4s  %8s\n"

/* The line of one segment, and its sample taken for the next round. */
static void watch_line(FILE *out, const char *when, int name_width, const char *segment,
                       struct sample *prev)
{
    struct seg_report rep;
    int rc = seg_report_load(segment, &rep);
    int64_t at = mono_ns();
    if (rc < 0 || !rep.ok) {
        char why[256];
        const char *reason = rc == -ENOENT ? "no such segment"
                             : rc < 0      ? speculo_strerror(rc)
                                           : seg_report_text_value(&rep, "error", why, sizeof why);
        if (out)
            fprintf(out, "%-24s  %-*s  error: %s\n", when, name_width, segment,
                    reason ? reason : "?");
        prev->at_ns = 0; /* no rate from before the gap */
    } else {
        char commits[32], bytes[32], gcs[32], live[32];
        rate_cells(prev, &rep.info, at, commits, bytes, gcs, sizeof commits);
        snprintf(live, sizeof live, "%llu", (unsigned long long)rep.info.live_chunks);
        if (out)
            fprintf(out, WATCH_FORMAT, when, name_width, segment, commits, bytes, gcs, live);
        prev->info = rep.info;
        prev->at_ns = at;
    }
    seg_report_free(&rep);
}

/* One line per segment on out: its rates since the previous round (out
 * NULL: only take the samples). Segments gone since are forgotten: one of
 * that name later is new. */
static int watch_round(const struct stats_args *a, struct samples *seen, FILE *out, int name_width)
{
    struct names nm;
    int status = names_get(a, &nm);
    if (status != EXIT_OK)
        return status;
    char when[48];
    format_time(wall_ns(), when, sizeof when);
    for (size_t i = 0; i < seen->n; i++)
        seen->v[i].seen = false;
    for (size_t i = 0; i < nm.n && status == EXIT_OK; i++) {
        struct sample *prev = sample_of(seen, nm.v[i]);
        if (!prev) {
            status = fail("stats", "%s", strerror(ENOMEM));
            break;
        }
        prev->seen = true;
        watch_line(out, when, name_width, nm.v[i], prev);
    }
    size_t kept = 0;
    for (size_t i = 0; i < seen->n; i++)
        if (seen->v[i].seen)
            seen->v[kept++] = seen->v[i];
    seen->n = kept;
    names_free(&nm);
    return status;
}

/* Sleep until the monotonic deadline; false when a stop was requested. */
static bool sleep_until(int64_t deadline_ns)
{
    for (;;) {
        if (stop_requested() != STOP_NONE)
            return false;
        int64_t left = deadline_ns - mono_ns();
        if (left <= 0)
            return true;
        int rc = follow_wait(NULL, (int)((left + 999999) / 1000000));
        if (rc != -ECANCELED && rc != -ETIMEDOUT && rc != -EINTR)
            return false;
    }
}

/*
 * The first round only takes a look; each later one, SECONDS after the
 * one before (on a fixed schedule, so that the lines do not drift), prints
 * the rates since. It ends at SIGINT, SIGTERM or SIGHUP, dying of the
 * signal as tail -f does, or when the reader of its output goes away.
 */
static int stats_watch(const struct stats_args *a)
{
    int rc = follow_watch_start(NULL);
    if (rc < 0)
        return fail("stats", "cannot watch for signals: %s", strerror(-rc));
    /* As wide as the names at the start; a longer one that comes later
     * shifts its own line only. */
    struct names nm;
    int name_width = 7;
    if (names_get(a, &nm) != EXIT_OK)
        return EXIT_ERR;
    for (size_t i = 0; i < nm.n; i++)
        if ((int)strlen(nm.v[i]) > name_width)
            name_width = (int)strlen(nm.v[i]);
    names_free(&nm);
    printf(WATCH_FORMAT, "TIME", name_width, "SEGMENT", "COMMITS/S", "BYTES/S", "GCS", "LIVE");
    struct samples seen = {NULL, 0, 0};
    int status = watch_round(a, &seen, NULL, name_width);
    int64_t next = mono_ns();
    while (status == EXIT_OK) {
        if (fflush(stdout) == EOF)
            break;
        next += a->watch_ns;
        if (!sleep_until(next))
            break;
        status = watch_round(a, &seen, stdout, name_width);
    }
    free(seen.v);
    enum stop_reason why = stop_requested();
    if (why != STOP_NONE)
        return stop_exit(why);
    return finish_stdout(status);
}

int cmd_stats(int argc, char **argv)
{
    struct stats_args a;
    int status = parse_stats(argc, argv, &a);
    if (status != CLI_CONTINUE)
        return status;
    return a.watch_ns ? stats_watch(&a) : stats_once(&a);
}
