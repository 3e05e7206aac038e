/*
 * Garbage collection and the writer's independence from readers.
 *
 *   gc     speculo_writer_gc() duration against live bytes (dead bytes fixed)
 *          and against dead bytes (live bytes fixed); 64 KiB chunks, live and
 *          dead interleaved in commit order
 *   stop   writer commit latency (64-byte named updates, collections
 *          included) while a reader is stopped with SIGSTOP in the middle of
 *          reading a chunk, against no reader at all
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bc.h"
#include "speculo.h"

#define MAX_ROUNDS 16
#define MiB ((size_t)1 << 20)

/* One collection of a segment holding `live` and `dead` bytes. Every
 * segment is created with the same capacity (`cap`), so that the id table
 * and name index, which scale with it, are the same size in every run.
 * With `hold`, a reader maps the file during the collection: the old file's
 * pages are then freed at that reader's close, not inside the collection. */
static double gc_once(size_t live, size_t dead, size_t chunk, size_t cap, bool hold)
{
    static unsigned serial;
    char seg[64];
    snprintf(seg, sizeof seg, "%s-gc%u", bc_tag(), ++serial);
    struct speculo_writer_options o = {
        .capacity = cap,
        .gc_dead_percent = 100,
        .gc_min_dead_bytes = (size_t)1 << 60,
    };
    speculo_writer *w;
    int rc = speculo_writer_open(seg, &o, &w);
    if (rc < 0)
        bc_die("writer_open: %s", speculo_strerror(rc));
    size_t nl = live / chunk, nd = dead / chunk;
    void *buf = calloc(1, chunk);
    if (!buf)
        bc_die("out of memory");
    /* interleave: spread the dead chunks evenly among the live ones */
    size_t total = nl + nd, li = 0, di = 0;
    for (size_t i = 0; i < total; i++) {
        bool make_dead = di < nd && (li >= nl || di * total < i * nd);
        uint64_t id;
        if ((rc = speculo_writer_put(w, buf, chunk, NULL, &id)) < 0)
            bc_die("put: %s", speculo_strerror(rc));
        if (make_dead) {
            if ((rc = speculo_writer_obsolete(w, id)) < 0)
                bc_die("obsolete: %s", speculo_strerror(rc));
            di++;
        } else {
            li++;
        }
    }
    speculo_reader *r = NULL;
    if (hold && (rc = speculo_reader_open(seg, &r)) < 0)
        bc_die("reader_open: %s", speculo_strerror(rc));
    int64_t t0 = bc_mono_ns();
    if ((rc = speculo_writer_gc(w)) < 0)
        bc_die("gc: %s", speculo_strerror(rc));
    int64_t t1 = bc_mono_ns();
    speculo_reader_close(r);
    speculo_writer_close(w);
    speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
    free(buf);
    return (double)(t1 - t0);
}

