/* Interleaved rounds of ping-pong cases, and ratios of their medians. */
#ifndef BENCH_LAT_H
#define BENCH_LAT_H

#include "pp.h"

#define LAT_MAX_ROUNDS 16

struct lat_item {
    const struct pp_case *c;
    const char *label;     /* the name in the report and the plot file */
    size_t size;
    int touch;
    int clock, clear_next, early, unpinned;
    int read_only;
    long warm, n;
    long gc_every;
    double budget_s;       /* time budget of one run (default 5 s) */
    void *peer;            /* handed to the case (peer programs) */
    struct bc_hist merged, merged_switch;
    double med[LAT_MAX_ROUNDS];   /* per round, ns */
    int rounds;
};

/* Run every item once per round, the order rotating from round to round so
 * that no case always runs first or after the same neighbour. */
void lat_rounds(struct lat_item *items, int k, int rounds);
/* Median over rounds of med(a)/med(b). */
double lat_ratio(const struct lat_item *a, const struct lat_item *b);
/* L| line and plot file of an item. */
void lat_report(const struct lat_item *it, const char *outdir);
/* "1.23 µs" of the merged median. */
const char *lat_med(const struct lat_item *it, char *buf, size_t size);

#endif
