/*
 * speculo ls [--json] SEG: one line per live chunk, in commit order.
 *
 * The rows are gathered first (names copied: a chunk's pointers last only
 * until the next reader call) so that the columns can be sized to fit.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char ls_help[] =
    "Usage: speculo ls [--json] SEG\n"
    "\n"
    "List the live chunks of segment SEG in commit order, one line each:\n"
    "id, name (or -), size in bytes, commit time, expiry time (or -).\n"
    "Times are UTC, ISO 8601, to the millisecond. A header line is printed\n"
    "only when stdout is a terminal.\n"
    "\n"
    "Options:\n"
    "  -j, --json   print one JSON array of objects instead, for scripts:\n"
    "               id, name (null when unnamed), size, committed_ns,\n"
    "               expires_ns (null when never), replaces (null when none)\n"
    "  -h, --help   show this help\n";

struct ls_row {
    uint64_t id;
    char *name; /* NULL when unnamed */
    size_t size;
    int64_t committed_ns;
    int64_t expires_ns;
    uint64_t replaces;
};

struct ls_rows {
    struct ls_row *v;
    size_t n, cap;
};

static void rows_free(struct ls_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++)
        free(rows->v[i].name);
    free(rows->v);
}

static int rows_add(struct ls_rows *rows, const speculo_chunk *c)
{
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 64;
        struct ls_row *v = realloc(rows->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        rows->v = v;
        rows->cap = cap;
    }
    struct ls_row *row = &rows->v[rows->n];
    row->name = NULL;
    if (c->name && !(row->name = strdup(c->name)))
        return -ENOMEM;
    row->id = c->id;
    row->size = c->size;
    row->committed_ns = c->committed_ns;
    row->expires_ns = c->expires_ns;
    row->replaces = speculo_chunk_replaces(c);
    rows->n++;
    return 0;
}

/*
 * Everything live up to the newest id at the start: a writer that keeps
 * committing cannot keep ls from ending.
 */
static int collect_rows(speculo_reader *r, struct ls_rows *rows)
{
    uint64_t newest;
    int rc = newest_chunk_id(r, &newest);
    if (rc < 0)
        return rc;
    for (;;) {
        speculo_chunk c;
        rc = speculo_reader_next(r, &c);
        if (rc == -EAGAIN || (rc == 0 && c.id > newest))
            return 0;
        if (rc < 0)
            return rc;
        if ((rc = rows_add(rows, &c)) < 0)
            return rc;
    }
}

static int digits_u64(uint64_t v)
{
    int n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static void print_text(const struct ls_rows *rows)
{
    /* Columns as wide as their widest value, and as their title when
     * there is a header line. */
    bool header = isatty(STDOUT_FILENO);
    int wid = header ? 2 : 1, wname = header ? 4 : 1, wsize = header ? 4 : 1;
    for (size_t i = 0; i < rows->n; i++) {
        const struct ls_row *row = &rows->v[i];
        int len = row->name ? (int)strlen(row->name) : 1;
        if (digits_u64(row->id) > wid)
            wid = digits_u64(row->id);
        if (len > wname)
            wname = len;
        if (digits_u64(row->size) > wsize)
            wsize = digits_u64(row->size);
    }
    if (header)
        printf("%*s  %-*s  %*s  %-24s  %s\n", wid, "ID", wname, "NAME", wsize, "SIZE", "COMMITTED",
               "EXPIRES");
    for (size_t i = 0; i < rows->n; i++) {
        const struct ls_row *row = &rows->v[i];
        char committed[32], expires[32] = "-";
        format_time(row->committed_ns, committed, sizeof committed);
        if (row->expires_ns)
            format_time(row->expires_ns, expires, sizeof expires);
        printf("%*llu  %-*s  %*zu  %-24s  %s\n", wid, (unsigned long long)row->id, wname,
               row->name ? row->name : "-", wsize, row->size, committed, expires);
    }
}

static void print_json_row(const struct ls_row *row)
{
    printf("  {\"id\": %llu, \"name\": ", (unsigned long long)row->id);
    if (row->name)
        json_string(stdout, row->name);
    else
        fputs("null", stdout);
    printf(", \"size\": %zu, \"committed_ns\": %lld, \"expires_ns\": ", row->size,
           (long long)row->committed_ns);
    if (row->expires_ns)
        printf("%lld", (long long)row->expires_ns);
    else
        fputs("null", stdout);
    fputs(", \"replaces\": ", stdout);
    if (row->replaces)
        printf("%llu}", (unsigned long long)row->replaces);
    else
        fputs("null}", stdout);
}

static void print_json(const struct ls_rows *rows)
{
    if (rows->n == 0) {
        puts("[]");
        return;
    }
    puts("[");
    for (size_t i = 0; i < rows->n; i++) {
        print_json_row(&rows->v[i]);
        puts(i + 1 < rows->n ? "," : "");
    }
    puts("]");
}

static int parse_ls(int argc, char **argv, const char **segment, bool *json)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = cli_getopt(argc, argv, "jh", longopts)) != -1) {
        if (opt != 'j')
            return common_option(opt, argv[0], ls_help);
        *json = true;
    }
    return segment_operand(argc, argv, segment);
}

int cmd_ls(int argc, char **argv)
{
    const char *segment = NULL;
    bool json = false;
    int status = parse_ls(argc, argv, &segment, &json);
    if (status != CLI_CONTINUE)
        return status;

    speculo_reader *r;
    if (open_reader(segment, &r) < 0)
        return EXIT_ERR;
    struct ls_rows rows = {NULL, 0, 0};
    int rc = collect_rows(r, &rows);
    speculo_reader_close(r);
    if (rc < 0) {
        status = fail_code(segment, rc);
    } else {
        if (json)
            print_json(&rows);
        else
            print_text(&rows);
        status = finish_stdout(EXIT_OK);
    }
    rows_free(&rows);
    return status;
}
