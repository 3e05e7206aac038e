/*
 * Named blocks.
 *
 *   get      speculo_reader_get() per second with 1 k, 100 k and 1 M live
 *            names, random order; with LMDB (when built with HAVE_LMDB):
 *            mdb_get() on the same names and values, MDB_NOSYNC|MDB_WRITEMAP
 *            on /dev/shm
 *   chunks   speculo_reader_get() of one name among 200 k unnamed chunks
 *            against among 10: a get does not scan the segment
 *   update   a named block updated by a writer process (CPU 0) and polled by
 *            a reader process (CPU 1): time from the start of the update call
 *            to the reader seeing the new value; LMDB the same way (a write
 *            transaction per update, a renewed read transaction per poll)
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bc.h"
#include "speculo.h"

#ifdef HAVE_LMDB
#include <lmdb.h>
#endif

#define MAX_ROUNDS 16
#define NAME_LEN 16

static char dir[4096];

static void name_of(char *buf, long i)
{
    snprintf(buf, NAME_LEN, "key%08u", (unsigned)(i % 100000000));
}

/* Names 0..n-1 in a random order (xorshift, fixed seed: the same order for
 * every subject). */
static char *shuffled_names(long n, long count)
{
    char *v = malloc((size_t)count * NAME_LEN);
    if (!v)
        bc_die("out of memory");
    uint64_t x = 88172645463325252u;
    for (long i = 0; i < count; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        name_of(v + (size_t)i * NAME_LEN, (long)(x % (uint64_t)n));
    }
    return v;
}

static void make_segment(const char *seg, long n)
{
    speculo_writer *w;
    int rc = speculo_writer_open(seg, NULL, &w);
    if (rc < 0)
        bc_die("writer_open: %s", speculo_strerror(rc));
    for (long i = 0; i < n; i++) {
        char name[NAME_LEN];
        uint64_t val[2] = {(uint64_t)i, ~(uint64_t)i};
        name_of(name, i);
        struct speculo_commit_options o = {.name = name};
        if ((rc = speculo_writer_put(w, val, sizeof val, &o, NULL)) < 0)
            bc_die("put: %s", speculo_strerror(rc));
    }
    speculo_writer_close(w);
}

static double gets_speculo(speculo_reader *r, const char *names, long count)
{
    uint64_t sum = 0;
    int64_t t0 = bc_mono_ns();
    for (long i = 0; i < count; i++) {
        speculo_chunk c;
        int rc = speculo_reader_get(r, names + (size_t)i * NAME_LEN, &c);
        if (rc < 0)
            bc_die("get %s: %s", names + (size_t)i * NAME_LEN, speculo_strerror(rc));
        sum += *(const uint64_t *)c.data;
    }
    int64_t t1 = bc_mono_ns();
    if (sum == 1)
        bc_note("unlikely");
    return (double)count / ((double)(t1 - t0) / 1e9);
}

#ifdef HAVE_LMDB
struct lmdb {
    MDB_env *env;
    MDB_dbi dbi;
    char path[4200];
};

static void lmdb_check(int rc, const char *what)
{
    if (rc)
        bc_die("lmdb %s: %s", what, mdb_strerror(rc));
}

static void lmdb_open(struct lmdb *l, const char *name, bool create)
{
    snprintf(l->path, sizeof l->path, "%s/.%s.mdb", dir, name);
    lmdb_check(mdb_env_create(&l->env), "env_create");
    lmdb_check(mdb_env_set_mapsize(l->env, (size_t)2 << 30), "set_mapsize");
    lmdb_check(mdb_env_open(l->env, l->path, MDB_NOSUBDIR | MDB_NOSYNC | MDB_WRITEMAP, 0600),
               "env_open");
    MDB_txn *t;
    lmdb_check(mdb_txn_begin(l->env, NULL, create ? 0 : MDB_RDONLY, &t), "txn_begin");
    lmdb_check(mdb_dbi_open(t, NULL, 0, &l->dbi), "dbi_open");
    lmdb_check(mdb_txn_commit(t), "txn_commit");
}