static void part_gc(const struct bc_opts *o)
{
    const size_t chunk = 64 << 10;
    const size_t fixed = o->quick ? 8 * MiB : 16 * MiB;
    const size_t steps[] = {4 * MiB, 16 * MiB, 64 * MiB};
    enum { NS = 3 };
    int rounds = o->quick ? 2 : 5;
    const size_t cap = steps[NS - 1] + fixed + 16 * MiB;
    double tl[NS][MAX_ROUNDS], td[NS][MAX_ROUNDS], th[NS][MAX_ROUNDS];
    bc_pin(0);
    gc_once(steps[0], fixed, chunk, cap, false); /* warm up */
    for (int r = 0; r < rounds; r++) {
        for (int j = 0; j < NS; j++) {
            int i = (j + r) % NS;
            tl[i][r] = gc_once(steps[i], fixed, chunk, cap, false);
            td[i][r] = gc_once(fixed, steps[i], chunk, cap, false);
            th[i][r] = gc_once(fixed, steps[i], chunk, cap, true);
        }
    }
    char a[32], b[32];
    double ml[NS], md[NS], mh[NS], gl[MAX_ROUNDS], gd[MAX_ROUNDS], gh[MAX_ROUNDS];
    for (int i = 0; i < NS; i++) {
        double x[MAX_ROUNDS];
        memcpy(x, tl[i], sizeof x);
        ml[i] = bc_median(x, (size_t)rounds);
        memcpy(x, td[i], sizeof x);
        md[i] = bc_median(x, (size_t)rounds);
        memcpy(x, th[i], sizeof x);
        mh[i] = bc_median(x, (size_t)rounds);
    }
    for (int r = 0; r < rounds; r++) {
        gl[r] = tl[NS - 1][r] / tl[0][r];
        gd[r] = td[NS - 1][r] / td[0][r];
        gh[r] = th[NS - 1][r] / th[0][r];
    }
    bc_head("gc", "live|dead|gc duration|same, a reader still maps the old file|per live MiB");
    FILE *f = NULL;
    if (o->out) {
        char path[4200];
        snprintf(path, sizeof path, "%s/gc.dat", o->out);
        f = fopen(path, "w");
        if (f)
            fprintf(f, "# MiB  ms_vs_live(dead=%zu MiB)  ms_vs_dead(live=%zu MiB)  "
                       "ms_vs_dead_reader_holds_old\n", fixed / MiB, fixed / MiB);
    }
    for (int i = 0; i < NS; i++) {
        bc_row("gc", "%zu MiB|%zu MiB|%s|-|%s", steps[i] / MiB, fixed / MiB,
               bc_fmt_ns(a, sizeof a, ml[i]),
               bc_fmt_ns(b, sizeof b, ml[i] / (double)(steps[i] / MiB)));
        if (f)
            fprintf(f, "%zu %.3f %.3f %.3f\n", steps[i] / MiB, ml[i] / 1e6, md[i] / 1e6,
                    mh[i] / 1e6);
    }
    char c[32];
    for (int i = 0; i < NS; i++)
        bc_row("gc", "%zu MiB|%zu MiB|%s|%s|%s", fixed / MiB, steps[i] / MiB,
               bc_fmt_ns(a, sizeof a, md[i]), bc_fmt_ns(c, sizeof c, mh[i]),
               bc_fmt_ns(b, sizeof b, md[i] / (double)(fixed / MiB)));
    if (f)
        fclose(f);
    bc_factor("5a", "GC duration, 16x the live bytes (dead fixed): grows with live data",
              bc_fmt_ns(a, sizeof a, ml[NS - 1]), bc_fmt_ns(b, sizeof b, ml[0]),
              bc_median(gl, (size_t)rounds));
    bc_target("5b", "GC duration, 16x the dead bytes (live fixed): must not grow",
              bc_fmt_ns(a, sizeof a, md[NS - 1]), bc_fmt_ns(b, sizeof b, md[0]),
              bc_median(gd, (size_t)rounds), false, 1.25);
    bc_factor("5b2", "same, while a reader still maps the old file (its pages freed later)",
              bc_fmt_ns(a, sizeof a, mh[NS - 1]), bc_fmt_ns(b, sizeof b, mh[0]),
              bc_median(gh, (size_t)rounds));
}

/* ---- writer unaffected by a stopped reader ------------------------------------ */

struct stop_ctl {
    volatile uint32_t reading; /* the reader is inside a chunk's bytes */
    volatile uint32_t quit;
};

static void stop_reader(const char *seg, struct stop_ctl *c)
{
    bc_pin(1);
    speculo_reader *r;
    int rc = speculo_reader_open(seg, &r);
    if (rc < 0)
        bc_die("reader_open: %s", speculo_strerror(rc));
    volatile uint64_t sink = 0;
    while (!c->quit) {
        speculo_chunk ch;
        rc = speculo_reader_next(r, &ch);
        if (rc == -EAGAIN)
            continue;
        if (rc < 0)
            bc_die("next: %s", speculo_strerror(rc));
        /* read the chunk slowly, byte by byte: the signal lands in here */
        __atomic_store_n(&c->reading, 1, __ATOMIC_RELEASE);
        const volatile uint8_t *p = ch.data;
        for (size_t i = 0; i < ch.size && !c->quit; i++)
            sink += p[i];
    }
    speculo_reader_close(r);
}

