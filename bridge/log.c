/*
 * Log lines: one per state change, on stderr, each written with one
 * write(2) so that threads never interleave within a line. Text that came
 * from the network is made printable first (printable(), cli/common.c).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "cli.h"

static char prefix[SPECULO_SEGMENT_NAME_MAX + 64];
static pthread_mutex_t ignored_lock = PTHREAD_MUTEX_INITIALIZER;

void br_log_init(const char *role, const char *segment)
{
    snprintf(prefix, sizeof prefix, "speculo bridge %s: %s: ", role, segment);
}

static void vlog(const char *fmt, va_list ap)
{
    char line[2048];
    size_t n = (size_t)snprintf(line, sizeof line, "%s", prefix);
    if (n < sizeof line)
        vsnprintf(line + n, sizeof line - n, fmt, ap);
    n = strlen(line);
    if (n == sizeof line - 1)
        n--; /* cut: keep room for the newline */
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w; /* nowhere to report a failure to write a log line */
}

void br_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

/* At most IGNORED_BURST lines per IGNORED_WINDOW_S seconds. */
#define IGNORED_BURST 5
#define IGNORED_WINDOW_S 60

void br_log_ignored(uint64_t seq, const char *subject, const char *why)
{
    static time_t window;
    static unsigned logged;
    static unsigned long long suppressed;
    time_t now = time(NULL);
    pthread_mutex_lock(&ignored_lock);
    if (now - window >= IGNORED_WINDOW_S) {
        window = now;
        logged = 0;
    }
    if (logged < IGNORED_BURST) {
        logged++;
        char more[64] = "";
        if (suppressed)
            snprintf(more, sizeof more, " (and %llu more ignored before it)", suppressed);
        suppressed = 0;
        br_log("ignored message %llu on %s: %s%s", (unsigned long long)seq, printable(subject),
               printable(why), more);
    } else {
        suppressed++;
    }
    pthread_mutex_unlock(&ignored_lock);
}
