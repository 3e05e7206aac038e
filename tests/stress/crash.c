/*
 * Crash test: a writer under load is killed with SIGKILL at random
 * instants, a new writer takes over, and nothing committed may be lost.
 *
 *   crash [-r ROUNDS] [-R READERS] [-d MAX_DELAY_US] [-s SEED] [-q]
 *   (CRASH_ROUNDS in the environment sets the default of -r, 1000)
 *
 * Each round forks a writer (epoch = round + 1) that
 *   1. opens the segment: the role of the dead writer is taken over, at
 *      once, whether the dead process was reaped or is still a zombie;
 *   2. verifies, after the takeover, every commit its predecessors reported
 *      (through shared memory, after each successful commit): each one is
 *      readable with its exact bytes, or accounted for by design (its TTL
 *      has passed; a named or chain chunk replaced by a newer version); at
 *      most one live version per name and one live chain chunk; every
 *      readable chunk whole (checksum);
 *   3. learns where to continue from what is committed (the highest
 *      sequence number among the readable chunks, the versions of the
 *      names and of the chain), and then commits as fast as it can: stream
 *      chunks with TTLs (alloc + commit, zero copy), named updates, a
 *      chain of chunks each replacing the previous one, now and then a big
 *      chunk, an explicit collection every 200-1000 commits; the
 *      segment is small (64 KiB) so that it also collects when full.
 *      Reservations are first filled with forged records (a commit word
 *      and header at every 64-byte boundary, which a reader would take for
 *      a chunk), so that a writer killed in the middle of a chunk leaves
 *      them past the tail; one time in 16 such a reservation is given up
 *      (another alloc, or a put that fails after copying its data), one
 *      time in 1024 it is left at a close and the writer opens again.
 * The driver kills it after a random delay in microseconds (counted from
 * the fork in one round of eight, so that some kills land in the takeover
 * itself; otherwise from the start of the load) and notes what the writer
 * was doing (alloc, commit, collect, ...). Reader processes follow the
 * segment all along with next/wait and check every chunk: whole, ids
 * strictly increasing, sequence numbers increasing within a writer's
 * epoch and, across a takeover, above every durable (TTL-less) chunk seen;
 * names' versions never going backwards, also through get().
 *
 * Exit status 0 when every check held. The run uses $SPECULO_DIR when set,
 * else a fresh directory under /dev/shm that it removes at the end. The
 * seed is printed: -s SEED replays the same choices (not the same timing).
 * CRASH_DEBUG=1 prints, on a failure, what each writer epoch found and did.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "payload.h"
#include "speculo.h"

#define SEG "crash"
#define NNAMES 16
#define LOG_N 65536
#define MAX_READERS 8
#define CAPACITY (64 << 10)
#define BIG_SIZE (20 << 10)

enum phase {
    PH_NONE, PH_OPEN, PH_VERIFY, PH_ALLOC, PH_FILL, PH_COMMIT, PH_PUT, PH_REPORT, PH_GC,
    PH_ABANDON, PH_REOPEN, PH_COUNT
};
static const char *const phase_names[PH_COUNT] = {
    "fork", "open", "verify", "alloc", "fill", "commit", "put", "report", "gc", "give-up", "reopen"};

/* One reported commit. */
struct entry {
    uint64_t id, seq, epoch, version;
    int64_t lo_expiry; /* wall clock before the commit + TTL: it cannot expire earlier */
    uint32_t kind, name;
};

/* Shared by the driver, the writers and the readers (MAP_SHARED|ANON). */
struct shm {
    _Atomic uint64_t nreports; /* commits reported, all epochs */
    _Atomic int phase;         /* what the writer is doing */
    _Atomic int loaded;        /* the writer verified and started its load */
    _Atomic int stop;          /* readers: finish */
    uint64_t epoch;            /* set by the driver before forking a writer */
    /* last reported version (and id) of each name and of the chain; written
     * by the writer after its commit returned, before nreports moves */
    struct {
        uint64_t version, id;
    } names[NNAMES], chain;
    /* statistics */
    _Atomic uint64_t commits, gcs, big, verified, accounted, bytes;
    struct {
        _Atomic uint64_t chunks, gets, epochs, backsteps;
    } rd[MAX_READERS];
    struct entry log[LOG_N]; /* report n at log[n % LOG_N] */
    /* per epoch, printed on a failure when CRASH_DEBUG is set */
    struct {
        int64_t pid;
        uint64_t gen0, last_id0, next_seq0, gen, commits, first_id;
    } ep[1 << 16];
};

