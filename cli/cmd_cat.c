/*
 * speculo cat [--any] SEG ID|NAME: a chunk's bytes on stdout, written
 * straight from the shared mapping (no copy, whatever the size); with
 * --any, a record's whatever its state, while it is in the file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

static const char cat_help[] =
    "Usage: speculo cat [--any] SEG ID|NAME\n"
    "\n"
    "Write the bytes of a live chunk of segment SEG to stdout, exactly.\n"
    "An argument made of digits only is a chunk id; anything else is the name\n"
    "of a named block, whose latest live version is written.\n"
    "\n"
    "Options:\n"
    "  -a, --any    the record ID, live or dead (expired, obsolete), as long as\n"
    "               it is still in the file: until a collection drops it\n"
    "               (speculo ls --all lists them)\n"
    "  -h, --help   show this help\n";

/* Parse the options, SEG and ID|NAME into *segment and *key. */
static int parse_cat(int argc, char **argv, const char **segment, const char **key, bool *any)
{
    static const struct option longopts[] = {
        {"any", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = cli_getopt(argc, argv, "ah", longopts)) != -1) {
        if (opt != 'a')
            return common_option(opt, argv[0], cat_help);
        *any = true;
    }
    if (argc - optind != 2)
        return usage_error(argv[0], argc - optind < 2 ? "missing operand" : "too many arguments");
    *segment = argv[optind];
    *key = argv[optind + 1];
    int status = segment_name_option(argv[0], *segment);
    if (status != CLI_CONTINUE)
        return status;
    if (*any && !all_digits(*key))
        return usage_error(argv[0], "--any takes a chunk id, not '%s'", printable(*key));
    if (!all_digits(*key) && speculo_chunk_name_check(*key) < 0)
        return usage_error(argv[0], "'%s' is neither a chunk id nor a chunk name", printable(*key));
    return CLI_CONTINUE;
}

/* The record @key (digits), whatever its state; reports what is missing. */
static int find_record(speculo_reader *r, const char *segment, const char *key, speculo_chunk *c)
{
    uint64_t id = 0, newest;
    struct speculo_record rec;
    int rc = parse_u64(key, &id) ? speculo_reader_get_record(r, id, &rec) : -ENOENT;
    if (rc == 0) {
        *c = rec.chunk;
        return EXIT_OK;
    }
    if (rc != -ENOENT)
        return fail_code(segment, rc);
    if (id != 0 && newest_chunk_id(r, &newest) == 0 && id <= newest)
        return fail(segment, "no record with id %s in the file: collected (or never committed)",
                    key);
    return fail(segment, "no chunk with id %s", key);
}

/* Find the chunk by id or by name; reports what is missing. */
static int find_chunk(speculo_reader *r, const char *segment, const char *key, speculo_chunk *c)
{
    int rc;
    if (all_digits(key)) {
        uint64_t id;
        rc = parse_u64(key, &id) ? speculo_reader_get_id(r, id, c) : -ENOENT;
        if (rc == -ENOENT)
            return fail(segment, "no live chunk with id %s", key);
    } else {
        rc = speculo_reader_get(r, key, c);
        if (rc == -ENOENT)
            return fail(segment, "no live chunk named '%s'", key);
    }
    if (rc < 0)
        return fail_code(segment, rc);
    return EXIT_OK;
}

int cmd_cat(int argc, char **argv)
{
    const char *segment = NULL, *key = NULL;
    bool any = false;
    int status = parse_cat(argc, argv, &segment, &key, &any);
    if (status != CLI_CONTINUE)
        return status;

    speculo_reader *r;
    if (open_reader(segment, &r) < 0)
        return EXIT_ERR;
    speculo_chunk c = {0};
    status = any ? find_record(r, segment, key, &c) : find_chunk(r, segment, key, &c);
    if (status == EXIT_OK) {
        int rc = write_all(STDOUT_FILENO, c.data, c.size);
        if (rc < 0)
            status = stdout_failure(rc);
    }
    speculo_reader_close(r);
    return status;
}