static void lmdb_close(struct lmdb *l, bool remove)
{
    mdb_env_close(l->env);
    if (remove) {
        char lock[4300];
        snprintf(lock, sizeof lock, "%s-lock", l->path);
        unlink(l->path);
        unlink(lock);
    }
}

static void lmdb_fill(struct lmdb *l, long n)
{
    MDB_txn *t;
    lmdb_check(mdb_txn_begin(l->env, NULL, 0, &t), "txn_begin");
    for (long i = 0; i < n; i++) {
        char name[NAME_LEN];
        uint64_t val[2] = {(uint64_t)i, ~(uint64_t)i};
        name_of(name, i);
        MDB_val k = {strlen(name), name}, v = {sizeof val, val};
        lmdb_check(mdb_put(t, l->dbi, &k, &v, 0), "put");
    }
    lmdb_check(mdb_txn_commit(t), "commit");
}

/* per_get: a read transaction renewed for every get (the latest value at
 * every call, as speculo_reader_get gives); else one for the whole batch. */
static double gets_lmdb(struct lmdb *l, const char *names, long count, bool per_get)
{
    MDB_txn *t;
    uint64_t sum = 0;
    lmdb_check(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &t), "txn_begin");
    int64_t t0 = bc_mono_ns();
    for (long i = 0; i < count; i++) {
        const char *name = names + (size_t)i * NAME_LEN;
        if (per_get && i > 0) {
            mdb_txn_reset(t);
            lmdb_check(mdb_txn_renew(t), "renew");
        }
        MDB_val k = {strlen(name), (void *)name}, v;
        lmdb_check(mdb_get(t, l->dbi, &k, &v), "get");
        sum += *(const uint64_t *)v.mv_data;
    }
    int64_t t1 = bc_mono_ns();
    mdb_txn_abort(t);
    if (sum == 1)
        bc_note("unlikely");
    return (double)count / ((double)(t1 - t0) / 1e9);
}
#endif

