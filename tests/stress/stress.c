/*
 * Stress test: one writer, many reader processes, for a while.
 *
 *   stress [-t SECONDS] [-R READERS] [-s SEED] [-q]
 *   (STRESS_SECONDS in the environment sets the default of -t, 60)
 *
 * The writer (this process) commits as fast as it can into a 1 MiB
 * segment: a stream of unnamed chunks, most with a TTL (20-140 ms, known
 * from the sequence number), one in four without a TTL and obsoleted
 * explicitly 64 such chunks later; and named updates of 64 names (one
 * commit in four). It collects explicitly every 3000 commits; the segment
 * also collects when full and when dead bytes pile up.
 *
 * Reader processes (8 by default): the first five follow the stream with
 * next/wait, the others hammer get() on the names, and get_id() on what
 * they found. Every chunk is checked whole (checksum), and again just
 * before the next call on the reader (it must stay valid and unchanged
 * until then, across collections). Followers check that ids and sequence
 * numbers strictly increase, that every chunk they did not get was
 * obsoleted on purpose or had expired by then (its expiry cannot be
 * earlier than the commit time of the chunk before it plus its TTL), that
 * names' versions increase, and that they reach the last chunk. get()
 * users check that a name's version never goes backwards and never
 * disappears. Exit status 0 when every check held.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "payload.h"
#include "speculo.h"

#define SEG "stress"
#define NNAMES 64
#define MAX_READERS 16
#define CAPACITY (1 << 20)
#define PLAIN_KEEP 64
#define GC_EVERY 3000

struct shm {
    _Atomic int stop;     /* the writer is done; the end marker is committed */
    _Atomic uint64_t end_seq; /* stream seq of the end marker */
    struct {
        _Atomic uint64_t chunks, named, skipped_expired, skipped_obsolete, gets, get_ids,
            recheck;
    } rd[MAX_READERS];
};

static struct shm *S;
static int opt_quiet;

static void name_of(uint32_t k, char *buf)
{
    snprintf(buf, 16, "name%02u", k % NNAMES);
}

/* Stream chunk kinds and TTLs follow from the sequence number. */
static int is_plain(uint64_t seq)
{
    return seq % 4 == 0;
}

static int64_t ttl_of(uint64_t seq)
{
    return is_plain(seq) ? 0 : (int64_t)(1 + seq % 7) * 20000000;
}

static void check_chunk(int k, const speculo_chunk *c, struct pl_head *h)
{
    int rc = pl_check(c->data, c->size, h);
    if (rc < 0)
        pl_fail("reader %d: chunk %llu (%zu bytes) damaged (%d)", k, (unsigned long long)c->id,
                c->size, rc);
    char n[16];
    if (h->kind == PL_NAMED) {
        name_of(h->name, n);
        if (!c->name || strcmp(c->name, n) != 0)
            pl_fail("reader %d: chunk %llu: name %s, payload says %s", k, (unsigned long long)c->id,
                    c->name ? c->name : "none", n);
    } else if (c->name) {
        pl_fail("reader %d: unnamed chunk %llu has name %s", k, (unsigned long long)c->id, c->name);
    }
    if (c->expires_ns != (h->ttl_ns ? c->committed_ns + h->ttl_ns : 0))
        pl_fail("reader %d: chunk %llu: expires %lld, committed %lld + ttl %lld", k,
                (unsigned long long)c->id, (long long)c->expires_ns, (long long)c->committed_ns,
                (long long)h->ttl_ns);
}

/* ------------------------------------------------------------------ */

