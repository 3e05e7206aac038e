/* Benchmark common code (see bc.h). */
#include "bc.h"

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BC_HAVE_TSC 1
#endif

static double tick_ns = 1.0; /* ns per tick */

int64_t bc_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t bc_ticks(void)
{
#ifdef BC_HAVE_TSC
    _mm_lfence(); /* no earlier instruction still in flight */
    return __rdtsc();
#else
    return (uint64_t)bc_mono_ns();
#endif
}

double bc_ticks_to_ns(uint64_t ticks)
{
    return (double)ticks * tick_ns;
}

void bc_calibrate(void)
{
#ifdef BC_HAVE_TSC
    int64_t n0 = bc_mono_ns();
    uint64_t t0 = bc_ticks();
    struct timespec d = {0, 50 * 1000 * 1000};
    nanosleep(&d, NULL);
    int64_t n1 = bc_mono_ns();
    uint64_t t1 = bc_ticks();
    tick_ns = (double)(n1 - n0) / (double)(t1 - t0);
#endif
}

/* ---- histogram ------------------------------------------------------- */

void bc_hist_reset(struct bc_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void bc_hist_merge(struct bc_hist *into, const struct bc_hist *from)
{
    for (unsigned i = 0; i < BC_BUCKETS; i++)
        into->count[i] += from->count[i];
    into->n += from->n;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

static void bucket_range(unsigned idx, double *lo, double *width)
{
    if (idx < BC_SUB) {
        *lo = idx;
        *width = 1;
        return;
    }
    unsigned k = idx / BC_SUB, sub = idx % BC_SUB;
    *lo = (double)((uint64_t)(BC_SUB + sub) << (k - 1));
    *width = (double)((uint64_t)1 << (k - 1));
}

double bc_hist_quantile(const struct bc_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    if (q >= 1.0)
        return (double)h->max;
    /* the rank of the sample asked for, then the bucket holding it;
     * inside the bucket the samples are taken as evenly spread */
    double rank = q * (double)h->n;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BC_BUCKETS; i++) {
        if (!h->count[i])
            continue;
        if ((double)(seen + h->count[i]) >= rank) {
            double lo, w;
            bucket_range(i, &lo, &w);
            double v = lo + w * (rank - (double)seen) / (double)h->count[i];
            if (v < (double)h->min)
                v = (double)h->min;
            if (v > (double)h->max)
                v = (double)h->max;
            return v;
        }
        seen += h->count[i];
    }
    return (double)h->max;
}

double bc_hist_ns(const struct bc_hist *h, double q)
{
    return bc_hist_quantile(h, q) * tick_ns;
}

int bc_hist_dump(const struct bc_hist *h, const char *dir, const char *name)
{
    if (!dir || h->n == 0)
        return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.dat", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    uint64_t seen = 0;
    fprintf(f, "# latency_ns fraction_at_or_below (%s, %llu samples)\n", name,
            (unsigned long long)h->n);
    for (unsigned i = 0; i < BC_BUCKETS; i++) {
        if (!h->count[i])
            continue;
        double lo, w;
        bucket_range(i, &lo, &w);
        seen += h->count[i];
        fprintf(f, "%.1f %.9f\n", (lo + w) * tick_ns, (double)seen / (double)h->n);
    }
    fclose(f);
    return 0;
}

void bc_hist_report(const struct bc_hist *h, const char *name)
{
    printf("L|%s|%llu|%.0f|%.0f|%.0f|%.0f\n", name, (unsigned long long)h->n,
           bc_hist_ns(h, 0.5), bc_hist_ns(h, 0.99), bc_hist_ns(h, 0.999),
           bc_ticks_to_ns(h->max));
    fflush(stdout);
}

/* ---- statistics -------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bc_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- processes ------------------------------------------------------- */

void bc_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % bc_ncpus(), &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

void bc_unpin(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < bc_ncpus() && i < CPU_SETSIZE; i++)
        CPU_SET(i, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

int bc_ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void *bc_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        bc_die("mmap shared: %s", strerror(errno));
    return p;
}

void bc_unshared(void *p, size_t size)
{
    munmap(p, size);
}

void bc_wait_child(int pid, const char *what)
{
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            bc_die("waitpid %s: %s", what, strerror(errno));
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bc_die("%s: child failed (status %d)", what, st);
}

void bc_spin_until(volatile uint32_t *flag, uint32_t want)
{
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < want)
        sched_yield();
}

/* ---- options ------------------------------------------------------------ */

void bc_parse(int argc, char **argv, struct bc_opts *o)
{
    memset(o, 0, sizeof *o);
    const char *q = getenv("QUICK");
    o->quick = q && *q && strcmp(q, "0") != 0;
    int c;
    while ((c = getopt(argc, argv, "qo:p:")) != -1) {
        switch (c) {
        case 'q': o->quick = true; break;
        case 'o': o->out = optarg; break;
        case 'p': o->only = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-q] [-o DIR] [-p PART]\n", argv[0]);
            exit(2);
        }
    }
    bc_calibrate();
}

bool bc_want(const struct bc_opts *o, const char *part)
{
    if (!o->only)
        return true;
    /* a comma-separated list */
    size_t n = strlen(part);
    for (const char *s = o->only; *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && strncmp(s, part, n) == 0)
            return true;
        if (!e)
            break;
        s = e + 1;
    }
    return false;
}

/* ---- results ------------------------------------------------------------ */

void bc_target(const char *id, const char *what, const char *subject, const char *baseline,
               double ratio, bool higher_is_better, double target)
{
    bool met = higher_is_better ? ratio >= target : ratio <= target;
    printf("T|%s|%s|%s|%s|%.3f|%s %.2f|%s\n", id, what, subject, baseline, ratio,
           higher_is_better ? ">=" : "<=", target, met ? "met" : "MISSED");
    fflush(stdout);
}

void bc_factor(const char *id, const char *what, const char *subject, const char *baseline,
               double ratio)
{
    printf("T|%s|%s|%s|%s|%.3f|-|report\n", id, what, subject, baseline, ratio);
    fflush(stdout);
}

static void vline(char kind, const char *section, const char *fmt, va_list ap)
{
    if (section)
        printf("%c|%s|", kind, section);
    else
        printf("%c|", kind);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
}

void bc_row(const char *section, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline('I', section, fmt, ap);
    va_end(ap);
}

void bc_head(const char *section, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline('H', section, fmt, ap);
    va_end(ap);
}

void bc_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline('N', NULL, fmt, ap);
    va_end(ap);
}

const char *bc_fmt_ns(char *buf, size_t size, double ns)
{
    if (ns < 1e3)
        snprintf(buf, size, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, size, "%.2f µs", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, size, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, size, "%.2f s", ns / 1e9);
    return buf;
}

const char *bc_fmt_rate(char *buf, size_t size, double v, const char *unit)
{
    if (v >= 1e9)
        snprintf(buf, size, "%.2f G%s", v / 1e9, unit);
    else if (v >= 1e6)
        snprintf(buf, size, "%.2f M%s", v / 1e6, unit);
    else if (v >= 1e3)
        snprintf(buf, size, "%.1f k%s", v / 1e3, unit);
    else
        snprintf(buf, size, "%.1f %s", v, unit);
    return buf;
}

void bc_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

const char *bc_tag(void)
{
    static char tag[32];
    if (!tag[0])
        snprintf(tag, sizeof tag, "bench%ld", (long)getpid());
    return tag;
}
