/*
 * The inspection and housekeeping subcommands: info, segments, gc, rm.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char info_help[] =
    "Usage: speculo info [--json] SEG\n"
    "\n"
    "Describe segment SEG, one 'key: value' a line: format version, generation,\n"
    "capacity, bytes used, live/expired/obsolete chunk counts, writer pid and\n"
    "whether it is alive, last commit time, ... The same text as the .info file\n"
    "of the segment's directory in speculofs. For a segment that cannot be read\n"
    "an 'error:' line says what is wrong.\n"
    "\n"
    "Options:\n"
    "  -j, --json   print one JSON object instead, for scripts: the same keys,\n"
    "               numbers as numbers, writer_alive a boolean, '-' as null;\n"
    "               the times also as created_ns and last_commit_ns (ns since\n"
    "               the epoch)\n"
    "  -h, --help   show this help\n";

static const char segments_help[] =
    "Usage: speculo segments [--long | --json]\n"
    "\n"
    "List the segments of the segment directory ($SPECULO_DIR, else\n"
    "/dev/shm/speculo-$UID), one name a line, sorted. A missing directory has\n"
    "no segments.\n"
    "\n"
    "Options:\n"
    "  -l, --long   one line per segment: name, size in bytes, live chunks,\n"
    "               writer (PID/alive, PID/dead, or - when none), last commit\n"
    "               (or -); a segment that cannot be read shows its file size\n"
    "               and 'error: ...'. A header line only on a terminal\n"
    "  -j, --json   one JSON array of the objects of 'speculo info --json'\n"
    "  -h, --help   show this help\n";

static const char gc_help[] =
    "Usage: speculo gc [--wait SECONDS] SEG\n"
    "\n"
    "Collect segment SEG now: copy its live chunks into a new segment file and\n"
    "switch it in. Readers are not disturbed. This takes the writer role, so it\n"
    "waits while another process holds it.\n"
    "\n"
    "Options:\n"
    "  -w, --wait SECONDS   how long to wait for the writer role (default 5)\n"
    "  -h, --help           show this help\n";

static const char rm_help[] =
    "Usage: speculo rm [--force] SEG\n"
    "\n"
    "Remove segment SEG. Readers that have it mapped keep the data they hold and\n"
    "learn of the removal at their next call. A segment whose writer is alive is\n"
    "refused unless --force is given.\n"
    "\n"
    "Options:\n"
    "  -f, --force  remove even while a writer is alive\n"
    "  -h, --help   show this help\n";

/* The arguments of the one-segment commands: --help always, plus --wait
 * (gc) or --force (rm) when the command's option table has them. */
struct seg_args {
    const char *segment;
    int wait_ms;
    bool force;
    bool json;
};

static int parse_seg_args(int argc, char **argv, const char *help, const char *optstring,
                          const struct option *longopts, struct seg_args *a)
{
    int opt;
    memset(a, 0, sizeof *a);
    a->wait_ms = CLI_WRITER_WAIT_MS;
    while ((opt = cli_getopt(argc, argv, optstring, longopts)) != -1) {
        if (opt == 'w') {
            int status = wait_option(argv[0], optarg, &a->wait_ms);
            if (status != CLI_CONTINUE)
                return status;
        } else if (opt == 'f') {
            a->force = true;
        } else if (opt == 'j') {
            a->json = true;
        } else {
            return common_option(opt, argv[0], help);
        }
    }
    return segment_operand(argc, argv, &a->segment);
}

static int print_info_json(const char *segment)
{
    struct seg_report rep;
    int rc = seg_report_load(segment, &rep);
    if (rc == -ENOENT)
        return fail(segment, "no such segment");
    if (rc < 0)
        return fail_code(segment, rc);
    seg_report_json(stdout, &rep, "");
    putchar('\n');
    seg_report_free(&rep);
    return finish_stdout(EXIT_OK);
}

int cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct seg_args a;
    int status = parse_seg_args(argc, argv, info_help, "jh", longopts, &a);
    if (status != CLI_CONTINUE)
        return status;
    if (a.json)
        return print_info_json(a.segment);
    char *text;
    int n = describe_segment(a.segment, &text);
    if (n == -ENOENT)
        return fail(a.segment, "no such segment");
    if (n < 0)
        return fail_code(a.segment, n);
    int rc = write_all(1, text, (size_t)n);
    free(text);
    return rc < 0 ? stdout_failure(rc) : EXIT_OK;
}

/* The columns of `segments --long`. */
static const char *const long_header[] = {"SEGMENT", "SIZE", "LIVE", "WRITER", "LAST COMMIT"};

/* A segment that cannot be read: its file size and what is wrong. */
static int long_row_error(struct table *t, const struct seg_report *rep)
{
    char size[32], why[256], error[300];
    if (!seg_report_text_value(rep, "file_size", size, sizeof size))
        snprintf(size, sizeof size, "-");
    snprintf(error, sizeof error, "error: %s",
             seg_report_text_value(rep, "error", why, sizeof why) ? why : "unreadable");
    const char *cells[] = {rep->segment, size, error};
    return table_row(t, cells, 3);
}