static void follower(int k)
{
    speculo_reader *r = pl_open_reader(SEG, k);
    int rc;
    uint64_t prev_id = 0, prev_seq = 0, ver[NNAMES] = {0};
    int64_t prev_commit = 0;
    speculo_chunk held = {0};
    struct pl_head hh;
    for (;;) {
        if (held.data) {
            if (pl_check(held.data, held.size, &hh) < 0)
                pl_fail("reader %d: chunk %llu changed while held", k, (unsigned long long)held.id);
            atomic_fetch_add_explicit(&S->rd[k].recheck, 1, memory_order_relaxed);
            held.data = NULL; /* valid up to the next call on the reader, no further */
        }
        speculo_chunk c;
        rc = speculo_reader_next(r, &c);
        if (rc == -EAGAIN) {
            if (atomic_load_explicit(&S->stop, memory_order_acquire) &&
                prev_seq == atomic_load(&S->end_seq))
                break;
            rc = speculo_reader_wait(r, 1000);
            if (rc < 0 && rc != -ETIMEDOUT)
                pl_fail("reader %d: wait: %s", k, speculo_strerror(rc));
            continue;
        }
        if (rc < 0)
            pl_fail("reader %d: next: %s", k, speculo_strerror(rc));
        struct pl_head h;
        check_chunk(k, &c, &h);
        if (c.id <= prev_id)
            pl_fail("reader %d: id %llu after %llu", k, (unsigned long long)c.id,
                    (unsigned long long)prev_id);
        held = c;
        prev_id = c.id;
        atomic_fetch_add_explicit(&S->rd[k].chunks, 1, memory_order_relaxed);
        if (h.kind == PL_NAMED) {
            if (h.version <= ver[h.name])
                pl_fail("reader %d: name%02u version %llu after %llu", k, h.name,
                        (unsigned long long)h.version, (unsigned long long)ver[h.name]);
            ver[h.name] = h.version;
            atomic_fetch_add_explicit(&S->rd[k].named, 1, memory_order_relaxed);
            continue;
        }
        if (h.seq <= prev_seq)
            pl_fail("reader %d: seq %llu after %llu", k, (unsigned long long)h.seq,
                    (unsigned long long)prev_seq);
        /* Every stream chunk skipped since the last one was obsoleted on
         * purpose, or had expired: it was committed after the previous
         * chunk, so it cannot expire before that commit time + its TTL. */
        int64_t now = t_real_ns();
        for (uint64_t m = prev_seq + 1; prev_seq && m < h.seq; m++) {
            if (is_plain(m)) {
                atomic_fetch_add_explicit(&S->rd[k].skipped_obsolete, 1, memory_order_relaxed);
                continue;
            }
            if (prev_commit + ttl_of(m) > now)
                pl_fail("reader %d: stream chunk seq %llu missing (between %llu and %llu), "
                        "cannot have expired yet (%lld ns left at least)",
                        k, (unsigned long long)m, (unsigned long long)prev_seq,
                        (unsigned long long)h.seq, (long long)(prev_commit + ttl_of(m) - now));
            atomic_fetch_add_explicit(&S->rd[k].skipped_expired, 1, memory_order_relaxed);
        }
        prev_seq = h.seq;
        prev_commit = c.committed_ns;
    }
    speculo_reader_close(r);
    _exit(0);
}

static void getter(int k, uint64_t seed)
{
    speculo_reader *r = pl_open_reader(SEG, k);
    int rc;
    uint64_t rs = seed | 1, ver[NNAMES] = {0}, idv[NNAMES] = {0};
    char n[16];
    while (!atomic_load_explicit(&S->stop, memory_order_acquire)) {
        uint32_t i = (uint32_t)(pl_rand(&rs) % NNAMES);
        name_of(i, n);
        speculo_chunk c;
        rc = speculo_reader_get(r, n, &c);
        if (rc < 0)
            pl_fail("reader %d: get(%s): %s (it always has a live version)", k, n,
                    speculo_strerror(rc));
        struct pl_head h;
        check_chunk(k, &c, &h);
        if (h.kind != PL_NAMED || h.name != i)
            pl_fail("reader %d: get(%s) gave kind %u name %u", k, n, h.kind, h.name);
        if (h.version < ver[i] || (h.version == ver[i] && c.id != idv[i]))
            pl_fail("reader %d: get(%s): version %llu (id %llu) after %llu (id %llu)", k, n,
                    (unsigned long long)h.version, (unsigned long long)c.id,
                    (unsigned long long)ver[i], (unsigned long long)idv[i]);
        ver[i] = h.version;
        idv[i] = c.id;
        atomic_fetch_add_explicit(&S->rd[k].gets, 1, memory_order_relaxed);
        /* let the writer move on, then look again: still whole */
        if (pl_rand(&rs) % 8 == 0)
            sched_yield();
        if (pl_check(c.data, c.size, &h) < 0)
            pl_fail("reader %d: chunk %llu changed while held", k, (unsigned long long)c.id);
        if (pl_rand(&rs) % 4 == 0) {
            uint64_t id = c.id;
            rc = speculo_reader_get_id(r, id, &c);
            if (rc == 0) {
                check_chunk(k, &c, &h);
                if (c.id != id || h.version != ver[i] || h.name != i)
                    pl_fail("reader %d: get_id(%llu) gave id %llu version %llu", k,
                            (unsigned long long)id, (unsigned long long)c.id,
                            (unsigned long long)h.version);
                atomic_fetch_add_explicit(&S->rd[k].get_ids, 1, memory_order_relaxed);
            } else if (rc != -ENOENT) {
                pl_fail("reader %d: get_id(%llu): %s", k, (unsigned long long)id,
                        speculo_strerror(rc));
            }
        }
    }
    speculo_reader_close(r);
    _exit(0);
}