static struct shm *S;
static uint64_t opt_rounds = 1000, opt_delay_us = 20000, opt_seed;
static int opt_readers = 3, opt_quiet;

static const char *name_of(uint32_t k)
{
    static const char *const names[NNAMES] = {"n00", "n01", "n02", "n03", "n04", "n05",
                                              "n06", "n07", "n08", "n09", "n10", "n11",
                                              "n12", "n13", "n14", "n15"};
    return names[k % NNAMES];
}

static void set_phase(int p)
{
    atomic_store_explicit(&S->phase, p, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* The writer                                                          */

struct wstate {
    uint64_t next_seq;
    uint64_t name_version[NNAMES];
    uint64_t chain_version, chain_id;
};

/* Check a readable chunk: whole, and what its name says. */
static void check_chunk(const speculo_chunk *c, struct pl_head *h)
{
    int rc = pl_check(c->data, c->size, h);
    if (rc < 0)
        pl_fail("chunk %llu (%zu bytes): damaged payload (%d)", (unsigned long long)c->id, c->size,
                rc);
    if ((h->kind == PL_NAMED) != (c->name != NULL))
        pl_fail("chunk %llu: kind %u but name %s", (unsigned long long)c->id, h->kind,
                c->name ? c->name : "none");
    if (c->name && strcmp(c->name, name_of(h->name)) != 0)
        pl_fail("chunk %llu: name %s, payload says %s", (unsigned long long)c->id, c->name,
                name_of(h->name));
    if ((h->kind == PL_STREAM) != (c->expires_ns != 0))
        pl_fail("chunk %llu: kind %u but expires %lld", (unsigned long long)c->id, h->kind,
                (long long)c->expires_ns);
}

/*
 * After the takeover: everything reported must be there or accounted for,
 * the repairs of the takeover done (one live version per name, one live
 * chain chunk); learn where to continue.
 */
static void verify_and_learn(speculo_writer *w, struct wstate *st)
{
    (void)w;
    speculo_reader *r = NULL;
    int rc = speculo_reader_open(SEG, &r);
    if (rc < 0)
        pl_fail("reader_open after takeover: %s", speculo_strerror(rc));
    memset(st, 0, sizeof *st);
    uint64_t prev = 0, max_seq = 0, n = 0;
    int live_per_name[NNAMES] = {0}, live_chain = 0;
    speculo_chunk c;
    while ((rc = speculo_reader_next(r, &c)) == 0) {
        struct pl_head h;
        check_chunk(&c, &h);
        if (c.id <= prev)
            pl_fail("ids not increasing: %llu after %llu", (unsigned long long)c.id,
                    (unsigned long long)prev);
        prev = c.id;
        n++;
        if (h.seq > max_seq)
            max_seq = h.seq;
        if (h.kind == PL_NAMED) {
            live_per_name[h.name % NNAMES]++;
            st->name_version[h.name % NNAMES] = h.version;
        } else if (h.kind == PL_CHAIN) {
            live_chain++;
            st->chain_version = h.version;
            st->chain_id = c.id;
        }
    }
    if (rc != -EAGAIN)
        pl_fail("next after takeover: %s", speculo_strerror(rc));
    for (int k = 0; k < NNAMES; k++)
        if (live_per_name[k] > 1)
            pl_fail("name %s: %d live versions after the takeover", name_of((uint32_t)k),
                    live_per_name[k]);
    if (live_chain > 1)
        pl_fail("%d live chain chunks after the takeover", live_chain);
    st->next_seq = max_seq + 1;

    /* Every reported commit still in the log. */
    uint64_t nrep = atomic_load_explicit(&S->nreports, memory_order_acquire);
    /* (the slot of report nrep - LOG_N is the one the dead writer may have
     * been overwriting when it was killed: not among those checked) */
    uint64_t from = nrep > LOG_N - 1 ? nrep - (LOG_N - 1) : 0, verified = 0, accounted = 0;
    for (uint64_t i = from; i < nrep; i++) {
        const struct entry *e = &S->log[i % LOG_N];
        rc = speculo_reader_get_id(r, e->id, &c);
        if (rc == 0) {
            struct pl_head h;
            check_chunk(&c, &h);
            if (h.seq != e->seq || h.epoch != e->epoch || h.kind != e->kind ||
                h.version != e->version)
                pl_fail("chunk %llu: seq/epoch/kind %llu/%llu/%u, reported %llu/%llu/%u",
                        (unsigned long long)e->id, (unsigned long long)h.seq,
                        (unsigned long long)h.epoch, h.kind, (unsigned long long)e->seq,
                        (unsigned long long)e->epoch, e->kind);
            verified++;
            continue;
        }
        if (rc != -ENOENT)
            pl_fail("get_id(%llu): %s", (unsigned long long)e->id, speculo_strerror(rc));
        int64_t now = t_real_ns();
        switch (e->kind) {
        case PL_STREAM:
            if (now < e->lo_expiry)
                pl_fail("LOST: stream chunk %llu (seq %llu) committed and reported, not expired "
                        "(%lld ns left), not readable",
                        (unsigned long long)e->id, (unsigned long long)e->seq,
                        (long long)(e->lo_expiry - now));
            break;
        case PL_NAMED:
            if (st->name_version[e->name] <= e->version)
                pl_fail("LOST: %s version %llu (id %llu) gone, live version %llu",
                        name_of(e->name), (unsigned long long)e->version,
                        (unsigned long long)e->id,
                        (unsigned long long)st->name_version[e->name]);
            break;
        case PL_CHAIN:
            if (st->chain_version <= e->version)
                pl_fail("LOST: chain version %llu (id %llu) gone, live chain version %llu",
                        (unsigned long long)e->version, (unsigned long long)e->id,
                        (unsigned long long)st->chain_version);
            break;
        default:
            pl_fail("bad log entry kind %u", e->kind);
        }
        accounted++;
    }
    /* The newest reported version of each name and of the chain is the
     * live one, or an unreported newer one replaced it. */
    for (int k = 0; k < NNAMES; k++) {
        if (S->names[k].version == 0)
            continue;
        rc = speculo_reader_get(r, name_of((uint32_t)k), &c);
        if (rc < 0)
            pl_fail("LOST: get(%s): %s (reported version %llu)", name_of((uint32_t)k),
                    speculo_strerror(rc), (unsigned long long)S->names[k].version);
        struct pl_head h;
        check_chunk(&c, &h);
        if (h.version < S->names[k].version ||
            (h.version == S->names[k].version && c.id != S->names[k].id))
            pl_fail("get(%s): version %llu id %llu, reported version %llu id %llu",
                    name_of((uint32_t)k), (unsigned long long)h.version, (unsigned long long)c.id,
                    (unsigned long long)S->names[k].version, (unsigned long long)S->names[k].id);
    }
    if (S->chain.version && st->chain_version < S->chain.version)
        pl_fail("LOST: chain version %llu reported, live %llu",
                (unsigned long long)S->chain.version, (unsigned long long)st->chain_version);
    struct speculo_segment_info info;
    if ((rc = speculo_reader_info(r, &info)) < 0)
        pl_fail("info: %s", speculo_strerror(rc));
    if (nrep && info.last_id < S->log[(nrep - 1) % LOG_N].id)
        pl_fail("last_id %llu below the last reported id %llu", (unsigned long long)info.last_id,
                (unsigned long long)S->log[(nrep - 1) % LOG_N].id);
    {
        uint64_t ep = S->epoch % (1 << 16);
        S->ep[ep].pid = getpid();
        S->ep[ep].gen0 = info.generation;
        S->ep[ep].last_id0 = info.last_id;
        S->ep[ep].next_seq0 = st->next_seq;
    }
    speculo_reader_close(r);
    atomic_fetch_add(&S->verified, verified);
    atomic_fetch_add(&S->accounted, accounted);
}

static void report(const struct entry *e)
{
    set_phase(PH_REPORT);
    uint64_t n = atomic_load_explicit(&S->nreports, memory_order_relaxed);
    S->log[n % LOG_N] = *e;
    if (e->kind == PL_NAMED) {
        S->names[e->name].version = e->version;
        S->names[e->name].id = e->id;
    } else if (e->kind == PL_CHAIN) {
        S->chain.version = e->version;
        S->chain.id = e->id;
    }
    /* publishes: the entry, to the next writer's verification */
    atomic_store_explicit(&S->nreports, n + 1, memory_order_release);
    atomic_fetch_add_explicit(&S->commits, 1, memory_order_relaxed);
}

/* Forged records at every 64-byte boundary of a reservation (64-aligned):
 * a reader that took one for a commit would return an empty chunk, which
 * fails its checks. They must stay invisible past the tail. */
static void forge_records(void *p, size_t size)
{
    static const uint64_t forged[8] = {64, UINT64_C(1) << 60};
    for (size_t k = 0; k + sizeof forged <= size; k += sizeof forged)
        memcpy((char *)p + k, forged, sizeof forged);
}

/* Reserve, fill with forged records and give the reservation up: by
 * another alloc (the next commit's), or by a put that fails after
 * copying its data. */
static void give_up_reservation(speculo_writer *w, uint64_t r)
{
    static _Alignas(64) unsigned char junk[BIG_SIZE];
    size_t size = 64 + (size_t)(r >> 20) % 4000;
    if ((r >> 32) % 2) {
        void *p;
        set_phase(PH_ALLOC);
        int rc = speculo_writer_alloc(w, size, &p);
        if (rc < 0)
            pl_fail("alloc(%zu): %s", size, speculo_strerror(rc));
        set_phase(PH_ABANDON);
        forge_records(p, size);
        return;
    }
    forge_records(junk, size);
    struct speculo_commit_options co = {.replaces = UINT64_C(1) << 62}; /* never live */
    set_phase(PH_ABANDON);
    int rc = speculo_writer_put(w, junk, size, &co, NULL);
    if (rc != -ENOENT)
        pl_fail("put replacing no live chunk: %s, not -ENOENT", speculo_strerror(rc));
}

/* Leave a reservation full of forged records at close, and open again. */
static speculo_writer *reopen_with_reservation(speculo_writer *w,
                                               const struct speculo_writer_options *o)
{
    void *p;
    set_phase(PH_ALLOC);
    int rc = speculo_writer_alloc(w, 3000, &p);
    if (rc < 0)
        pl_fail("alloc: %s", speculo_strerror(rc));
    set_phase(PH_REOPEN);
    forge_records(p, 3000);
    speculo_writer_close(w);
    if ((rc = speculo_writer_open(SEG, o, &w)) < 0)
        pl_fail("writer_open after close: %s", speculo_strerror(rc));
    return w;
}

static void writer_main(uint64_t seed, int verify_only)
{
    uint64_t epoch = S->epoch, rs = seed | 1;
    set_phase(PH_OPEN);
    struct speculo_writer_options o = {
        .capacity = CAPACITY, .gc_dead_percent = 50, .gc_min_dead_bytes = 8 << 10};
    speculo_writer *w = NULL;
    int rc = speculo_writer_open(SEG, &o, &w);
    if (rc < 0)
        pl_fail("epoch %llu: writer_open: %s (the dead writer's role must be taken at once)",
                (unsigned long long)epoch, speculo_strerror(rc));
    set_phase(PH_VERIFY);
    struct wstate st;
    verify_and_learn(w, &st);
    if (verify_only) {
        speculo_writer_close(w);
        _exit(0);
    }
    atomic_store_explicit(&S->loaded, 1, memory_order_release);

    static unsigned char buf[BIG_SIZE];
    uint64_t gc_at = 200 + pl_rand(&rs) % 800, count = 0, last_id = 0;
    for (;;) {
        uint64_t r = pl_rand(&rs);
        struct pl_head h = {.seq = st.next_seq++, .epoch = epoch};
        size_t size = sizeof h + (size_t)(r >> 20) % 400;
        if ((r & 127) == 0) {
            size = BIG_SIZE - (size_t)(r >> 40) % 1000;
            atomic_fetch_add_explicit(&S->big, 1, memory_order_relaxed);
        }
        struct entry e = {.seq = h.seq, .epoch = epoch};
        uint64_t id = 0;
        if ((r >> 56) % 16 == 0)
            give_up_reservation(w, pl_rand(&rs));
        if ((r >> 48) % 1024 == 0)
            w = reopen_with_reservation(w, &o);
        int64_t before = t_real_ns();
        switch ((r >> 8) % 16) {
        case 0: { /* chain: replaces the previous chain chunk */
            h.kind = PL_CHAIN;
            h.version = ++st.chain_version;
            pl_fill(buf, size, &h);
            struct speculo_commit_options co = {.replaces = st.chain_id};
            set_phase(PH_PUT);
            rc = speculo_writer_put(w, buf, size, &co, &id);
            st.chain_id = id;
            break;
        }
        case 1: case 2: case 3: case 4: { /* named update */
            h.kind = PL_NAMED;
            h.name = (uint32_t)((r >> 12) % NNAMES);
            h.version = ++st.name_version[h.name];
            pl_fill(buf, size, &h);
            struct speculo_commit_options co = {.name = name_of(h.name)};
            set_phase(PH_PUT);
            rc = speculo_writer_put(w, buf, size, &co, &id);
            break;
        }
        default: { /* stream chunk with a TTL, written in place */
            h.kind = PL_STREAM;
            h.ttl_ns = (int64_t)(1 + (r >> 24) % 50) * 1000000;
            if ((r >> 30) % 16 == 0)
                h.ttl_ns = 1000000000;
            void *p;
            set_phase(PH_ALLOC);
            rc = speculo_writer_alloc(w, size, &p);
            if (rc < 0)
                pl_fail("alloc(%zu): %s", size, speculo_strerror(rc));
            set_phase(PH_FILL);
            forge_records(p, size); /* what a kill from here on leaves past the tail */
            pl_fill(p, size, &h);
            struct speculo_commit_options co = {.ttl_ns = h.ttl_ns};
            set_phase(PH_COMMIT);
            rc = speculo_writer_commit(w, &co, &id);
            break;
        }
        }
        if (rc < 0)
            pl_fail("epoch %llu: commit of seq %llu (kind %u): %s", (unsigned long long)epoch,
                    (unsigned long long)h.seq, h.kind, speculo_strerror(rc));
        if (id <= last_id)
            pl_fail("id %llu after %llu", (unsigned long long)id, (unsigned long long)last_id);
        last_id = id;
        e.id = id;
        e.kind = h.kind;
        e.name = h.name;
        e.version = h.version;
        e.lo_expiry = h.ttl_ns ? before + h.ttl_ns : 0;
        report(&e);
        if (!S->ep[epoch % (1 << 16)].first_id)
            S->ep[epoch % (1 << 16)].first_id = id;
        S->ep[epoch % (1 << 16)].commits++;
        atomic_fetch_add_explicit(&S->bytes, size, memory_order_relaxed);
        if (++count == gc_at) {
            set_phase(PH_GC);
            rc = speculo_writer_gc(w);
            if (rc < 0)
                pl_fail("gc: %s", speculo_strerror(rc));
            atomic_fetch_add_explicit(&S->gcs, 1, memory_order_relaxed);
            S->ep[epoch % (1 << 16)].gen++;
            gc_at = count + 200 + pl_rand(&rs) % 800;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Readers                                                             */

static void reader_main(int k, uint64_t seed)
{
    speculo_reader *r = pl_open_reader(SEG, k);
    int rc;
    uint64_t rs = seed | 1, prev_id = 0, prev_seq = 0, prev_epoch = 0, max_durable = 0;
    uint64_t next_ver[NNAMES] = {0}, get_ver[NNAMES] = {0}, chain_ver = 0;
    speculo_chunk held = {0};
    struct pl_head hh;
    while (!atomic_load_explicit(&S->stop, memory_order_relaxed)) {
        /* the chunk returned last is still valid and unchanged, up to the
         * next call on this reader */
        if (held.data && pl_check(held.data, held.size, &hh) < 0)
            pl_fail("reader %d: chunk %llu changed while held", k, (unsigned long long)held.id);
        held.data = NULL;
        speculo_chunk c;
        rc = speculo_reader_next(r, &c);
        if (rc == -EAGAIN) {
            rc = speculo_reader_wait(r, 100);
            if (rc < 0 && rc != -ETIMEDOUT)
                pl_fail("reader %d: wait: %s", k, speculo_strerror(rc));
            continue;
        }
        if (rc < 0)
            pl_fail("reader %d: next: %s", k, speculo_strerror(rc));
        struct pl_head h;
        check_chunk(&c, &h);
        if (c.id <= prev_id)
            pl_fail("reader %d: id %llu after %llu", k, (unsigned long long)c.id,
                    (unsigned long long)prev_id);
        if (h.epoch < prev_epoch)
            pl_fail("reader %d: epoch %llu after %llu", k, (unsigned long long)h.epoch,
                    (unsigned long long)prev_epoch);
        if (h.epoch == prev_epoch && h.seq <= prev_seq)
            pl_fail("reader %d: seq %llu after %llu in epoch %llu", k, (unsigned long long)h.seq,
                    (unsigned long long)prev_seq, (unsigned long long)h.epoch);
        if (h.epoch != prev_epoch) {
            /* a takeover: the sequence continues above every durable chunk;
             * it may restart below expired stream chunks */
            if (h.seq <= max_durable)
                pl_fail("reader %d: epoch %llu starts at seq %llu, durable seq %llu seen", k,
                        (unsigned long long)h.epoch, (unsigned long long)h.seq,
                        (unsigned long long)max_durable);
            if (h.seq <= prev_seq)
                atomic_fetch_add_explicit(&S->rd[k].backsteps, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&S->rd[k].epochs, 1, memory_order_relaxed);
        }
        if (h.kind != PL_STREAM && h.seq > max_durable)
            max_durable = h.seq;
        if (h.kind == PL_NAMED) {
            if (h.version <= next_ver[h.name] || h.version < get_ver[h.name])
                pl_fail("reader %d: %s version %llu after %llu (get %llu)", k, name_of(h.name),
                        (unsigned long long)h.version, (unsigned long long)next_ver[h.name],
                        (unsigned long long)get_ver[h.name]);
            next_ver[h.name] = h.version;
        } else if (h.kind == PL_CHAIN) {
            if (h.version <= chain_ver)
                pl_fail("reader %d: chain version %llu after %llu", k,
                        (unsigned long long)h.version, (unsigned long long)chain_ver);
            chain_ver = h.version;
        }
        prev_id = c.id;
        prev_seq = h.seq;
        prev_epoch = h.epoch;
        held = c;
        atomic_fetch_add_explicit(&S->rd[k].chunks, 1, memory_order_relaxed);
        if (pl_rand(&rs) % 32 == 0) {
            /* get() of a name: whole, never older than what was seen */
            uint32_t n = (uint32_t)(pl_rand(&rs) % NNAMES);
            if (pl_check(held.data, held.size, &hh) < 0)
                pl_fail("reader %d: chunk %llu changed while held", k, (unsigned long long)held.id);
            held.data = NULL;
            speculo_chunk g;
            rc = speculo_reader_get(r, name_of(n), &g);
            if (rc == 0) {
                struct pl_head gh;
                check_chunk(&g, &gh);
                if (gh.version < get_ver[n] || gh.version < next_ver[n])
                    pl_fail("reader %d: get(%s) version %llu, seen %llu / %llu", k, name_of(n),
                            (unsigned long long)gh.version, (unsigned long long)get_ver[n],
                            (unsigned long long)next_ver[n]);
                get_ver[n] = gh.version;
                held = g; /* get() ended the validity of the chunk from next() */
                atomic_fetch_add_explicit(&S->rd[k].gets, 1, memory_order_relaxed);
            } else if (rc != -ENOENT || get_ver[n] || next_ver[n]) {
                pl_fail("reader %d: get(%s): %s", k, name_of(n), speculo_strerror(rc));
            }
        }
    }
    speculo_reader_close(r);
    _exit(0);
}

/* ------------------------------------------------------------------ */
/* The driver                                                          */

static void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Status of a child that must have died of SIGKILL; 0 if so. */
static int killed_ok(const siginfo_t *si)
{
    return si->si_code == CLD_KILLED && si->si_status == SIGKILL;
}

static void usage(void)
{
    fprintf(stderr, "usage: crash [-r ROUNDS] [-R READERS(1-%d)] [-d MAX_DELAY_US] [-s SEED] [-q]\n",
            MAX_READERS);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *env = getenv("CRASH_ROUNDS");
    if (env && *env)
        opt_rounds = strtoull(env, NULL, 10);
    opt_seed = (uint64_t)t_real_ns() ^ (uint64_t)getpid();
    int c;
    while ((c = getopt(argc, argv, "r:R:d:s:q")) != -1) {
        switch (c) {
        case 'r': opt_rounds = strtoull(optarg, NULL, 10); break;
        case 'R': opt_readers = atoi(optarg); break;
        case 'd': opt_delay_us = strtoull(optarg, NULL, 10); break;
        case 's': opt_seed = strtoull(optarg, NULL, 0); break;
        case 'q': opt_quiet = 1; break;
        default: usage();
        }
    }
    if (opt_readers < 1 || opt_readers > MAX_READERS || opt_delay_us == 0)
        usage();
    if (pl_private_dir("crash") < 0)
        return 1;
    if (!(S = t_shared_alloc(sizeof *S)))
        return 1;
    uint64_t rs = opt_seed | 1;
    printf("crash: %llu rounds, %d readers, kill delay up to %llu us, seed 0x%llx\n",
           (unsigned long long)opt_rounds, opt_readers, (unsigned long long)opt_delay_us,
           (unsigned long long)opt_seed);
    fflush(stdout);

    /* The segment exists before the readers start. */
    struct speculo_writer_options o = {.capacity = CAPACITY};
    speculo_writer *w0 = NULL;
    int rc = speculo_writer_open(SEG, &o, &w0);
    if (rc < 0) {
        fprintf(stderr, "crash: writer_open: %s\n", speculo_strerror(rc));
        return 1;
    }
    speculo_writer_close(w0);

    pid_t readers[MAX_READERS];
    for (int k = 0; k < opt_readers; k++) {
        uint64_t seed = pl_rand(&rs);
        readers[k] = pl_fork();
        if (readers[k] < 0)
            return 1;
        if (readers[k] == 0)
            reader_main(k, seed);
    }

    uint64_t kills[PH_COUNT] = {0}, zombies = 0, early = 0;
    pid_t zombie = 0;
    int failed = 0;
    int64_t t0 = t_mono_ns();
    for (uint64_t round = 0; round < opt_rounds && !failed; round++) {
        S->epoch = round + 1;
        atomic_store(&S->loaded, 0);
        atomic_store(&S->phase, PH_NONE);
        uint64_t seed = pl_rand(&rs);
        pid_t pid = pl_fork();
        if (pid < 0) {
            failed = 1;
            break;
        }
        if (pid == 0)
            writer_main(seed, 0);
        uint64_t r = pl_rand(&rs);
        if (r % 8 == 0) {
            early++;
            sleep_us(1 + (r >> 8) % 3000);
        } else {
            int64_t start = t_mono_ns();
            while (!atomic_load_explicit(&S->loaded, memory_order_acquire)) {
                siginfo_t si = {0};
                if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                    si.si_pid == pid)
                    break; /* it died on its own: reported below */
                if (t_mono_ns() - start > 20000000000) {
                    fprintf(stderr, "crash: round %llu: writer not ready in 20 s\n",
                            (unsigned long long)round);
                    failed = 1;
                    break;
                }
                sleep_us(50);
            }
            sleep_us(1 + (r >> 8) % opt_delay_us);
        }
        kill(pid, SIGKILL);
        /* The previous round's zombie took part in this takeover: reap it. */
        if (zombie) {
            waitpid(zombie, NULL, 0);
            zombie = 0;
        }
        siginfo_t si = {0};
        if ((round & 1) == 0) {
            /* wait until it is dead, but leave it a zombie for the takeover */
            rc = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
            zombie = pid;
            zombies++;
        } else {
            rc = waitid(P_PID, (id_t)pid, &si, WEXITED);
        }
        if (rc < 0 || !killed_ok(&si)) {
            fprintf(stderr, "crash: round %llu: writer %d ended by itself (code %d status %d)\n",
                    (unsigned long long)round, (int)pid, si.si_code, si.si_status);
            failed = 1;
        }
        int ph = atomic_load(&S->phase);
        kills[ph >= 0 && ph < PH_COUNT ? ph : 0]++;
        for (int k = 0; k < opt_readers; k++) {
            if (waitpid(readers[k], NULL, WNOHANG) == readers[k]) {
                fprintf(stderr, "crash: round %llu: reader %d died\n", (unsigned long long)round,
                        k);
                readers[k] = 0;
                failed = 1;
            }
        }
        if (!opt_quiet && round % 100 == 99) {
            printf("crash: round %llu, %llu commits\n", (unsigned long long)round + 1,
                   (unsigned long long)atomic_load(&S->commits));
            fflush(stdout);
        }
    }
    if (zombie) {
        waitpid(zombie, NULL, 0);
        zombie = 0;
    }
    /* A last writer verifies what the last one left, then closes. */
    if (!failed) {
        S->epoch = opt_rounds + 1;
        pid_t pid = pl_fork();
        if (pid == 0)
            writer_main(pl_rand(&rs), 1);
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            failed = 1;
    }
    if (zombie)
        waitpid(zombie, NULL, 0);
    /* Let the readers catch up with the end, then stop them. */
    sleep_us(200000);
    atomic_store(&S->stop, 1);
    uint64_t chunks = 0, gets = 0, epochs = 0, back = 0;
    for (int k = 0; k < opt_readers; k++) {
        if (!readers[k])
            continue;
        int status;
        waitpid(readers[k], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "crash: reader %d failed (status 0x%x)\n", k, status);
            failed = 1;
        }
        chunks += atomic_load(&S->rd[k].chunks);
        gets += atomic_load(&S->rd[k].gets);
        epochs += atomic_load(&S->rd[k].epochs);
        back += atomic_load(&S->rd[k].backsteps);
    }
    if (failed && getenv("CRASH_DEBUG")) {
        for (uint64_t e = 1; e <= opt_rounds + 1 && e < (1 << 16); e++)
            fprintf(stderr, "epoch %llu pid %lld gen0 %llu last_id0 %llu seq0 %llu gcs %llu commits %llu first_id %llu\n",
                    (unsigned long long)e, (long long)S->ep[e].pid, (unsigned long long)S->ep[e].gen0,
                    (unsigned long long)S->ep[e].last_id0, (unsigned long long)S->ep[e].next_seq0,
                    (unsigned long long)S->ep[e].gen, (unsigned long long)S->ep[e].commits,
                    (unsigned long long)S->ep[e].first_id);
    }
    double secs = (double)(t_mono_ns() - t0) / 1e9;
    printf("crash: %llu rounds in %.1f s: %llu commits (%llu MB, %llu big chunks), %llu explicit "
           "collections\n",
           (unsigned long long)opt_rounds, secs, (unsigned long long)atomic_load(&S->commits),
           (unsigned long long)(atomic_load(&S->bytes) >> 20),
           (unsigned long long)atomic_load(&S->big), (unsigned long long)atomic_load(&S->gcs));
    printf("crash: takeovers verified %llu reported commits readable, %llu accounted for "
           "(expired or replaced); %llu takeovers from a zombie\n",
           (unsigned long long)atomic_load(&S->verified),
           (unsigned long long)atomic_load(&S->accounted), (unsigned long long)zombies);
    printf("crash: kills by writer phase:");
    for (int p = 0; p < PH_COUNT; p++)
        printf(" %s %llu", phase_names[p], (unsigned long long)kills[p]);
    printf(" (%llu timed from the fork)\n", (unsigned long long)early);
    printf("crash: readers checked %llu chunks, %llu gets, %llu takeovers seen, %llu sequence "
           "restarts below expired chunks\n",
           (unsigned long long)chunks, (unsigned long long)gets, (unsigned long long)epochs,
           (unsigned long long)back);
    printf("crash: %s\n", failed ? "FAILED" : "ok");
    return failed ? 1 : 0;
}
