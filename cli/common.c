/*
 * Helpers shared by the subcommands: messages, argument parsing, opening
 * handles with friendly errors, and writing to stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int fail(const char *what, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "speculo: %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_ERR;
}

/* The library's own message for a code: one wording for every face. */
int fail_code(const char *what, int err)
{
    return fail(what, "%s", speculo_strerror(err));
}

int usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
    return EXIT_USAGE;
}

int print_help(const char *text)
{
    fputs(text, stdout);
    return finish_stdout(EXIT_OK);
}

int common_option(int opt, const char *prog, const char *help)
{
    if (opt == 'h')
        return print_help(help);
    if (opt == '?') {
        /* getopt already said what was wrong, prefixed with PROG. */
        fprintf(stderr, "Try '%s --help' for more information.\n", prog);
        return EXIT_USAGE;
    }
    return usage_error(prog, "unexpected option");
}

bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

bool parse_u64(const char *s, uint64_t *v)
{
    uint64_t n = 0;
    if (!all_digits(s))
        return false;
    for (; *s; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    *v = n;
    return true;
}

int wait_option(const char *prog, const char *arg, int *ms)
{
    int64_t ns;
    if (!parse_seconds(arg, &ns))
        return usage_error(prog, "invalid wait '%s': seconds, 0 or more", arg);
    *ms = ns / 1000000 > INT_MAX ? INT_MAX : (int)(ns / 1000000);
    return CLI_CONTINUE;
}

/*
 * Parsed by hand rather than with strtod: strtod accepts "nan", "inf",
 * hex, exponents and the locale's decimal point, and a binary double
 * would turn 0.1 s into 99999999 ns. Fraction digits past the ninth only
 * matter as "is anything left", for the round-up of tiny values.
 */
bool parse_seconds(const char *s, int64_t *ns)
{
    uint64_t whole = 0, frac = 0;
    unsigned frac_digits = 0;
    bool any_digit = false, tail_nonzero = false;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        if (whole > (UINT64_MAX - 9) / 10)
            return false;
        whole = whole * 10 + (uint64_t)(*p - '0');
        any_digit = true;
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            any_digit = true;
            if (frac_digits < 9) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                frac_digits++;
            } else if (*p != '0') {
                tail_nonzero = true;
            }
        }
    }
    if (!any_digit || *p)
        return false;
    for (; frac_digits < 9; frac_digits++)
        frac *= 10;
    if (whole > (uint64_t)INT64_MAX / 1000000000u)
        return false;
    uint64_t total = whole * 1000000000u;
    if (total > (uint64_t)INT64_MAX - frac)
        return false;
    total += frac;
    if (total == 0 && tail_nonzero)
        total = 1;
    *ns = (int64_t)total;
    return true;
}

int open_reader(const char *segment, speculo_reader **r)
{
    int rc = speculo_reader_open(segment, r);
    if (rc == -ENOENT)
        fail(segment, "no such segment");
    else if (rc < 0)
        fail_code(segment, rc);
    return rc;
}

int require_segment(const char *segment)
{
    speculo_reader *r;
    int rc = open_reader(segment, &r);
    if (rc == 0)
        speculo_reader_close(r);
    return rc;
}

int newest_chunk_id(speculo_reader *r, uint64_t *id)
{
    struct speculo_segment_info info;
    memset(&info, 0, sizeof info);
    int rc = speculo_reader_info(r, &info);
    if (rc == 0)
        *id = info.last_id;
    return rc;
}

int64_t segment_writer_pid(const char *segment)
{
    speculo_reader *r;
    struct speculo_segment_info info;
    int64_t pid = 0;
    if (speculo_reader_open(segment, &r) < 0)
        return 0;
    memset(&info, 0, sizeof info);
    if (speculo_reader_info(r, &info) == 0 && info.writer_alive)
        pid = info.writer_pid;
    speculo_reader_close(r);
    return pid;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* A writer creates the segment directory, but not its parents. */
static void report_no_directory(const char *segment)
{
    char dir[PATH_MAX];
    if (speculo_segment_dir(dir, sizeof dir) < 0)
        snprintf(dir, sizeof dir, "?");
    fail(segment, "cannot create the segment directory %s: its parent does not exist", dir);
}

/*
 * The writer role is held by one live process at a time; a concurrent
 * `put` usually holds it for milliseconds, so retrying for a few seconds
 * turns a burst of puts from a shell into a queue rather than failures.
 * Short sleeps (10 ms, growing to 50 ms) keep the added latency small.
 */
int open_writer_waiting(const char *segment, const struct speculo_writer_options *opts, int wait_ms,
                        speculo_writer **w)
{
    int64_t deadline = monotonic_ms() + wait_ms;
    int step = 10;
    for (;;) {
        int rc = speculo_writer_open(segment, opts, w);
        if (rc != -EBUSY) {
            if (rc == -ENOENT)
                report_no_directory(segment);
            else if (rc < 0)
                fail_code(segment, rc);
            return rc;
        }
        int64_t left = deadline - monotonic_ms();
        if (left <= 0)
            break;
        sleep_ms(step < left ? step : (int)left);
        if (step < 50)
            step += 10;
    }
    int64_t pid = segment_writer_pid(segment);
    if (pid > 0)
        fail(segment, "another process (pid %lld) is the writer; gave up after %d.%03d s",
             (long long)pid, wait_ms / 1000, wait_ms % 1000);
    else
        fail(segment, "another process is the writer; gave up after %d.%03d s", wait_ms / 1000,
             wait_ms % 1000);
    return -EBUSY;
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        /* Large chunks go in slices: write(2) on a pipe returns short
         * anyway, and a 2 GiB+ count is capped by the kernel. */
        size_t n = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR && stop_requested() == STOP_NONE)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int stdout_failure(int err)
{
    if (err == -EPIPE)
        return EXIT_OK;
    return fail("stdout", "%s", strerror(-err));
}

int finish_stdout(int status)
{
    if (fflush(stdout) == EOF || ferror(stdout)) {
        int err = errno ? errno : EIO;
        if (err == EPIPE)
            return status;
        fail("stdout", "%s", strerror(err));
        return EXIT_ERR;
    }
    return status;
}

void format_time(int64_t ns, char *buf, size_t size)
{
    time_t secs = (time_t)(ns / 1000000000);
    long ms = (long)(ns % 1000000000) / 1000000;
    struct tm tm;
    if (ns < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(buf, size, "?");
        return;
    }
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03ldZ", day, ms);
}

int segment_name_option(const char *prog, const char *segment)
{
    if (speculo_segment_name_check(segment) < 0)
        return usage_error(prog, "invalid segment name '%s'", segment);
    return CLI_CONTINUE;
}

int segment_operand(int argc, char **argv, const char **segment)
{
    if (argc - optind != 1)
        return usage_error(argv[0], argc == optind ? "missing segment name" : "too many arguments");
    *segment = argv[optind];
    return segment_name_option(argv[0], *segment);
}

void guard_standard_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        /* The lowest free descriptor: fd itself, the ones below being open. */
        int got = open("/dev/null", O_PATH | O_CLOEXEC);
        if (got >= 0 && got != fd)
            close(got);
    }
}
