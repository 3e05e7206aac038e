/*
 * speculo ls [--all] [--json] SEG: one line per live chunk, in commit
 * order; with --all, per record still in the file, with its state.
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
    "Usage: speculo ls [--all] [--json] SEG\n"
    "\n"
    "List the live chunks of segment SEG in commit order, one line each:\n"
    "id, name (or -), size in bytes, commit time, expiry time (or -).\n"
    "Times are UTC, ISO 8601, to the millisecond. A header line is printed\n"
    "only when stdout is a terminal.\n"
    "\n"
    "Options:\n"
    "  -a, --all    every record still in the file, live or dead (until the\n"
    "               next collection drops the dead), with a last column, its\n"
    "               state: live, expired, obsolete>ID (obsoleted by chunk ID:\n"
    "               a newer version of its name, or a chunk that replaced it)\n"
    "               or obsolete (obsoleted explicitly)\n"
    "  -j, --json   print one JSON array of objects instead, for scripts:\n"
    "               id, name (null when unnamed), size, committed_ns,\n"
    "               expires_ns (null when never), replaces (null when none);\n"
    "               with --all also state (as in the text), obsoleted_by\n"
    "               (null unless obsolete>ID), offset and length (where the\n"
    "               record is in the file, bytes)\n"
    "  -h, --help   show this help\n";

struct ls_row {
    uint64_t id;
    char *name; /* NULL when unnamed */
    size_t size;
    int64_t committed_ns;
    int64_t expires_ns;
    uint64_t replaces;
    /* with --all */
    char state[32]; /* live, expired, obsolete>ID, obsolete */
    uint64_t obsoleted_by, offset, length;
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

/* Add a row for a chunk; it is the last one added (rows_last()). */
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
    row->state[0] = '\0';
    rows->n++;
    return 0;
}

/* Add a row for a record, live or dead, with its state. */
static int rows_add_record(struct ls_rows *rows, const struct speculo_record *rec)
{
    int rc = rows_add(rows, &rec->chunk);
    if (rc < 0)
        return rc;
    struct ls_row *row = &rows->v[rows->n - 1];
    switch (rec->state) {
    case SPECULO_STATE_LIVE:
        strcpy(row->state, "live");
        break;
    case SPECULO_STATE_EXPIRED:
        strcpy(row->state, "expired");
        break;
    case SPECULO_STATE_REPLACED:
        snprintf(row->state, sizeof row->state, "obsolete>%llu",
                 (unsigned long long)rec->obsoleted_by);
        break;
    case SPECULO_STATE_OBSOLETE:
        strcpy(row->state, "obsolete");
        break;
    }
    row->replaces = rec->replaces;
    row->obsoleted_by = rec->obsoleted_by;
    row->offset = rec->offset;
    row->length = rec->length;
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

/*
 * Every record of the file the reader maps now, live or dead. The reader
 * is pinned to that file, so that a collection meanwhile cannot mix two
 * files in one listing; records committed after the walk starts are left
 * out, so that a writer that keeps committing cannot keep ls from ending.
 */
static int collect_all_rows(speculo_reader *r, struct ls_rows *rows)
{
    uint64_t newest;
    int rc = newest_chunk_id(r, &newest);
    if (rc == 0)
        rc = speculo_reader_pin(r);
    for (uint64_t after = 0; rc == 0;) {
        struct speculo_record rec;
        rc = speculo_reader_walk(r, after, &rec);
        if (rc == -ENOENT || (rc == 0 && rec.chunk.id > newest))
            return 0;
        if (rc == 0)
            rc = rows_add_record(rows, &rec);
        after = rec.chunk.id;
    }
    return rc;
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

static void print_text(const struct ls_rows *rows, bool all)
{
    /* Columns as wide as their widest value, and as their title when
     * there is a header line. */
    bool header = isatty(STDOUT_FILENO);
    int wid = header ? 2 : 1, wname = header ? 4 : 1, wsize = header ? 4 : 1;
    int wexp = header ? 7 : 1; /* with --all, the state follows the expiry */
    for (size_t i = 0; i < rows->n; i++) {
        const struct ls_row *row = &rows->v[i];
        int len = row->name ? (int)strlen(row->name) : 1;
        if (digits_u64(row->id) > wid)
            wid = digits_u64(row->id);
        if (len > wname)
            wname = len;
        if (digits_u64(row->size) > wsize)
            wsize = digits_u64(row->size);
        if (row->expires_ns)
            wexp = 24;
    }
    if (header)
        printf("%*s  %-*s  %*s  %-24s  ", wid, "ID", wname, "NAME", wsize, "SIZE", "COMMITTED");
    if (header && all)
        printf("%-*s  STATE\n", wexp, "EXPIRES");
    else if (header)
        printf("EXPIRES\n");
    for (size_t i = 0; i < rows->n; i++) {
        const struct ls_row *row = &rows->v[i];
        char committed[32], expires[32] = "-";
        format_time(row->committed_ns, committed, sizeof committed);
        if (row->expires_ns)
            format_time(row->expires_ns, expires, sizeof expires);
        printf("%*llu  %-*s  %*zu  %-24s  ", wid, (unsigned long long)row->id, wname,
               row->name ? row->name : "-", wsize, row->size, committed);
        if (all)
            printf("%-*s  %s\n", wexp, expires, row->state);
        else
            printf("%s\n", expires);
    }
}

/* A number, or null for 0. */
static void json_u64_or_null(uint64_t v)
{
    if (v)
        printf("%llu", (unsigned long long)v);
    else
        fputs("null", stdout);
}

static void print_json_row(const struct ls_row *row, bool all)
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
    json_u64_or_null(row->replaces);
    if (all) {
        printf(", \"state\": \"%s\", \"obsoleted_by\": ", row->state);
        json_u64_or_null(row->obsoleted_by);
        printf(", \"offset\": %llu, \"length\": %llu", (unsigned long long)row->offset,
               (unsigned long long)row->length);
    }
    putchar('}');
}

static void print_json(const struct ls_rows *rows, bool all)
{
    if (rows->n == 0) {
        puts("[]");
        return;
    }
    puts("[");
    for (size_t i = 0; i < rows->n; i++) {
        print_json_row(&rows->v[i], all);
        puts(i + 1 < rows->n ? "," : "");
    }
    puts("]");
}

static int parse_ls(int argc, char **argv, const char **segment, bool *json, bool *all)
{
    static const struct option longopts[] = {
        {"all", no_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = cli_getopt(argc, argv, "ajh", longopts)) != -1) {
        if (opt == 'a')
            *all = true;
        else if (opt == 'j')
            *json = true;
        else
            return common_option(opt, argv[0], ls_help);
    }
    return segment_operand(argc, argv, segment);
}

int cmd_ls(int argc, char **argv)
{
    const char *segment = NULL;
    bool json = false, all = false;
    int status = parse_ls(argc, argv, &segment, &json, &all);
    if (status != CLI_CONTINUE)
        return status;

    speculo_reader *r;
    if (open_reader(segment, &r) < 0)
        return EXIT_ERR;
    struct ls_rows rows = {NULL, 0, 0};
    int rc = all ? collect_all_rows(r, &rows) : collect_rows(r, &rows);
    speculo_reader_close(r);
    if (rc < 0) {
        status = fail_code(segment, rc);
    } else {
        if (json)
            print_json(&rows, all);
        else
            print_text(&rows, all);
        status = finish_stdout(EXIT_OK);
    }
    rows_free(&rows);
    return status;
}
