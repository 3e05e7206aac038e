/*
 * Round-trip latency between two processes (parent on CPU 0, child on
 * CPU 1), 64-byte messages, ping-pong over two segments:
 *
 *   lat       speculo busy-polling vs a raw shared cache line and vs the
 *             record floor (the record's own bytes and one clock read, no
 *             library), pinned and not; speculo blocking (reader_wait) vs
 *             pipe, socketpair, POSIX mqueue; a blocking reader without
 *             write access to the segment's file (it sleeps in slices) vs
 *             one with it
 *   sweep     zero-copy payload sweep 8 B .. 4 MiB, reader touching only the
 *             first 8 bytes, or the whole payload
 *   gcswitch  a collection of the ping segment every so many round trips:
 *             the round trip right after it includes the reader's switch
 */
#include <stdlib.h>
#include <string.h>

#include "lat.h"

static void part_lat(const struct bc_opts *o)
{
    long n_spin = o->quick ? 20000 : 100000, n_block = o->quick ? 3000 : 20000;
    int rounds = o->quick ? 3 : 9;
    struct lat_item it[] = {
        {.c = &pp_raw, .label = "raw-cacheline", .warm = 2000, .n = n_spin},
        {.c = &pp_rawrec, .label = "raw-record", .warm = 2000, .n = n_spin, .clear_next = 1},
        {.c = &pp_rawrec, .label = "raw-record-clock", .warm = 2000, .n = n_spin, .clock = 1,
         .clear_next = 1},
        {.c = &pp_spin, .label = "speculo-busy", .size = 64, .warm = 2000, .n = n_spin},
        {.c = &pp_wait, .label = "speculo-wait", .size = 64, .warm = 500, .n = n_block},
        {.c = &pp_pipe, .label = "pipe", .warm = 500, .n = n_block},
        {.c = &pp_socketpair, .label = "socketpair", .warm = 500, .n = n_block},
        {.c = &pp_mqueue, .label = "mqueue", .warm = 500, .n = n_block},
        {.c = &pp_rawrec, .label = "raw-record-floor", .warm = 2000, .n = n_spin, .clock = 1},
        {.c = &pp_rawrec, .label = "raw-record-floor-unpinned", .warm = 2000, .n = n_spin,
         .clock = 1, .unpinned = 1},
        {.c = &pp_spin, .label = "speculo-busy-unpinned", .size = 64, .warm = 2000, .n = n_spin,
         .unpinned = 1},
        {.c = &pp_rawrec, .label = "raw-record-floor-early", .warm = 2000, .n = n_spin, .clock = 1,
         .early = 1},
    };
    int k = (int)(sizeof it / sizeof it[0]);
    lat_rounds(it, k, rounds);
    for (int i = 0; i < k; i++)
        lat_report(&it[i], o->out);
    char a[32], b[32];
    struct lat_item *raw = &it[0], *rec = &it[1], *recc = &it[2], *spin = &it[3],
                    *wait = &it[4], *pipe = &it[5];
    bc_target("1a", "round trip, busy-polling reader vs raw cache-line ping-pong",
              lat_med(spin, a, sizeof a), lat_med(raw, b, sizeof b), lat_ratio(spin, raw), false,
              1.3);
    bc_target("1b", "round trip, blocking reader (wait) vs pipe", lat_med(wait, a, sizeof a),
              lat_med(pipe, b, sizeof b), lat_ratio(wait, pipe), false, 1.0);
    bc_factor("1c", "round trip, blocking reader vs socketpair", lat_med(wait, a, sizeof a),
              lat_med(&it[6], b, sizeof b), lat_ratio(wait, &it[6]));
    bc_factor("1d", "round trip, blocking reader vs POSIX mqueue", lat_med(wait, a, sizeof a),
              lat_med(&it[7], b, sizeof b), lat_ratio(wait, &it[7]));
    bc_factor("1e", "round trip, busy-polling reader vs pipe", lat_med(spin, a, sizeof a),
              lat_med(pipe, b, sizeof b), lat_ratio(spin, pipe));
    /* where the busy-polling round trip goes: the record's own bytes and one
     * clock read with no library code (the floor of the format), then the
     * library; what clearing the next commit word on every commit would
     * add; the same floor and library unpinned */
    struct lat_item *floor = &it[8], *floor_u = &it[9], *spin_u = &it[10], *floor_e = &it[11];
    bc_target("1h", "round trip, busy-polling reader vs the record floor (header + payload + "
                    "one clock read), pinned",
              lat_med(spin, a, sizeof a), lat_med(floor, b, sizeof b), lat_ratio(spin, floor),
              false, 1.15);
    bc_target("1i", "round trip, busy-polling reader vs the record floor, unpinned",
              lat_med(spin_u, a, sizeof a), lat_med(floor_u, b, sizeof b),
              lat_ratio(spin_u, floor_u), false, 1.15);
    bc_factor("1k", "round trip, busy-polling reader vs the record floor written in speculo's "
                    "order (header line taken first)",
              lat_med(spin, a, sizeof a), lat_med(floor_e, b, sizeof b), lat_ratio(spin, floor_e));
    bc_head("decomp", "round trip|median|vs raw cache line|vs the record floor");
    struct {
        struct lat_item *it, *floor;
        const char *what;
    } steps[] = {
        {raw, floor, "raw cache line (one atomic word)"},
        {floor, floor, "record floor: header + payload stores + one CLOCK_REALTIME read, no library"},
        {spin, floor, "speculo put() + next(), busy-polling"},
        {rec, floor, "raw records, no clock, the next record's commit word cleared on every commit"},
        {recc, floor, "raw records + one CLOCK_REALTIME read, the next commit word cleared"},
        {floor_e, floor, "record floor written in speculo's order: header line taken first, then payload, clock, header"},
        {floor_u, floor_u, "record floor, unpinned"},
        {spin_u, floor_u, "speculo put() + next(), busy-polling, unpinned"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        bc_row("decomp", "%s|%s|%.2f|%.2f", steps[i].what, lat_med(steps[i].it, a, sizeof a),
               lat_ratio(steps[i].it, raw), lat_ratio(steps[i].it, steps[i].floor));

    /* A reader that may not write the file cannot register as a waiter and
     * sleeps in slices of at most a millisecond: its side of the round trip
     * is about half a slice, so fewer round trips, in rounds of their own. */
    long n_ro = o->quick ? 300 : 2000;
    struct lat_item ro[] = {
        {.c = &pp_wait, .label = "speculo-wait-read-only", .size = 64, .warm = 50, .n = n_ro,
         .read_only = 1, .budget_s = 1.5},
        {.c = &pp_wait, .label = "speculo-wait-2", .size = 64, .warm = 50, .n = n_ro,
         .budget_s = 1.5},
    };
    lat_rounds(ro, 2, o->quick ? 1 : 3);
    lat_report(&ro[0], o->out);
    bc_factor("1j", "round trip, blocking reader without write access (sleeps in slices) vs with",
              lat_med(&ro[0], a, sizeof a), lat_med(&ro[1], b, sizeof b),
              lat_ratio(&ro[0], &ro[1]));
}

static void part_sweep(const struct bc_opts *o)
{
    static const size_t sizes[] = {8, 64, 512, 4096, 32768, 262144, 1 << 20, 4 << 20};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    size_t budget = o->quick ? (size_t)8 << 20 : (size_t)32 << 20; /* payload bytes per run */
    long most = o->quick ? 2000 : 10000, least = o->quick ? 16 : 24;
    struct lat_item it[2 * NS];
    char labels[2 * NS][48];
    memset(it, 0, sizeof it);
    for (int i = 0; i < NS; i++) {
        for (int t = 0; t < 2; t++) {
            struct lat_item *x = &it[2 * i + t];
            long n = (long)(budget / sizes[i]);
            if (n > most)
                n = most;
            if (n < least)
                n = least;
            snprintf(labels[2 * i + t], sizeof labels[0], "sweep-%zu-%s", sizes[i],
                     t ? "touched" : "untouched");
            x->c = &pp_spin_zc;
            x->label = labels[2 * i + t];
            x->size = sizes[i];
            x->touch = t;
            x->warm = n / 10 + 4;
            x->n = n;
        }
    }
    lat_rounds(it, 2 * NS, o->quick ? 1 : 5);
    bc_head("sweep", "payload|samples|median, reader reads 8 B|p99|median, reader reads "
                     "all|p99|all-read bandwidth");
    for (int i = 0; i < NS; i++) {
        struct lat_item *u = &it[2 * i], *t = &it[2 * i + 1];
        lat_report(u, o->out);
        lat_report(t, o->out);
        char s[32], a[32], b[32], c[32], d[32], e[32];
        if (sizes[i] >= 1024)
            snprintf(s, sizeof s, "%zu KiB", sizes[i] / 1024);
        else
            snprintf(s, sizeof s, "%zu B", sizes[i]);
        double tm = bc_hist_ns(&t->merged, 0.5);
        bc_row("sweep", "%s|%llu|%s|%s|%s|%s|%s", s, (unsigned long long)u->merged.n,
               bc_fmt_ns(a, sizeof a, bc_hist_ns(&u->merged, 0.5)),
               bc_fmt_ns(b, sizeof b, bc_hist_ns(&u->merged, 0.99)), bc_fmt_ns(c, sizeof c, tm),
               bc_fmt_ns(d, sizeof d, bc_hist_ns(&t->merged, 0.99)),
               bc_fmt_rate(e, sizeof e, (double)sizes[i] / tm * 1e9, "B/s"));
    }
    char a[32], b[32];
    bc_factor("1f", "zero copy: round trip of a 4 MiB chunk vs an 8 B one, reader reads 8 B",
              lat_med(&it[2 * NS - 2], a, sizeof a), lat_med(&it[0], b, sizeof b),
              lat_ratio(&it[2 * NS - 2], &it[0]));
    bc_factor("1g", "zero copy: round trip of a 256 KiB chunk vs a 64 B one, reader reads 8 B",
              lat_med(&it[2 * 5], a, sizeof a), lat_med(&it[2], b, sizeof b),
              lat_ratio(&it[2 * 5], &it[2]));
}

static void part_gcswitch(const struct bc_opts *o)
{
    long every = 500, n = o->quick ? 20000 : 100000;
    struct lat_item it[] = {
        {.c = &pp_spin, .label = "gc-switch-normal", .size = 64, .warm = 1000, .n = n,
         .gc_every = every},
    };
    lat_rounds(it, 1, o->quick ? 1 : 3);
    lat_report(&it[0], o->out);
    struct bc_hist *sw = &it[0].merged_switch;
    bc_hist_report(sw, "gc-switch-first-after");
    char a[32], b[32], c[32];
    double med = bc_hist_ns(&it[0].merged, 0.5), worst = bc_ticks_to_ns(sw->max);
    bc_head("gcswitch", "round trips|median (no switch)|median, switch round trip|worst, switch "
                        "round trip|worst / median");
    bc_row("gcswitch", "%llu + %llu switches|%s|%s|%s|%.1fx",
           (unsigned long long)it[0].merged.n, (unsigned long long)sw->n,
           bc_fmt_ns(a, sizeof a, med), bc_fmt_ns(b, sizeof b, bc_hist_ns(sw, 0.5)),
           bc_fmt_ns(c, sizeof c, worst), worst / med);
    bc_factor("5c", "worst reader round trip across a GC switch vs median round trip",
              bc_fmt_ns(a, sizeof a, worst), bc_fmt_ns(b, sizeof b, med), worst / med);
}

int main(int argc, char **argv)
{
    struct bc_opts o;
    bc_parse(argc, argv, &o);
    if (bc_want(&o, "lat"))
        part_lat(&o);
    if (bc_want(&o, "sweep"))
        part_sweep(&o);
    if (bc_want(&o, "gcswitch"))
        part_gcswitch(&o);
    return 0;
}
