/*
 * speculo tail [-n N] [--from ID] [-f] SEG
 *
 * Prints the live chunks' bytes in commit order, straight from the mapping.
 * With -f it then follows: between chunks it blocks in follow_wait() (a
 * futex wait: no polling, no CPU while idle); the library carries the reader across
 * garbage-collection switches; a removed segment (by `speculo rm`, or by
 * rm or mv of its file, which inotify tells) is waited for and followed
 * again from the first chunk of its new incarnation, as `tail -F` follows
 * a file name.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char tail_help[] =
    "Usage: speculo tail [-n N | --from ID] [-f] SEG\n"
    "\n"
    "Write the bytes of the live chunks of segment SEG to stdout in commit\n"
    "order, back to back, and exit; with -f, then follow: write every chunk\n"
    "committed afterwards as soon as it is committed, until interrupted or\n"
    "until the reader of the output goes away.\n"
    "\n"
    "Options:\n"
    "  -n, --lines N     only the last N live chunks (0: none, e.g. with -f)\n"
    "      --from ID     only the chunks committed after chunk ID\n"
    "  -f, --follow      follow new chunks; blocks without polling between them.\n"
    "                    A segment that does not exist yet is waited for, and\n"
    "                    one that is removed (speculo rm, or rm or mv of its\n"
    "                    file) and created again is followed on\n"
    "  -h, --help        show this help\n";

struct tail_args {
    const char *segment;
    bool follow;
    bool last_n; /* -n given */
    uint64_t n;
    bool from_set; /* --from given */
    uint64_t from;
};

enum { OPT_FROM = 256 };

static int tail_option(int opt, const char *prog, struct tail_args *a)
{
    switch (opt) {
    case 'f':
        a->follow = true;
        return CLI_CONTINUE;
    case 'n':
        if (!parse_u64(optarg, &a->n))
            return usage_error(prog, "invalid number of chunks '%s'", printable(optarg));
        a->last_n = true;
        return CLI_CONTINUE;
    case OPT_FROM:
        if (!parse_u64(optarg, &a->from))
            return usage_error(prog, "invalid chunk id '%s'", printable(optarg));
        a->from_set = true;
        return CLI_CONTINUE;
    default:
        return common_option(opt, prog, tail_help);
    }
}

static int parse_tail(int argc, char **argv, struct tail_args *a)
{
    static const struct option longopts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"lines", required_argument, NULL, 'n'},
        {"from", required_argument, NULL, OPT_FROM},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    memset(a, 0, sizeof *a);
    while ((opt = cli_getopt(argc, argv, "fn:h", longopts)) != -1) {
        int rc = tail_option(opt, argv[0], a);
        if (rc != CLI_CONTINUE)
            return rc;
    }
    if (a->last_n && a->from_set)
        return usage_error(argv[0], "-n and --from cannot be used together");
    return segment_operand(argc, argv, &a->segment);
}

/*
 * The id to seek after so that the last n live chunks up to `bound` come
 * next: one pass over the live chunks keeping the ids of the latest n in a
 * ring (grown on demand, so a huge n costs only what the segment holds).
 */
static int seek_last_n(speculo_reader *r, uint64_t n, uint64_t bound)
{
    if (n == 0)
        return speculo_reader_seek(r, bound);
    uint64_t *ring = NULL;
    size_t cap = 0, count = 0;
    int rc;
    speculo_chunk c;
    while ((rc = speculo_reader_next(r, &c)) == 0 && c.id <= bound) {
        if (count == cap && cap < n) {
            size_t bigger = cap ? cap * 2 : 64;
            if (bigger > n)
                bigger = (size_t)n;
            uint64_t *v = realloc(ring, bigger * sizeof *v);
            if (!v) {
                free(ring);
                return -ENOMEM;
            }
            ring = v;
            cap = bigger;
        }
        ring[count % cap] = c.id;
        count++;
    }
    if (rc < 0 && rc != -EAGAIN) {
        free(ring);
        return rc;
    }
    /* The oldest id kept is the first to print; fewer than n: all. */
    uint64_t after = count > cap ? ring[count % cap] - 1 : 0;
    free(ring);
    return speculo_reader_seek(r, after);
}

/* Where printing starts: -n, --from, or the oldest chunk. *bound receives
 * the newest id at the start, where a tail without -f stops. */
static int position(speculo_reader *r, const struct tail_args *a, uint64_t *bound)
{
    int rc = newest_chunk_id(r, bound);
    if (rc < 0)
        return rc;
    if (a->from_set)
        return speculo_reader_seek(r, a->from);
    if (a->last_n)
        return seek_last_n(r, a->n, *bound);
    return 0;
}

/* Open the segment; with -f, wait for it to exist first. 0, -EINTR when a
 * stop was requested while waiting, or another -errno (reported). */
static int open_tail(const struct tail_args *a, speculo_reader **r)
{
    for (;;) {
        if (a->follow)
            removal_watch_arm(); /* a missing directory: the open says so */
        int rc = speculo_reader_open(a->segment, r);
        if (rc == 0)
            return 0;
        if (rc != -ENOENT || !a->follow)
            return open_reader(a->segment, r); /* reports it */
        rc = wait_for_segment(a->segment);
        if (rc == -EINTR)
            return rc;
        if (rc < 0) {
            fail(a->segment, "cannot wait for the segment: %s", strerror(-rc));
            return rc;
        }
    }
}