static void part_get(const struct bc_opts *o)
{
    static const long full[] = {1000, 100000, 1000000}, quick[] = {1000, 10000, 100000};
    const long *sizes = o->quick ? quick : full;
    enum { NS = 3 };
    int rounds = o->quick ? 2 : 7;
    long count = o->quick ? 100000 : 1000000;
    char big[32], what[128];
    snprintf(big, sizeof big, "%ld %s", sizes[NS - 1] >= 1000000 ? sizes[NS - 1] / 1000000 : sizes[NS - 1] / 1000,
             sizes[NS - 1] >= 1000000 ? "M" : "k");
    char seg[NS][64];
    speculo_reader *r[NS];
    char *names[NS];
    bc_pin(0);
    for (int i = 0; i < NS; i++) {
        snprintf(seg[i], sizeof seg[i], "%s-n%ld", bc_tag(), sizes[i]);
        make_segment(seg[i], sizes[i]);
        int rc = speculo_reader_open(seg[i], &r[i]);
        if (rc < 0)
            bc_die("reader_open: %s", speculo_strerror(rc));
        names[i] = shuffled_names(sizes[i], count);
        gets_speculo(r[i], names[i], count); /* warm up: map the pages */
    }
#ifdef HAVE_LMDB
    struct lmdb l;
    char lname[64];
    snprintf(lname, sizeof lname, "%s-lmdb", bc_tag());
    lmdb_open(&l, lname, true);
    lmdb_fill(&l, sizes[NS - 1]);
    gets_lmdb(&l, names[NS - 1], count, false);
    double lm[MAX_ROUNDS], lmr[MAX_ROUNDS], vs_lm[MAX_ROUNDS], vs_lmr[MAX_ROUNDS];
#endif
    double rate[NS][MAX_ROUNDS], big_small[MAX_ROUNDS];
    for (int k = 0; k < rounds; k++) {
        for (int j = 0; j < NS; j++) {
            int i = (j + k) % NS;
            rate[i][k] = gets_speculo(r[i], names[i], count);
        }
        big_small[k] = rate[NS - 1][k] / rate[0][k];
#ifdef HAVE_LMDB
        lm[k] = gets_lmdb(&l, names[NS - 1], count, false);
        lmr[k] = gets_lmdb(&l, names[NS - 1], count, true);
        double again = gets_speculo(r[NS - 1], names[NS - 1], count);
        vs_lm[k] = (rate[NS - 1][k] + again) / 2 / lm[k];
        vs_lmr[k] = (rate[NS - 1][k] + again) / 2 / lmr[k];
#endif
    }
    bc_head("get", "live names|speculo_reader_get|per get|vs 1 k names");
    char a[32], b[32];
    double med[NS];
    for (int i = 0; i < NS; i++) {
        double m[MAX_ROUNDS];
        memcpy(m, rate[i], sizeof m);
        med[i] = bc_median(m, (size_t)rounds);
        double rel[MAX_ROUNDS];
        for (int k = 0; k < rounds; k++)
            rel[k] = rate[i][k] / rate[0][k];
        bc_row("get", "%ld|%s|%s|%.2f", sizes[i], bc_fmt_rate(a, sizeof a, med[i], "gets/s"),
               bc_fmt_ns(b, sizeof b, 1e9 / med[i]), bc_median(rel, (size_t)rounds));
    }
    snprintf(what, sizeof what, "speculo_reader_get/s, %s live names vs 1 k", big);
    bc_target("4", what,
              bc_fmt_rate(a, sizeof a, med[NS - 1], "/s"), bc_fmt_rate(b, sizeof b, med[0], "/s"),
              bc_median(big_small, (size_t)rounds), true, 0.5);
#ifdef HAVE_LMDB
    double lmm = bc_median(lm, (size_t)rounds), lmrm = bc_median(lmr, (size_t)rounds);
    bc_row("get", "%ld, LMDB mdb_get, one read txn for the batch|%s|%s|-", sizes[NS - 1],
           bc_fmt_rate(a, sizeof a, lmm, "gets/s"), bc_fmt_ns(b, sizeof b, 1e9 / lmm));
    bc_row("get", "%ld, LMDB mdb_get, read txn renewed per get|%s|%s|-", sizes[NS - 1],
           bc_fmt_rate(a, sizeof a, lmrm, "gets/s"), bc_fmt_ns(b, sizeof b, 1e9 / lmrm));
    snprintf(what, sizeof what, "speculo_reader_get vs LMDB mdb_get (one read txn per batch), %s names", big);
    bc_target("9b", what,
              bc_fmt_rate(a, sizeof a, med[NS - 1], "/s"), bc_fmt_rate(b, sizeof b, lmm, "/s"),
              bc_median(vs_lm, (size_t)rounds), true, 5.0);
    snprintf(what, sizeof what, "speculo_reader_get vs LMDB mdb_get, read txn renewed per get, %s", big);
    char c[32];
    bc_factor("9b2", what,
              bc_fmt_rate(a, sizeof a, med[NS - 1], "/s"), bc_fmt_rate(c, sizeof c, lmrm, "/s"),
              bc_median(vs_lmr, (size_t)rounds));
    lmdb_close(&l, true);
#else
    bc_note("LMDB: skipped (liblmdb-dev not installed)");
    printf("T|9b|speculo_reader_get vs LMDB mdb_get, 1 M names|-|-|-|>= 5.00|skipped\n");
#endif
    for (int i = 0; i < NS; i++) {
        speculo_reader_close(r[i]);
        speculo_segment_remove(seg[i], SPECULO_REMOVE_FORCE);
        free(names[i]);
    }
}

/* ---- get among many chunks -------------------------------------------------- */

