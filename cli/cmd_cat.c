/*
 * speculo cat SEG ID|NAME: a chunk's bytes on stdout, written straight from
 * the shared mapping (no copy, whatever the size).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

static const char cat_help[] =
    "Usage: speculo cat SEG ID|NAME\n"
    "\n"
    "Write the bytes of a live chunk of segment SEG to stdout, exactly.\n"
    "An argument made of digits only is a chunk id; anything else is the name\n"
    "of a named block, whose latest live version is written.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n";

/* Parse SEG and ID|NAME into *segment and *key. */
static int parse_cat(int argc, char **argv, const char **segment, const char **key)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* The only option is --help: any option ends the parse. */
    int opt = cli_getopt(argc, argv, "h", longopts);
    if (opt != -1)
        return common_option(opt, argv[0], cat_help);
    if (argc - optind != 2)
        return usage_error(argv[0], argc - optind < 2 ? "missing operand" : "too many arguments");
    *segment = argv[optind];
    *key = argv[optind + 1];
    int status = segment_name_option(argv[0], *segment);
    if (status != CLI_CONTINUE)
        return status;
    if (!all_digits(*key) && speculo_chunk_name_check(*key) < 0)
        return usage_error(argv[0], "'%s' is neither a chunk id nor a chunk name", printable(*key));
    return CLI_CONTINUE;
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
    int status = parse_cat(argc, argv, &segment, &key);
    if (status != CLI_CONTINUE)
        return status;

    speculo_reader *r;
    if (open_reader(segment, &r) < 0)
        return EXIT_ERR;
    speculo_chunk c = {0};
    status = find_chunk(r, segment, key, &c);
    if (status == EXIT_OK) {
        int rc = write_all(STDOUT_FILENO, c.data, c.size);
        if (rc < 0)
            status = stdout_failure(rc);
    }
    speculo_reader_close(r);
    return status;
}