/* Print what is there: every chunk up to `bound`, or all of them with
 * -f (whose loop then waits at -EAGAIN). 0 when caught up, else -errno;
 * *output_failed tells a failed write to stdout from a reader error. */
static int print_chunks(speculo_reader *r, uint64_t bound, bool follow, bool *output_failed)
{
    for (;;) {
        speculo_chunk c;
        int rc = speculo_reader_next(r, &c);
        if (rc < 0)
            return rc == -EAGAIN ? 0 : rc;
        if (!follow && c.id > bound)
            return 0;
        if ((rc = write_all(STDOUT_FILENO, c.data, c.size)) < 0) {
            *output_failed = true;
            return rc;
        }
    }
}

/*
 * The segment was removed: wait until one of that name exists again, and
 * let the reader (which retries at each call) move to it. Several removals
 * in a row without a chunk in between can mean the file is still there
 * while being removed: back off a little rather than spin.
 */
static int await_recreation(const char *segment, int streak)
{
    if (streak > 1) {
        struct timespec ts = {0, (streak < 10 ? streak : 10) * 10000000L};
        nanosleep(&ts, NULL);
    }
    int rc = wait_for_segment(segment);
    if (rc == 0)
        removal_watch_arm(); /* the directory may be a new one */
    return rc;
}

/* Do two readers hold the same segment? created_ns is kept by the garbage
 * collector and differs for a segment created again. */
static bool same_segment(speculo_reader *a, speculo_reader *b)
{
    struct speculo_segment_info ia, ib;
    memset(&ia, 0, sizeof ia);
    memset(&ib, 0, sizeof ib);
    return speculo_reader_info(a, &ia) == 0 && speculo_reader_info(b, &ib) == 0 &&
           ia.created_ns == ib.created_ns;
}

/*
 * The segment's file was removed or renamed away, maybe behind the
 * library's back (rm or mv rather than `speculo rm`): then nothing tells
 * *r, which may hold a file that is no longer the segment. Follow what the
 * name holds, once it holds something: another segment (created again) is
 * followed from its first chunk, as after `speculo rm`; the same one (moved
 * back, or already reached by the library's reader) keeps *r, which goes on
 * where it was.
 */
static int follow_name(speculo_reader **r, const char *segment)
{
    speculo_reader *now;
    int rc;
    while ((rc = speculo_reader_open(segment, &now)) == -ENOENT)
        if ((rc = await_recreation(segment, 0)) < 0)
            return rc;
    if (rc < 0)
        return rc;
    if (same_segment(*r, now)) {
        speculo_reader_close(now);
    } else {
        speculo_reader_close(*r);
        *r = now;
    }
    return 0;
}

/* Follow until stopped. Returns -EINTR when a stop was requested, or an
 * error; *output_failed as print_chunks. */
static int follow(speculo_reader **r, const char *segment, bool *output_failed)
{
    int removed_streak = 0;
    for (;;) {
        int rc = print_chunks(*r, UINT64_MAX, true, output_failed);
        if (rc == -ENOENT) {
            rc = await_recreation(segment, ++removed_streak);
        } else if (rc == 0 && removal_noticed()) {
            rc = follow_name(r, segment);
        } else if (rc == 0) {
            removed_streak = 0;
            rc = follow_wait(*r, -1);
        }
        if (stop_requested() != STOP_NONE)
            return -EINTR;
        if (*output_failed || (rc < 0 && rc != -EINTR && rc != -ECANCELED && rc != -ETIMEDOUT))
            return rc;
    }
}

/* Turn the outcome of printing or following into the exit status. */
static int tail_status(int rc, bool output_failed, const char *segment)
{
    if (stop_requested() != STOP_NONE)
        return stop_exit(stop_requested());
    if (rc == 0)
        return EXIT_OK;
    if (output_failed)
        return stdout_failure(rc);
    if (rc == -ENOENT)
        return fail(segment, "the segment was removed");
    return fail_code(segment, rc);
}

int cmd_tail(int argc, char **argv)
{
    struct tail_args a;
    int status = parse_tail(argc, argv, &a);
    if (status != CLI_CONTINUE)
        return status;
    int rc;
    if (a.follow && (rc = follow_watch_start(a.segment)) < 0)
        return fail(a.segment, "cannot watch for signals and removals: %s", strerror(-rc));

    speculo_reader *r;
    rc = open_tail(&a, &r);
    if (rc < 0)
        return rc == -EINTR ? tail_status(rc, false, a.segment) : EXIT_ERR;
    uint64_t bound = 0;
    bool output_failed = false;
    rc = position(r, &a, &bound);
    if (rc == 0)
        rc = a.follow ? follow(&r, a.segment, &output_failed)
                      : print_chunks(r, bound, false, &output_failed);
    speculo_reader_close(r);
    return tail_status(rc, output_failed, a.segment);
}