/* A segment of `unnamed` unnamed chunks, the name "target" in the middle. */
static speculo_reader *chunky_segment(const char *seg, long unnamed)
{
    speculo_writer *w;
    int rc = speculo_writer_open(seg, NULL, &w);
    if (rc < 0)
        bc_die("writer_open: %s", speculo_strerror(rc));
    struct speculo_commit_options named = {.name = "target"};
    for (long i = 0; i < unnamed; i++) {
        uint64_t val[2] = {(uint64_t)i, ~(uint64_t)i};
        if (i == unnamed / 2 && (rc = speculo_writer_put(w, val, sizeof val, &named, NULL)) < 0)
            bc_die("put: %s", speculo_strerror(rc));
        if ((rc = speculo_writer_put(w, val, sizeof val, NULL, NULL)) < 0)
            bc_die("put: %s", speculo_strerror(rc));
    }
    speculo_writer_close(w);
    speculo_reader *r;
    if ((rc = speculo_reader_open(seg, &r)) < 0)
        bc_die("reader_open: %s", speculo_strerror(rc));
    return r;
}

static double gets_one(speculo_reader *r, long count)
{
    uint64_t sum = 0;
    int64_t t0 = bc_mono_ns();
    for (long i = 0; i < count; i++) {
        speculo_chunk c;
        int rc = speculo_reader_get(r, "target", &c);
        if (rc < 0)
            bc_die("get target: %s", speculo_strerror(rc));
        sum += *(const uint64_t *)c.data;
    }
    int64_t t1 = bc_mono_ns();
    if (sum == 1)
        bc_note("unlikely");
    return (double)count / ((double)(t1 - t0) / 1e9);
}

static void part_chunks(const struct bc_opts *o)
{
    enum { FEW = 10, MANY = 200000 };
    int rounds = o->quick ? 2 : 7;
    long count = o->quick ? 200000 : 2000000;
    char seg[2][64];
    speculo_reader *r[2];
    bc_pin(0);
    for (int i = 0; i < 2; i++) {
        snprintf(seg[i], sizeof seg[i], "%s-c%d", bc_tag(), i);
        r[i] = chunky_segment(seg[i], i ? MANY : FEW);
        gets_one(r[i], count / 10); /* warm up */
    }
    double rate[2][MAX_ROUNDS], ratio[MAX_ROUNDS];
    for (int k = 0; k < rounds; k++) {
        for (int j = 0; j < 2; j++) {
            int i = (j + k) % 2;
            rate[i][k] = gets_one(r[i], count);
        }
        ratio[k] = rate[1][k] / rate[0][k];
    }
    char a[32], b[32];
    double m0 = bc_median(rate[0], (size_t)rounds), m1 = bc_median(rate[1], (size_t)rounds);
    bc_target("4b", "speculo_reader_get/s of a name among 200 k unnamed chunks vs among 10",
              bc_fmt_rate(a, sizeof a, m1, "/s"), bc_fmt_rate(b, sizeof b, m0, "/s"),
              bc_median(ratio, (size_t)rounds), true, 0.8);
    for (int i = 0; i < 2; i++) {
        speculo_reader_close(r[i]);
        speculo_segment_remove(seg[i], SPECULO_REMOVE_FORCE);
    }
}

/* ---- update to visible ------------------------------------------------------ */

struct upd_ctl {
    volatile uint32_t ready;
    volatile uint64_t seen; /* last sequence number the reader saw */
    volatile int64_t lat_ns[];
};

enum upd_kind { UPD_SPECULO, UPD_LMDB };

/* The reader: poll the name until `n` new versions were seen, storing each
 * one's latency (its time of sight minus the time written in it). */
