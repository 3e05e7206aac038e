/*
 * Benchmark common code: a cheap timer, a log-bucket histogram, CPU
 * pinning, a shared scratch page for the processes of one measurement, and
 * the result lines that scripts/bench turns into docs/PERFORMANCE.md.
 *
 * Result lines (one per line on stdout, fields separated by '|'):
 *
 *   T|id|what|subject|baseline|ratio|target|verdict   a target, as a ratio
 *   L|case|samples|median|p99|p99.9|max               a latency distribution (ns)
 *   I|section|col1|col2|...                           a row of a detail table
 *   H|section|col1|col2|...                           the header of that table
 *   N|text                                            a note for the report
 *
 * Every figure with a target is a ratio measured in the same run against a
 * baseline: the machine is shared and noisy. Measurements interleave the
 * baseline and the subject round by round, and ratios are the median of
 * the per-round ratios.
 */
#ifndef BENCH_BC_H
#define BENCH_BC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- time ---------------------------------------------------------- */

/* Ticks of a cheap monotonic counter (the TSC on x86-64), and ns. */
uint64_t bc_ticks(void);
double bc_ticks_to_ns(uint64_t ticks);
/* Monotonic nanoseconds from the system clock (valid across processes). */
int64_t bc_mono_ns(void);
/* Calibrate the tick counter against CLOCK_MONOTONIC (call once, early). */
void bc_calibrate(void);

/* ---- histogram ------------------------------------------------------- */

/* 64 sub-buckets per power of two: every value is kept within 1/64. */
#define BC_SUB_BITS 6
#define BC_SUB (1u << BC_SUB_BITS)
#define BC_BUCKETS ((64 - BC_SUB_BITS + 1) * BC_SUB)

struct bc_hist {
    uint64_t n, sum, min, max; /* ticks */
    uint64_t count[BC_BUCKETS];
};

void bc_hist_reset(struct bc_hist *h);
static inline unsigned bc_bucket(uint64_t v)
{
    if (v < BC_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return (e - BC_SUB_BITS + 1) * BC_SUB + (unsigned)((v >> (e - BC_SUB_BITS)) & (BC_SUB - 1));
}
static inline void bc_hist_add(struct bc_hist *h, uint64_t v)
{
    h->count[bc_bucket(v)]++;
    h->n++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}
void bc_hist_merge(struct bc_hist *into, const struct bc_hist *from);
/* The value (ticks) below which a fraction q of the samples lie. */
double bc_hist_quantile(const struct bc_hist *h, double q);
/* Same, in ns. */
double bc_hist_ns(const struct bc_hist *h, double q);
/* Write "ns fraction_at_or_below" lines for a plot of the distribution. */
int bc_hist_dump(const struct bc_hist *h, const char *dir, const char *name);
/* Print the L| line of a distribution. */
void bc_hist_report(const struct bc_hist *h, const char *name);

/* ---- statistics -------------------------------------------------------- */

double bc_median(double *v, size_t n); /* sorts v */

/* ---- processes ------------------------------------------------------- */

/* Pin the calling process to one CPU (ignored when that CPU is absent). */
void bc_pin(int cpu);
/* Let the calling process run on every CPU again. */
void bc_unpin(void);
/* How many CPUs this process may run on. */
int bc_ncpus(void);
/* An anonymous shared mapping, zeroed, visible to children forked later. */
void *bc_shared(size_t size);
void bc_unshared(void *p, size_t size);
/* Wait for a child and fail loudly if it failed. */
void bc_wait_child(int pid, const char *what);
/* Wait (yielding) until *flag >= want (shared between processes; steps only grow). */
void bc_spin_until(volatile uint32_t *flag, uint32_t want);

/* ---- run options -------------------------------------------------------- */

struct bc_opts {
    bool quick;        /* fewer rounds and iterations */
    const char *out;   /* where histogram dumps go (NULL: none) */
    const char *only;  /* run only the part of this name (NULL: all) */
};
void bc_parse(int argc, char **argv, struct bc_opts *o);
bool bc_want(const struct bc_opts *o, const char *part);

/* ---- results ------------------------------------------------------------ */

/* A target line. `higher_is_better`: the ratio must be >= target, else <=. */
void bc_target(const char *id, const char *what, const char *subject, const char *baseline,
               double ratio, bool higher_is_better, double target);
/* An informational ratio, no target. */
void bc_factor(const char *id, const char *what, const char *subject, const char *baseline,
               double ratio);
void bc_row(const char *section, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bc_head(const char *section, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bc_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Human figures: "1.23 µs", "4.5 M/s", "2.1 GB/s". */
const char *bc_fmt_ns(char *buf, size_t size, double ns);
const char *bc_fmt_rate(char *buf, size_t size, double per_s, const char *unit);

/* Fatal error with a message (benchmarks have no error recovery). */
void bc_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A unique name for this process's temporary segments and files. */
const char *bc_tag(void);

#endif
