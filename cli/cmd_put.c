/*
 * speculo put SEG [NAME] [--ttl SECONDS] [--replaces ID] < DATA
 *
 * Binary-safe: stdin is taken as bytes, whatever they are, up to EOF. When
 * stdin is a regular file of known size the bytes are read straight into
 * the segment (speculo_writer_alloc), with no copy in between; otherwise
 * (a pipe, a terminal) they are gathered in a growing buffer first, so that
 * the writer role is held only for the commit, not while a slow producer
 * writes.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char put_help[] =
    "Usage: speculo put SEG [NAME] [--ttl SECONDS] [--replaces ID] < DATA\n"
    "\n"
    "Commit the bytes of stdin (any bytes, any size, maybe none) as a new chunk\n"
    "of segment SEG, creating the segment when missing, and print the chunk's id.\n"
    "With NAME the chunk is a named block: it replaces the previous live version\n"
    "of that name.\n"
    "\n"
    "Options:\n"
    "  -t, --ttl SECONDS     expire SECONDS after the commit (fractional allowed;\n"
    "                        0, the default, means never)\n"
    "  -r, --replaces ID     the new chunk obsoletes the live chunk ID\n"
    "  -w, --wait SECONDS    how long to wait for the writer role while another\n"
    "                        process holds it (default 5)\n"
    "  -h, --help            show this help\n";

struct put_args {
    const char *segment;
    const char *name;
    int64_t ttl_ns;
    uint64_t replaces;
    int wait_ms;
};

static int put_option(int opt, const char *prog, struct put_args *a)
{
    switch (opt) {
    case 't':
        if (!parse_seconds(optarg, &a->ttl_ns))
            return usage_error(prog, "invalid TTL '%s': seconds, 0 or more, may be fractional",
                               printable(optarg));
        return CLI_CONTINUE;
    case 'r':
        if (!parse_u64(optarg, &a->replaces) || a->replaces == 0)
            return usage_error(prog, "invalid chunk id '%s'", printable(optarg));
        return CLI_CONTINUE;
    case 'w':
        return wait_option(prog, optarg, &a->wait_ms);
    default:
        return common_option(opt, prog, put_help);
    }
}

/* CLI_CONTINUE, or the exit status to return. */
static int parse_put(int argc, char **argv, struct put_args *a)
{
    static const struct option longopts[] = {
        {"ttl", required_argument, NULL, 't'},
        {"replaces", required_argument, NULL, 'r'},
        {"wait", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *prog = argv[0];
    int opt;

    memset(a, 0, sizeof *a);
    a->wait_ms = CLI_WRITER_WAIT_MS;
    while ((opt = cli_getopt(argc, argv, "t:r:w:h", longopts)) != -1) {
        int rc = put_option(opt, prog, a);
        if (rc != CLI_CONTINUE)
            return rc;
    }
    int left = argc - optind;
    if (left < 1)
        return usage_error(prog, "missing segment name");
    if (left > 2)
        return usage_error(prog, "too many arguments");
    a->segment = argv[optind];
    a->name = left == 2 ? argv[optind + 1] : NULL;
    int status = segment_name_option(prog, a->segment);
    if (status != CLI_CONTINUE)
        return status;
    if (a->name && speculo_chunk_name_check(a->name) < 0)
        return usage_error(prog,
                           "invalid chunk name '%s': 1-255 of [A-Za-z0-9_.-], starting "
                           "with a letter or '_'",
                           printable(a->name));
    return CLI_CONTINUE;
}

/* The bytes left in stdin when it is a regular file we can size; -1 when
 * the size cannot be known in advance (pipes, terminals, and /proc-like
 * files that claim to be empty). */
static ssize_t known_input_size(void)
{
    struct stat st;
    if (fstat(STDIN_FILENO, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
        return -1;
    off_t pos = lseek(STDIN_FILENO, 0, SEEK_CUR);
    if (pos < 0 || pos > st.st_size)
        return -1;
    return (ssize_t)(st.st_size - pos);
}

/* Read up to len bytes; returns how many (fewer only at EOF) or -errno. */
static ssize_t read_full(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t want = len - got < ((size_t)1 << 30) ? len - got : ((size_t)1 << 30);
        ssize_t n = read(fd, buf + got, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Read all of stdin into a malloc'd buffer that doubles as it fills. */
static int slurp_stdin(char **out, size_t *out_len)
{
    size_t cap = (size_t)64 << 10, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            char *bigger = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                free(buf);
                return -ENOMEM;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read_full(STDIN_FILENO, buf + len, cap - len);
        if (n < 0) {
            free(buf);
            return (int)n;
        }
        len += (size_t)n;
        if (len < cap)
            break;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/*
 * The exit status says whether the chunk was committed, and nothing else:
 * a script that retries a failed put must not commit twice. So a chunk
 * whose id cannot be printed (stdout closed, full, or a pipe nobody reads)
 * is still a success; a warning on stderr names the id instead.
 */
static int print_id(const char *segment, uint64_t id)
{
    printf("%llu\n", (unsigned long long)id);
    if (fflush(stdout) == 0 && !ferror(stdout))
        return EXIT_OK;
    int err = errno ? errno : EIO;
    fprintf(stderr, "speculo: %s: warning: committed chunk %llu, but could not print its id: %s\n",
            segment, (unsigned long long)id, strerror(err));
    return EXIT_OK;
}

static int commit_and_print(speculo_writer *w, const struct put_args *a, const void *data,
                            size_t size, bool reserved)
{
    struct speculo_commit_options co = {a->name, a->ttl_ns, a->replaces};
    uint64_t id = 0;
    int rc =
        reserved ? speculo_writer_commit(w, &co, &id) : speculo_writer_put(w, data, size, &co, &id);
    if (rc == -ENOENT && a->replaces)
        return fail(a->segment, "no live chunk with id %llu to replace",
                    (unsigned long long)a->replaces);
    if (rc < 0)
        return fail_code(a->segment, rc);
    return print_id(a->segment, id);
}

/* Zero copy: stdin's bytes go straight into the reserved chunk. */
static int put_sized(const struct put_args *a, size_t size)
{
    speculo_writer *w;
    void *data;
    if (open_writer_waiting(a->segment, NULL, a->wait_ms, &w) < 0)
        return EXIT_ERR;
    int status;
    int rc = speculo_writer_alloc(w, size, &data);
    if (rc < 0) {
        status = fail(a->segment, "cannot reserve %zu bytes: %s", size, speculo_strerror(rc));
    } else {
        ssize_t n = read_full(STDIN_FILENO, data, size);
        char extra;
        if (n < 0)
            status = fail("stdin", "%s", strerror((int)-n));
        else if ((size_t)n != size || read(STDIN_FILENO, &extra, 1) != 0)
            status = fail("stdin", "the input file changed size while it was read");
        else
            status = commit_and_print(w, a, data, size, true);
    }
    speculo_writer_close(w);
    return status;
}

static int put_streamed(const struct put_args *a)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = slurp_stdin(&buf, &len);
    if (rc < 0)
        return fail("stdin", "%s", strerror(-rc));
    speculo_writer *w;
    int status = EXIT_ERR;
    if (open_writer_waiting(a->segment, NULL, a->wait_ms, &w) == 0) {
        status = commit_and_print(w, a, buf, len, false);
        speculo_writer_close(w);
    }
    free(buf);
    return status;
}

int cmd_put(int argc, char **argv)
{
    struct put_args a;
    int rc = parse_put(argc, argv, &a);
    if (rc != CLI_CONTINUE)
        return rc;
    ssize_t size = known_input_size();
    return size >= 0 ? put_sized(&a, (size_t)size) : put_streamed(&a);
}
