/* Interleaved rounds of ping-pong cases (see lat.h). */
#include "lat.h"

#include <stdlib.h>
#include <string.h>

void lat_rounds(struct lat_item *items, int k, int rounds)
{
    if (rounds > LAT_MAX_ROUNDS)
        rounds = LAT_MAX_ROUNDS;
    struct bc_hist *h = malloc(sizeof *h), *hs = malloc(sizeof *hs);
    if (!h || !hs)
        bc_die("out of memory");
    for (int j = 0; j < k; j++) {
        bc_hist_reset(&items[j].merged);
        bc_hist_reset(&items[j].merged_switch);
        items[j].rounds = 0;
    }
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < k; j++) {
            struct lat_item *it = &items[(j + r) % k];
            struct pp_ctx x;
            memset(&x, 0, sizeof x);
            x.size = it->size;
            x.touch = it->touch;
            x.clock = it->clock;
            x.clear_next = it->clear_next;
            x.early = it->early;
            x.unpinned = it->unpinned;
            x.read_only = it->read_only;
            x.warm = it->warm;
            x.n = it->n;
            x.gc_every = it->gc_every;
            x.budget_s = it->budget_s;
            x.peer = it->peer;
            bc_hist_reset(h);
            bc_hist_reset(hs);
            x.hist = h;
            x.hist_switch = hs;
            int64_t t0 = bc_mono_ns();
            pp_run(it->c, &x);
            if (getenv("BENCH_VERBOSE"))
                fprintf(stderr, "  %s: %llu samples in %.2f s\n", it->label,
                        (unsigned long long)h->n, (double)(bc_mono_ns() - t0) / 1e9);
            it->med[it->rounds++] = bc_hist_ns(h, 0.5);
            bc_hist_merge(&it->merged, h);
            bc_hist_merge(&it->merged_switch, hs);
        }
    }
    free(h);
    free(hs);
}

double lat_ratio(const struct lat_item *a, const struct lat_item *b)
{
    double r[LAT_MAX_ROUNDS];
    int n = a->rounds < b->rounds ? a->rounds : b->rounds;
    for (int i = 0; i < n; i++)
        r[i] = a->med[i] / b->med[i];
    return bc_median(r, (size_t)n);
}

void lat_report(const struct lat_item *it, const char *outdir)
{
    bc_hist_report(&it->merged, it->label);
    bc_hist_dump(&it->merged, outdir, it->label);
}

const char *lat_med(const struct lat_item *it, char *buf, size_t size)
{
    return bc_fmt_ns(buf, size, bc_hist_ns(&it->merged, 0.5));
}