/* ------------------------------------------------------------------ */

static void wfail(const char *what, int rc)
{
    fprintf(stderr, "stress: writer: %s: %s\n", what, speculo_strerror(rc));
    exit(1);
}

static uint64_t put_named(speculo_writer *w, uint32_t k, uint64_t version, uint64_t seq,
                          size_t size, unsigned char *buf)
{
    char n[16];
    name_of(k, n);
    struct pl_head h = {.seq = seq, .version = version, .kind = PL_NAMED, .name = k};
    pl_fill(buf, size, &h);
    struct speculo_commit_options o = {.name = n};
    uint64_t id;
    int rc = speculo_writer_put(w, buf, size, &o, &id);
    if (rc < 0)
        wfail("put named", rc);
    return id;
}

int main(int argc, char **argv)
{
    double secs = 60;
    int readers = 8;
    uint64_t seed = (uint64_t)t_real_ns() ^ (uint64_t)getpid();
    const char *env = getenv("STRESS_SECONDS");
    if (env && *env)
        secs = atof(env);
    int c;
    while ((c = getopt(argc, argv, "t:R:s:q")) != -1) {
        switch (c) {
        case 't': secs = atof(optarg); break;
        case 'R': readers = atoi(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        case 'q': opt_quiet = 1; break;
        default:
            fprintf(stderr, "usage: stress [-t SECONDS] [-R READERS(2-%d)] [-s SEED] [-q]\n",
                    MAX_READERS);
            return 2;
        }
    }
    if (readers < 2 || readers > MAX_READERS || secs <= 0) {
        fprintf(stderr, "stress: bad arguments\n");
        return 2;
    }
    if (pl_private_dir("stress") < 0)
        return 1;
    if (!(S = t_shared_alloc(sizeof *S)))
        return 1;
    int followers = readers * 5 / 8 ? readers * 5 / 8 : 1;
    printf("stress: %.0f s, 1 writer, %d followers, %d get() readers, seed 0x%llx\n", secs,
           followers, readers - followers, (unsigned long long)seed);
    fflush(stdout);

    struct speculo_writer_options o = {.capacity = CAPACITY};
    speculo_writer *w = NULL;
    int rc = speculo_writer_open(SEG, &o, &w);
    if (rc < 0)
        wfail("open", rc);
    static unsigned char buf[64 << 10];
    uint64_t rs = seed | 1, ver[NNAMES] = {0}, seq = 0;
    for (uint32_t k = 0; k < NNAMES; k++) /* every name exists before get() readers start */
        put_named(w, k, ++ver[k], seq, sizeof(struct pl_head) + k, buf);

    pid_t pids[MAX_READERS];
    for (int k = 0; k < readers; k++) {
        uint64_t s = pl_rand(&rs);
        pids[k] = pl_fork();
        if (pids[k] < 0)
            return 1;
        if (pids[k] == 0) {
            if (k < followers)
                follower(k);
            getter(k, s);
        }
    }

    uint64_t plain[PLAIN_KEEP] = {0}, nplain = 0, commits = 0, gcs = 0, bytes = 0;
    int64_t t0 = t_mono_ns(), deadline = t0 + (int64_t)(secs * 1e9);
    int64_t next_note = t0 + 10000000000;
    while (t_mono_ns() < deadline) {
        for (int burst = 0; burst < 256; burst++) {
            uint64_t r = pl_rand(&rs);
            size_t size = sizeof(struct pl_head) + (size_t)(r >> 16) % 1500;
            if ((r & 1023) == 0)
                size = sizeof(struct pl_head) + 40000 + (size_t)(r >> 32) % 20000;
            uint64_t id;
            if ((r >> 8) % 4 == 0) {
                uint32_t k = (uint32_t)((r >> 24) % NNAMES);
                put_named(w, k, ++ver[k], seq, size, buf);
            } else {
                struct pl_head h = {.seq = ++seq, .ttl_ns = ttl_of(seq),
                                    .kind = is_plain(seq) ? PL_PLAIN : PL_STREAM};
                void *p;
                if ((rc = speculo_writer_alloc(w, size, &p)) < 0)
                    wfail("alloc", rc);
                pl_fill(p, size, &h);
                struct speculo_commit_options co = {.ttl_ns = h.ttl_ns};
                if ((rc = speculo_writer_commit(w, &co, &id)) < 0)
                    wfail("commit", rc);
                if (h.kind == PL_PLAIN) {
                    uint64_t old = plain[nplain % PLAIN_KEEP];
                    if (old && (rc = speculo_writer_obsolete(w, old)) < 0)
                        wfail("obsolete", rc);
                    plain[nplain++ % PLAIN_KEEP] = id;
                }
            }
            bytes += size;
            if (++commits % GC_EVERY == 0) {
                if ((rc = speculo_writer_gc(w)) < 0)
                    wfail("gc", rc);
                gcs++;
            }
        }
        int64_t now = t_mono_ns();
        if (!opt_quiet && now >= next_note) {
            printf("stress: %.0f s, %llu commits\n", (double)(now - t0) / 1e9,
                   (unsigned long long)commits);
            fflush(stdout);
            next_note += 10000000000;
        }
    }
    /* The end marker: a last stream chunk without TTL. */
    struct pl_head h = {.seq = ++seq, .kind = PL_PLAIN};
    pl_fill(buf, sizeof h, &h);
    if ((rc = speculo_writer_put(w, buf, sizeof h, NULL, NULL)) < 0)
        wfail("end marker", rc);
    atomic_store(&S->end_seq, seq);
    atomic_store_explicit(&S->stop, 1, memory_order_release);
    double elapsed = (double)(t_mono_ns() - t0) / 1e9;

    int failed = 0;
    for (int k = 0; k < readers; k++) {
        int status;
        int64_t start = t_mono_ns();
        pid_t got;
        while ((got = waitpid(pids[k], &status, WNOHANG)) == 0 &&
               t_mono_ns() - start < 60000000000)
            usleep(10000);
        if (got != pids[k]) {
            fprintf(stderr, "stress: reader %d did not finish\n", k);
            kill(pids[k], SIGKILL);
            waitpid(pids[k], &status, 0);
            failed = 1;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "stress: reader %d failed (status 0x%x)\n", k, status);
            failed = 1;
        }
    }
    speculo_reader *r = NULL;
    struct speculo_segment_info info = {0};
    if (speculo_reader_open(SEG, &r) == 0) {
        speculo_reader_info(r, &info);
        speculo_reader_close(r);
    }
    speculo_writer_close(w);

    uint64_t chunks = 0, named = 0, exp = 0, obs = 0, gets = 0, get_ids = 0, rechecks = 0;
    for (int k = 0; k < readers; k++) {
        chunks += S->rd[k].chunks;
        named += S->rd[k].named;
        exp += S->rd[k].skipped_expired;
        obs += S->rd[k].skipped_obsolete;
        gets += S->rd[k].gets;
        get_ids += S->rd[k].get_ids;
        rechecks += S->rd[k].recheck;
    }
    printf("stress: %.1f s: %llu commits (%llu MB), %llu explicit collections, generation %llu "
           "at the end (%llu switches in all)\n",
           elapsed, (unsigned long long)commits, (unsigned long long)(bytes >> 20),
           (unsigned long long)gcs, (unsigned long long)info.generation,
           (unsigned long long)(info.generation ? info.generation - 1 : 0));
    printf("stress: followers checked %llu chunks (%llu named), skipped %llu expired and %llu "
           "obsoleted ones, rechecked %llu held chunks\n",
           (unsigned long long)chunks, (unsigned long long)named, (unsigned long long)exp,
           (unsigned long long)obs, (unsigned long long)rechecks);
    printf("stress: get() readers checked %llu gets and %llu get_ids\n", (unsigned long long)gets,
           (unsigned long long)get_ids);
    printf("stress: %s\n", failed ? "FAILED" : "ok");
    return failed ? 1 : 0;
}