static void upd_reader(enum upd_kind kind, const char *name, struct upd_ctl *c, long n)
{
    bc_pin(1);
    speculo_reader *r = NULL;
#ifdef HAVE_LMDB
    struct lmdb l;
    MDB_txn *t = NULL;
#endif
    if (kind == UPD_SPECULO) {
        int rc = speculo_reader_open(name, &r);
        if (rc < 0)
            bc_die("reader_open: %s", speculo_strerror(rc));
    } else {
#ifdef HAVE_LMDB
        lmdb_open(&l, name, false);
        lmdb_check(mdb_txn_begin(l.env, NULL, MDB_RDONLY, &t), "txn_begin");
        mdb_txn_reset(t);
#endif
    }
    __atomic_store_n(&c->ready, 1, __ATOMIC_RELEASE);
    uint64_t last = 0;
    while (last < (uint64_t)n) {
        const uint64_t *val = NULL;
        if (kind == UPD_SPECULO) {
            speculo_chunk ch;
            int rc = speculo_reader_get(r, "hot", &ch);
            if (rc == 0)
                val = ch.data;
            else if (rc != -ENOENT)
                bc_die("get: %s", speculo_strerror(rc));
        } else {
#ifdef HAVE_LMDB
            lmdb_check(mdb_txn_renew(t), "renew");
            MDB_val k = {3, "hot"}, v;
            int rc = mdb_get(t, l.dbi, &k, &v);
            if (rc == 0)
                val = v.mv_data;
            else if (rc != MDB_NOTFOUND)
                lmdb_check(rc, "get");
#endif
        }
        if (val && val[0] > last) {
            int64_t now = bc_mono_ns();
            last = val[0];
            c->lat_ns[last - 1] = now - (int64_t)val[1];
            __atomic_store_n(&c->seen, last, __ATOMIC_RELEASE);
        }
#ifdef HAVE_LMDB
        if (kind == UPD_LMDB)
            mdb_txn_reset(t);
#endif
    }
    if (r)
        speculo_reader_close(r);
#ifdef HAVE_LMDB
    if (kind == UPD_LMDB) {
        mdb_txn_abort(t);
        lmdb_close(&l, false);
    }
#endif
}

static void upd_run(enum upd_kind kind, long n, struct bc_hist *h)
{
    static unsigned serial;
    char name[64];
    snprintf(name, sizeof name, "%s-u%u", bc_tag(), ++serial);
    size_t csize = sizeof(struct upd_ctl) + (size_t)n * sizeof(int64_t);
    struct upd_ctl *c = bc_shared(csize);
    speculo_writer *w = NULL;
#ifdef HAVE_LMDB
    struct lmdb l;
#endif
    if (kind == UPD_SPECULO) {
        int rc = speculo_writer_open(name, NULL, &w);
        if (rc < 0)
            bc_die("writer_open: %s", speculo_strerror(rc));
    } else {
#ifdef HAVE_LMDB
        lmdb_open(&l, name, true);
#endif
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        upd_reader(kind, name, c, n);
        _exit(0);
    }
    bc_pin(0);
    bc_spin_until(&c->ready, 1);
    for (long i = 1; i <= n; i++) {
        /* let the reader settle into polling, then update */
        int64_t until = bc_mono_ns() + 5000 + (i * 7919) % 10000;
        while (bc_mono_ns() < until)
            ;
        uint64_t val[2];
        val[0] = (uint64_t)i;
        val[1] = (uint64_t)bc_mono_ns();
        if (kind == UPD_SPECULO) {
            struct speculo_commit_options o = {.name = "hot"};
            int rc = speculo_writer_put(w, val, sizeof val, &o, NULL);
            if (rc < 0)
                bc_die("put: %s", speculo_strerror(rc));
        } else {
#ifdef HAVE_LMDB
            MDB_txn *t;
            lmdb_check(mdb_txn_begin(l.env, NULL, 0, &t), "txn_begin");
            MDB_val k = {3, "hot"}, v = {sizeof val, val};
            lmdb_check(mdb_put(t, l.dbi, &k, &v, 0), "put");
            lmdb_check(mdb_txn_commit(t), "commit");
#endif
        }
        while (__atomic_load_n(&c->seen, __ATOMIC_ACQUIRE) < (uint64_t)i)
            ;
    }
    bc_wait_child(pid, "update reader");
    for (long i = 0; i < n; i++)
        bc_hist_add(h, (uint64_t)(c->lat_ns[i] > 0 ? c->lat_ns[i] : 0));
    if (kind == UPD_SPECULO) {
        speculo_writer_close(w);
        speculo_segment_remove(name, SPECULO_REMOVE_FORCE);
    } else {
#ifdef HAVE_LMDB
        lmdb_close(&l, true);
#endif
    }
    bc_unshared(c, csize);
}

