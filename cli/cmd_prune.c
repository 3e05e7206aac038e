/*
 * speculo prune: remove what dead writers left — segments whose writer is
 * dead and whose last commit is old enough, and the temporary files of
 * collections and creations they did not finish.
 *
 * Whether a writer is alive is the library's answer (the lock on the
 * segment file, which holds across PID namespaces), and the removal itself
 * takes the writer role (speculo_segment_remove() without force), so a
 * writer that starts meanwhile is never removed from under.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

static const char prune_help[] =
    "Usage: speculo prune [--older-than DURATION] [--dry-run]\n"
    "Remove what dead writers left in the segment directory: every segment\n"
    "whose writer is dead (or that never had one) and whose last commit (its\n"
    "creation, if it has none) is older than DURATION, and the temporary files\n"
    "of collections and creations that dead writers did not finish. A segment\n"
    "whose writer is alive is never removed, whatever its age. Prints each file\n"
    "removed with the bytes it held, then the total.\n"
    "\n"
    "  --older-than DURATION  only segments idle this long: 90s, 10m, 2h, 7d,\n"
    "                         or seconds (default 0: any age)\n"
    "  -n, --dry-run          say what would be removed, remove nothing\n"
    "  -h, --help             show this help\n";

/* "90s", "10m", "2h", "1d", "0", "1.5h" into ns; false when malformed. */
static bool parse_duration(const char *s, int64_t *ns)
{
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    char num[64];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof num)
        return false;
    int64_t scale = 1;
    memcpy(num, s, len + 1);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (num[len - 1] == units[i].unit) {
            num[--len] = '\0';
            scale = units[i].seconds;
            break; /* one unit; "h" alone leaves nothing to look at */
        }
    }
    int64_t base;
    if (!parse_seconds(num, &base) || base > INT64_MAX / scale)
        return false;
    *ns = base * scale;
    return true;
}

struct prune {
    bool dry_run;
    int64_t cutoff_ns; /* segments idle since before this go */
    uint64_t files, bytes;
    int status;
};

static void report(struct prune *p, const char *what, uint64_t bytes)
{
    printf("%s %s (%" PRIu64 " bytes)\n", p->dry_run ? "would remove" : "removed", printable(what),
           bytes);
    p->files++;
    p->bytes += bytes;
}

/* The bytes a segment's file holds (what removing it frees). */
static uint64_t file_bytes(const char *segment)
{
    char dir[4096], path[4096 + SPECULO_SEGMENT_NAME_MAX + 2];
    struct stat st;
    if (speculo_segment_dir(dir, sizeof dir) < 0)
        return 0;
    snprintf(path, sizeof path, "%s/%s", dir, segment);
    return lstat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

static void prune_segment(struct prune *p, const char *segment)
{
    struct seg_report rep;
    int rc = seg_report_load(segment, &rep);
    if (rc == -ENOENT)
        return; /* removed meanwhile */
    if (rc < 0 || !rep.ok) {
        /* not a readable segment: nothing says how old it is */
        if (rc == 0)
            seg_report_free(&rep);
        return;
    }
    const struct speculo_segment_info *s = &rep.info;
    int64_t last = s->last_commit_ns ? s->last_commit_ns : s->created_ns;
    bool wanted = !s->writer_alive && last <= p->cutoff_ns;
    seg_report_free(&rep);
    if (!wanted)
        return;
    uint64_t bytes = file_bytes(segment);
    if (!p->dry_run) {
        rc = speculo_segment_remove(segment, 0);
        if (rc == -EBUSY || rc == -ENOENT)
            return; /* a writer took it meanwhile, or someone removed it */
        if (rc < 0) {
            p->status = fail_code(segment, rc);
            return;
        }
    }
    report(p, segment, bytes);
}

static void on_leftover(const char *file, uint64_t bytes, void *arg)
{
    report(arg, file, bytes);
}

int cmd_prune(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"older-than", required_argument, NULL, 'o'},
        {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct prune p = {.status = EXIT_OK};
    int64_t older = 0;
    int opt;
    while ((opt = cli_getopt(argc, argv, "nh", longopts)) != -1) {
        if (opt == 'o') {
            if (!parse_duration(optarg, &older))
                return usage_error(argv[0], "invalid duration '%s'", printable(optarg));
        } else if (opt == 'n') {
            p.dry_run = true;
        } else {
            return common_option(opt, argv[0], prune_help);
        }
    }
    if (optind < argc)
        return usage_error(argv[0], "unexpected argument '%s'", printable(argv[optind]));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    p.cutoff_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - older;

    char **names;
    size_t count;
    int status = list_segments(&names, &count);
    if (status != EXIT_OK)
        return status;
    /* the leftovers first: removing a segment would take its own silently */
    int rc = speculo_leftovers_remove(NULL, NULL, p.dry_run ? SPECULO_DRY_RUN : 0, on_leftover, &p);
    if (rc < 0 && rc != -ENOENT)
        p.status = fail_code("segment directory", rc);
    for (size_t i = 0; i < count; i++)
        prune_segment(&p, names[i]);
    free_names(names, count);
    printf("%s %" PRIu64 " file%s, %" PRIu64 " bytes\n", p.dry_run ? "would free" : "freed",
           p.files, p.files == 1 ? "" : "s", p.bytes);
    return finish_stdout(p.status);
}