static void stop_run(bool with_reader, long n, struct bc_hist *h)
{
    static unsigned serial;
    char seg[64];
    snprintf(seg, sizeof seg, "%s-st%u", bc_tag(), ++serial);
    speculo_writer *w;
    int rc = speculo_writer_open(seg, NULL, &w);
    if (rc < 0)
        bc_die("writer_open: %s", speculo_strerror(rc));
    /* a big chunk for the reader to be in the middle of */
    void *big = calloc(1, 64 << 20);
    if (!big)
        bc_die("out of memory");
    uint64_t big_id;
    if ((rc = speculo_writer_put(w, big, 64 << 20, NULL, &big_id)) < 0)
        bc_die("put: %s", speculo_strerror(rc));
    free(big);
    struct stop_ctl *c = bc_shared(sizeof *c);
    pid_t pid = -1;
    if (with_reader) {
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
            stop_reader(seg, c);
            _exit(0);
        }
        bc_spin_until(&c->reading, 1);
        kill(pid, SIGSTOP);
        int st;
        waitpid(pid, &st, WUNTRACED);
    }
    /* the chunk the reader holds becomes garbage: the collections that the
     * updates below trigger drop it while the stopped reader still maps it */
    if ((rc = speculo_writer_obsolete(w, big_id)) < 0)
        bc_die("obsolete: %s", speculo_strerror(rc));
    bc_pin(0);
    uint64_t msg[8] = {0};
    struct speculo_commit_options named[16];
    char names[16][8];
    for (int k = 0; k < 16; k++) {
        snprintf(names[k], sizeof names[k], "s%d", k);
        named[k] = (struct speculo_commit_options){.name = names[k]};
    }
    for (long i = 0; i < n; i++) {
        msg[0] = (uint64_t)i;
        uint64_t t0 = bc_ticks();
        rc = speculo_writer_put(w, msg, sizeof msg, &named[i & 15], NULL);
        uint64_t t1 = bc_ticks();
        if (rc < 0)
            bc_die("put: %s", speculo_strerror(rc));
        bc_hist_add(h, t1 - t0);
    }
    if (with_reader) {
        c->quit = 1;
        kill(pid, SIGCONT);
        bc_wait_child(pid, "stopped reader");
    }
    speculo_writer_close(w);
    speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
    bc_unshared(c, sizeof *c);
}

static void part_stop(const struct bc_opts *o)
{
    /* many short runs: a run's median moves with where its pages land, so
     * the ratio needs many pairs to settle */
    int rounds = o->quick ? 5 : 15;
    long n = 60000;
    struct bc_hist *with = malloc(sizeof *with), *without = malloc(sizeof *without),
                   *t = malloc(sizeof *t);
    if (!with || !without || !t)
        bc_die("out of memory");
    bc_hist_reset(with);
    bc_hist_reset(without);
    double r50[MAX_ROUNDS], r99[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        double m[2][2];
        for (int k = 0; k < 2; k++) {
            bool wr = (k + r) % 2;
            bc_hist_reset(t);
            stop_run(wr, n, t);
            m[wr][0] = bc_hist_ns(t, 0.5);
            m[wr][1] = bc_hist_ns(t, 0.99);
            bc_hist_merge(wr ? with : without, t);
        }
        r50[r] = m[1][0] / m[0][0];
        r99[r] = m[1][1] / m[0][1];
    }
    bc_hist_report(without, "commit-no-reader");
    bc_hist_report(with, "commit-reader-stopped");
    bc_hist_dump(without, o->out, "commit-no-reader");
    bc_hist_dump(with, o->out, "commit-reader-stopped");
    char a[32], b[32];
    double q50 = bc_median(r50, (size_t)rounds), q99 = bc_median(r99, (size_t)rounds);
    bool met = q50 >= 0.9 && q50 <= 1.1;
    printf("T|6|writer commit latency (median), reader SIGSTOPped mid-chunk vs no reader|%s|%s|"
           "%.3f|≈ 1.00 (0.90-1.10)|%s\n",
           bc_fmt_ns(a, sizeof a, bc_hist_ns(with, 0.5)),
           bc_fmt_ns(b, sizeof b, bc_hist_ns(without, 0.5)), q50, met ? "met" : "MISSED");
    bc_factor("6b", "same, p99 commit latency", bc_fmt_ns(a, sizeof a, bc_hist_ns(with, 0.99)),
              bc_fmt_ns(b, sizeof b, bc_hist_ns(without, 0.99)), q99);
    free(with);
    free(without);
    free(t);
}

int main(int argc, char **argv)
{
    struct bc_opts o;
    bc_parse(argc, argv, &o);
    if (bc_want(&o, "gc"))
        part_gc(&o);
    if (bc_want(&o, "stop"))
        part_stop(&o);
    return 0;
}
