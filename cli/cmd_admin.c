/*
 * The inspection and housekeeping subcommands: info, segments, gc, rm.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char info_help[] =
    "Usage: speculo info SEG\n"
    "\n"
    "Describe segment SEG, one 'key: value' a line: format version, generation,\n"
    "capacity, bytes used, live/expired/obsolete chunk counts, writer pid and\n"
    "whether it is alive, last commit time, ... The same text as the .info file\n"
    "of the segment's directory in speculofs. For a segment that cannot be read\n"
    "an 'error:' line says what is wrong.\n"
    "\n"
    "Options:\n"
    "  -h, --help   show this help\n";

static const char segments_help[] =
    "Usage: speculo segments\n"
    "\n"
    "List the segments of the segment directory ($SPECULO_DIR, else\n"
    "/dev/shm/speculo-$UID), one name a line, sorted. A missing directory has\n"
    "no segments.\n"
    "\n"
    "Options:\n"
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
        } else {
            return common_option(opt, argv[0], help);
        }
    }
    return segment_operand(argc, argv, &a->segment);
}

static const struct option help_only[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* speculo_segment_describe() into a buffer that grows to fit the text. */
static int describe(const char *segment, char **text)
{
    size_t size = 4096;
    for (;;) {
        char *buf = malloc(size);
        if (!buf)
            return -ENOMEM;
        int n = speculo_segment_describe(segment, buf, size);
        if (n >= 0 && (size_t)n < size) {
            *text = buf;
            return n;
        }
        free(buf);
        if (n < 0)
            return n;
        size = (size_t)n + 1;
    }
}

int cmd_info(int argc, char **argv)
{
    struct seg_args a;
    int status = parse_seg_args(argc, argv, info_help, "h", help_only, &a);
    if (status != CLI_CONTINUE)
        return status;
    char *text;
    int n = describe(a.segment, &text);
    if (n == -ENOENT)
        return fail(a.segment, "no such segment");
    if (n < 0)
        return fail_code(a.segment, n);
    int rc = write_all(1, text, (size_t)n);
    free(text);
    return rc < 0 ? stdout_failure(rc) : EXIT_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A segment is a regular file with a valid segment name; the rest (the
 * library's dot files, strays) is not shown. */
static bool is_segment(DIR *d, const struct dirent *e)
{
    if (speculo_segment_name_check(e->d_name) < 0)
        return false;
    if (e->d_type == DT_REG)
        return true;
    struct stat st;
    return e->d_type == DT_UNKNOWN && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode);
}

static int list_dir(const char *dir, char ***names, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_segment(d, e))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **bigger = realloc(v, cap * sizeof *v);
            if (!bigger) {
                rc = -ENOMEM;
                break;
            }
            v = bigger;
        }
        if (!(v[n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    *names = v;
    *count = n;
    return rc;
}

int cmd_segments(int argc, char **argv)
{
    int opt = cli_getopt(argc, argv, "h", help_only);
    if (opt != -1)
        return common_option(opt, argv[0], segments_help);
    if (optind != argc)
        return usage_error(argv[0], "too many arguments");

    char dir[PATH_MAX];
    int rc = speculo_segment_dir(dir, sizeof dir);
    if (rc < 0)
        return fail("segment directory", "%s", speculo_strerror(rc));
    bool missing;
    int status = check_segment_dir(dir, &missing);
    if (status != EXIT_OK || missing)
        return status;

    char **names = NULL;
    size_t n = 0;
    rc = list_dir(dir, &names, &n);
    if (rc < 0)
        status = fail(dir, "%s", strerror(-rc));
    if (n > 1)
        qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 0; i < n; i++) {
        if (status == EXIT_OK)
            puts(names[i]);
        free(names[i]);
    }
    free(names);
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
