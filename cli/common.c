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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---- showing user-given text ---- */

/* The length of the well-formed UTF-8 sequence at p (2 to 4 bytes, no
 * overlong form, no surrogate, at most U+10FFFF) and its code point in
 * *cp; 0 when p does not start one. */
static size_t utf8_sequence(const unsigned char *p, uint32_t *cp)
{
    size_t n = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
    if (n == 0 || p[0] > 0xf4)
        return 0;
    uint32_t c = p[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < least[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/* Characters a terminal acts on rather than shows: the C1 controls, and
 * the bidirectional overrides that make text read other than it is. */
static bool invisible_code_point(uint32_t c)
{
    return (c >= 0x80 && c <= 0x9f) || (c >= 0x200e && c <= 0x200f) ||
           (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

/* Room for the longest path and then some; longer texts are cut. */
#define SHOWN_MAX 4096
#define SHOWN_SLOTS 4

/*
 * Names and paths come from the user (arguments, $SPECULO_DIR) and may
 * hold escape sequences or newlines that would act on the terminal or
 * forge a line of output. Printable ASCII and well-formed UTF-8 are shown
 * as they are; a backslash is doubled, so that what is shown reads back
 * unambiguously; anything else is \n, \t, \r, \xHH or \uHHHH. A few
 * slots are used in turn so that one message may show several texts.
 */
const char *printable(const char *s)
{
    static const char *const named[128] = {
        ['\\'] = "\\\\", ['\n'] = "\\n", ['\t'] = "\\t", ['\r'] = "\\r"};
    static _Thread_local char slots[SHOWN_SLOTS][SHOWN_MAX + 16];
    static _Thread_local unsigned next;
    char *out = slots[next++ % SHOWN_SLOTS];
    size_t len = 0;
    const unsigned char *p = (const unsigned char *)(s ? s : "(null)");

    /* Each step adds at most 6 bytes: the slot has room past SHOWN_MAX. */
    while (*p && len < SHOWN_MAX) {
        uint32_t cp = 0;
        size_t n = *p >= 0x80 ? utf8_sequence(p, &cp) : 0;
        if (*p < 0x80 && named[*p]) {
            len += (size_t)sprintf(out + len, "%s", named[*p++]);
        } else if (*p >= 0x20 && *p < 0x7f) {
            out[len++] = (char)*p++;
        } else if (n && !invisible_code_point(cp)) {
            memcpy(out + len, p, n);
            len += n;
            p += n;
        } else if (n) {
            len += (size_t)sprintf(out + len, "\\u%04x", (unsigned)cp);
            p += n;
        } else {
            len += (size_t)sprintf(out + len, "\\x%02x", *p++);
        }
    }
    strcpy(out + len, *p ? "..." : "");
    return out;
}

/* ---- messages ---- */

int fail(const char *what, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "speculo: %s: ", printable(what));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_ERR;
}

/* The library's own message for a code: one wording for every face;
 * but its -EPERM covers several faults, and the user needs to know which. */
int fail_code(const char *what, int err)
{
    if (err == -EPERM)
        return fail_unsafe(speculo_segment_name_check(what) == 0 ? what : NULL);
    return fail(what, "%s", speculo_strerror(err));
}

/* ---- why the library calls a directory or a file unsafe ---- */

/* The library's rules for a segment file (docs/DESIGN.md) in words: what
 * is wrong with it, or NULL. Rules that bind only a writer come last,
 * with `for_writer`: they can only explain a writer's refusal. */
static const char *file_fault(const struct stat *st, bool for_writer)
{
    if (S_ISLNK(st->st_mode))
        return "it is a symbolic link";
    if (!S_ISREG(st->st_mode))
        return "not a regular file";
    if (st->st_mode & (S_IWGRP | S_IWOTH))
        return st->st_mode & S_IWOTH ? "writable by others (chmod go-w it)"
                                     : "writable by its group (chmod g-w it)";
    if (for_writer && st->st_uid != geteuid())
        return "not owned by you (a writer writes only to its own files)";
    return NULL;
}

/* What is wrong with the segment directory (of $SPECULO_DIR, or the
 * default), in the library's words (into @why), NULL when nothing (or it
 * is missing: *missing, or it cannot be examined: *err). */
static const char *segment_dir_fault(bool for_writer, bool *missing, int *err, char *why,
                                     size_t size)
{
    int rc = speculo_dir_check(NULL, for_writer ? SPECULO_DIR_WRITER : 0, why, size);
    *missing = rc == -ENOENT;
    *err = rc < 0 && rc != -EPERM ? -rc : 0;
    return rc == -EPERM ? why : NULL;
}

int check_segment_dir(const char *dir, bool *missing)
{
    int err;
    char why[256];
    const char *fault = segment_dir_fault(false, missing, &err, why, sizeof why);
    if (fault)
        return fail(dir, "unsafe segment directory: %s", fault);
    if (err && !*missing)
        return fail(dir, "%s", strerror(err));
    return EXIT_OK;
}

/*
 * The library said -EPERM: find which of its rules was broken, looking as
 * it does, the directory first, then the file. The rules that bind only a
 * writer are looked at last: if nothing else is wrong, one of them is.
 */
int fail_unsafe(const char *segment)
{
    char dir[PATH_MAX], file[PATH_MAX + SPECULO_SEGMENT_NAME_MAX + 2];
    bool missing;
    int err;
    struct stat st;
    const char *what = segment ? segment : "segment directory";
    if (speculo_segment_dir(dir, sizeof dir) < 0)
        return fail(what, "%s", speculo_strerror(-EPERM));
    char why[256];
    for (int writer_rules = 0; writer_rules <= 1; writer_rules++) {
        const char *fault = segment_dir_fault(writer_rules, &missing, &err, why, sizeof why);
        if (fault)
            return fail(what, "unsafe segment directory %s: %s", printable(dir), fault);
        snprintf(file, sizeof file, "%s/%s", dir, segment ? segment : "");
        if (segment && lstat(file, &st) == 0 && (fault = file_fault(&st, writer_rules)))
            return fail(what, "unsafe segment file %s: %s", printable(file), fault);
    }
    /* Changed since the library looked: its own words. */
    return fail(what, "%s", speculo_strerror(-EPERM));
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
        /* cli_getopt (or getopt) already said what was wrong. */
        fprintf(stderr, "Try '%s --help' for more information.\n", prog);
        return EXIT_USAGE;
    }
    return usage_error(prog, "unexpected option");
}

/* The long option that `name` (up to its '=', if any) is, or abbreviates
 * alone; NULL when none, and then *matches says how many it abbreviates. */
static const struct option *long_option(const struct option *longopts, const char *name,
                                        int *matches)
{
    size_t n = strcspn(name, "=");
    const struct option *found = NULL;
    *matches = 0;
    for (const struct option *o = longopts; o && o->name; o++) {
        if (strncmp(o->name, name, n) != 0)
            continue;
        if (strlen(o->name) == n) {
            *matches = 1;
            return o;
        }
        found = o;
        ++*matches;
    }
    return *matches == 1 ? found : NULL;
}

/* getopt's complaints, in its words, with the offending text shown
 * escaped. After a '?', a long option's word is argv[optind - 1] (getopt
 * has stepped over it); a short option is only known by optopt. */
static void report_bad_option(int argc, char **argv, const char *optstring,
                              const struct option *longopts)
{
    const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    const char *prog = argv[0];
    int matches;
    const struct option *o = NULL;
    bool is_long = strncmp(word, "--", 2) == 0 && word[2];
    if (is_long)
        o = long_option(longopts, word + 2, &matches);
    if (is_long && optopt == 0 && matches > 1) {
        fprintf(stderr, "%s: option '%s' is ambiguous; possibilities:", prog, printable(word));
        for (const struct option *p = longopts; p->name; p++)
            if (!strncmp(p->name, word + 2, strcspn(word + 2, "=")))
                fprintf(stderr, " '--%s'", p->name);
        fputc('\n', stderr);
    } else if (is_long && optopt == 0) {
        fprintf(stderr, "%s: unrecognized option '%s'\n", prog, printable(word));
    } else if (o && o->val == optopt) {
        char name[64];
        snprintf(name, sizeof name, "--%s", o->name);
        fprintf(stderr, "%s: option '%s' %s\n", prog, name,
                strchr(word, '=') ? "doesn't allow an argument" : "requires an argument");
    } else {
        char c[2] = {(char)optopt, '\0'};
        bool known = optopt && optopt != ':' && strchr(optstring, optopt);
        fprintf(stderr, "%s: %s -- '%s'\n", prog,
                known ? "option requires an argument" : "invalid option", printable(c));
    }
}

int cli_getopt(int argc, char **argv, const char *optstring, const struct option *longopts)
{
    opterr = 0;
    int opt = getopt_long(argc, argv, optstring, longopts, NULL);
    opterr = 1;
    if (opt == '?')
        report_bad_option(argc, argv, optstring, longopts);
    return opt;
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
        return usage_error(prog, "invalid wait '%s': seconds, 0 or more", printable(arg));
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
    fail(segment, "cannot create the segment directory %s: its parent does not exist",
         printable(dir));
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

/* ISO 8601 UTC with `digits` (3 or 9) of the fraction of a second. */
static void format_utc(int64_t ns, int digits, char *buf, size_t size)
{
    time_t secs = (time_t)(ns / 1000000000);
    long frac = (long)(ns % 1000000000);
    struct tm tm;
    if (ns < 0 || !gmtime_r(&secs, &tm)) {
        snprintf(buf, size, "?");
        return;
    }
    char day[24];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits == 3)
        snprintf(buf, size, "%s.%03ldZ", day, frac / 1000000);
    else
        snprintf(buf, size, "%s.%09ldZ", day, frac);
}

void format_time(int64_t ns, char *buf, size_t size)
{
    format_utc(ns, 3, buf, size);
}

void format_time_ns(int64_t ns, char *buf, size_t size)
{
    format_utc(ns, 9, buf, size);
}

void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

int segment_name_option(const char *prog, const char *segment)
{
    if (speculo_segment_name_check(segment) < 0)
        return usage_error(prog, "invalid segment name '%s'", printable(segment));
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

bool valid_utf8(const char *s)
{
    uint32_t cp;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = *p < 0x80 ? 1 : utf8_sequence(p, &cp);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

/* ---- tables ---- */

void table_init(struct table *t, const char *const *header, size_t cols, unsigned right)
{
    memset(t, 0, sizeof *t);
    t->header = header;
    t->cols = cols;
    t->right = right;
}

int table_row(struct table *t, const char *const *cells, size_t n)
{
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **bigger = realloc(t->cells, cap * t->cols * sizeof *bigger);
        if (!bigger)
            return -ENOMEM;
        t->cells = bigger;
        t->cap = cap;
    }
    char **row = t->cells + t->rows * t->cols;
    for (size_t i = 0; i < t->cols; i++) {
        row[i] = i < n ? strdup(cells[i]) : NULL;
        if (i < n && !row[i]) {
            while (i-- > 0)
                free(row[i]);
            return -ENOMEM;
        }
    }
    t->rows++;
    return 0;
}

/* Does the cell at (r, c) end a short row (and so run on, unaligned)? */
static bool runs_on(const struct table *t, size_t r, size_t c)
{
    return c + 1 < t->cols && !t->cells[r * t->cols + c + 1];
}

static void table_line(FILE *out, const struct table *t, const char *const *cells, size_t r,
                       const int *width)
{
    for (size_t c = 0; c < t->cols && cells[c]; c++) {
        bool right = t->right >> c & 1;
        if (c > 0)
            fputs("  ", out);
        if ((r != SIZE_MAX && runs_on(t, r, c)) || (c + 1 == t->cols && !right))
            fputs(cells[c], out); /* nothing after it to align */
        else
            fprintf(out, right ? "%*s" : "%-*s", width[c], cells[c]);
    }
    fputc('\n', out);
}

void table_print(FILE *out, const struct table *t, bool header)
{
    int width[16] = {0};
    for (size_t c = 0; c < t->cols && c < 16; c++) {
        if (header)
            width[c] = (int)strlen(t->header[c]);
        for (size_t r = 0; r < t->rows; r++) {
            const char *cell = t->cells[r * t->cols + c];
            if (cell && !runs_on(t, r, c) && (int)strlen(cell) > width[c])
                width[c] = (int)strlen(cell);
        }
    }
    if (header)
        table_line(out, t, t->header, SIZE_MAX, width);
    for (size_t r = 0; r < t->rows; r++)
        table_line(out, t, (const char *const *)t->cells + r * t->cols, r, width);
}

void table_free(struct table *t)
{
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