static void part_update(const struct bc_opts *o)
{
    int rounds = o->quick ? 2 : 7;
    long n = o->quick ? 5000 : 20000;
    struct bc_hist *hs = malloc(sizeof *hs), *hl = malloc(sizeof *hl), *t = malloc(sizeof *t);
    if (!hs || !hl || !t)
        bc_die("out of memory");
    bc_hist_reset(hs);
    bc_hist_reset(hl);
    double ratio[MAX_ROUNDS];
    /* latencies here are ns already: histogram in ns, reported as such */
    for (int k = 0; k < rounds; k++) {
        bc_hist_reset(t);
        upd_run(UPD_SPECULO, n, t);
        double ms = bc_hist_quantile(t, 0.5);
        bc_hist_merge(hs, t);
#ifdef HAVE_LMDB
        bc_hist_reset(t);
        upd_run(UPD_LMDB, n, t);
        ratio[k] = ms / bc_hist_quantile(t, 0.5);
        bc_hist_merge(hl, t);
#else
        (void)ms;
        ratio[k] = 0;
        (void)ratio;
#endif
    }
    char a[32], b[32], c[32], d[32];
    bc_head("update", "named update seen by a polling reader|samples|median|p99|p99.9|max");
    bc_row("update", "speculo put(name) -> reader_get() sees it|%llu|%s|%s|%s|%s",
           (unsigned long long)hs->n, bc_fmt_ns(a, sizeof a, bc_hist_quantile(hs, 0.5)),
           bc_fmt_ns(b, sizeof b, bc_hist_quantile(hs, 0.99)),
           bc_fmt_ns(c, sizeof c, bc_hist_quantile(hs, 0.999)), bc_fmt_ns(d, sizeof d, (double)hs->max));
#ifdef HAVE_LMDB
    bc_row("update", "LMDB write txn + put + commit -> renewed read txn sees it|%llu|%s|%s|%s|%s",
           (unsigned long long)hl->n, bc_fmt_ns(a, sizeof a, bc_hist_quantile(hl, 0.5)),
           bc_fmt_ns(b, sizeof b, bc_hist_quantile(hl, 0.99)),
           bc_fmt_ns(c, sizeof c, bc_hist_quantile(hl, 0.999)), bc_fmt_ns(d, sizeof d, (double)hl->max));
    bc_target("9c", "named update to visible in a polling reader vs LMDB's",
              bc_fmt_ns(a, sizeof a, bc_hist_quantile(hs, 0.5)),
              bc_fmt_ns(b, sizeof b, bc_hist_quantile(hl, 0.5)), bc_median(ratio, (size_t)rounds),
              false, 0.3);
#else
    printf("T|9c|named update to visible vs LMDB's|-|-|-|<= 0.30|skipped\n");
#endif
    free(hs);
    free(hl);
    free(t);
}

int main(int argc, char **argv)
{
    struct bc_opts o;
    bc_parse(argc, argv, &o);
    if (speculo_segment_dir(dir, sizeof dir) < 0)
        bc_die("segment dir");
    if (bc_want(&o, "get"))
        part_get(&o);
    if (bc_want(&o, "chunks"))
        part_chunks(&o);
    if (bc_want(&o, "update"))
        part_update(&o);
    return 0;
}