static int long_row(struct table *t, const struct seg_report *rep)
{
    if (!rep->ok)
        return long_row_error(t, rep);
    const struct speculo_segment_info *s = &rep->info;
    char size[24], live[24], writer[48], last[48] = "-";
    snprintf(size, sizeof size, "%llu", (unsigned long long)s->capacity);
    snprintf(live, sizeof live, "%llu", (unsigned long long)s->live_chunks);
    format_writer(s, writer, sizeof writer);
    if (s->last_commit_ns > 0)
        format_time(s->last_commit_ns, last, sizeof last);
    const char *cells[] = {rep->segment, size, live, writer, last};
    return table_row(t, cells, 5);
}

enum segments_form { FORM_NAMES, FORM_LONG, FORM_JSON };

/* Every segment's report, in the listing's order; a segment removed since
 * the listing is left out. */
static int print_reports(char **names, size_t n, enum segments_form form)
{
    int status = EXIT_OK;
    size_t shown = 0;
    struct table t;
    table_init(&t, long_header, 5, 1u << 1 | 1u << 2);
    if (form == FORM_JSON)
        putchar('[');
    for (size_t i = 0; i < n; i++) {
        struct seg_report rep;
        int rc = seg_report_load(names[i], &rep);
        if (rc == -ENOENT)
            continue;
        if (rc < 0) {
            status = fail_code(names[i], rc);
            continue;
        }
        if (form == FORM_JSON) {
            fputs(shown ? ",\n  " : "\n  ", stdout);
            seg_report_json(stdout, &rep, "  ");
        } else if (long_row(&t, &rep) < 0) {
            status = fail(names[i], "%s", strerror(ENOMEM));
        }
        shown++;
        seg_report_free(&rep);
    }
    if (form == FORM_JSON)
        puts(shown ? "\n]" : "]");
    else
        table_print(stdout, &t, isatty(STDOUT_FILENO));
    table_free(&t);
    return status;
}

static int parse_segments(int argc, char **argv, enum segments_form *form)
{
    static const struct option longopts[] = {
        {"long", no_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    *form = FORM_NAMES;
    while ((opt = cli_getopt(argc, argv, "ljh", longopts)) != -1) {
        if (opt != 'l' && opt != 'j')
            return common_option(opt, argv[0], segments_help);
        enum segments_form f = opt == 'l' ? FORM_LONG : FORM_JSON;
        if (*form != FORM_NAMES && *form != f)
            return usage_error(argv[0], "--long and --json cannot be used together");
        *form = f;
    }
    if (optind != argc)
        return usage_error(argv[0], "too many arguments");
    return CLI_CONTINUE;
}

int cmd_segments(int argc, char **argv)
{
    enum segments_form form;
    int status = parse_segments(argc, argv, &form);
    if (status != CLI_CONTINUE)
        return status;
    char **names;
    size_t n;
    status = list_segments(&names, &n);
    if (status != EXIT_OK)
        return status;
    if (form == FORM_NAMES) {
        for (size_t i = 0; i < n; i++)
            puts(names[i]);
    } else {
        status = print_reports(names, n, form);
    }
    free_names(names, n);
    return finish_stdout(status);
}

int cmd_gc(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"wait", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct seg_args a;
    int status = parse_seg_args(argc, argv, gc_help, "w:h", longopts, &a);
    if (status != CLI_CONTINUE)
        return status;
    /* speculo_writer_open would create a missing segment: gc must not. */
    if (require_segment(a.segment) < 0)
        return EXIT_ERR;
    speculo_writer *w;
    if (open_writer_waiting(a.segment, NULL, a.wait_ms, &w) < 0)
        return EXIT_ERR;
    int rc = speculo_writer_gc(w);
    speculo_writer_close(w);
    return rc < 0 ? fail_code(a.segment, rc) : EXIT_OK;
}

int cmd_rm(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct seg_args a;
    int status = parse_seg_args(argc, argv, rm_help, "fh", longopts, &a);
    if (status != CLI_CONTINUE)
        return status;
    int rc = speculo_segment_remove(a.segment, a.force ? SPECULO_REMOVE_FORCE : 0);
    if (rc == -ENOENT)
        return fail(a.segment, "no such segment");
    if (rc == -EBUSY) {
        int64_t pid = segment_writer_pid(a.segment);
        if (pid > 0)
            return fail(a.segment, "its writer (pid %lld) is alive; use --force to remove it",
                        (long long)pid);
        return fail(a.segment, "its writer is alive; use --force to remove it");
    }
    if (rc < 0)
        return fail_code(a.segment, rc);
    return EXIT_OK;
}
