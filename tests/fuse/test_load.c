/*
 * Load: many processes walking, listing, stat-ing and reading the mount
 * (its .all too) while a writer commits at full speed and collects often;
 * and no growth of the server's memory, mappings or descriptors over
 * 100,000 opens.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_fuse.h"
#include "t_util.h"

#define KiB ((size_t)1024)
#define MS INT64_C(1000000)

#define LOAD_SEG "load"
#define LOAD_NAMES 8          /* named chunks n0..n7, updated in place */
#define LOAD_READERS 16
#define LOAD_MAX_PAYLOAD 1600 /* bytes, header included */

/* ---- self-checking payloads ---------------------------------------- */

/* Every chunk begins with this header; the body is t_fill(seq) bytes. */
struct payload_hdr {
    uint64_t seq;  /* the writer's commit number: the chunk's id */
    uint32_t kind; /* 0 unnamed, 1 + k for the name "nk" */
    uint32_t size; /* the whole chunk, header included */
    uint64_t sum;  /* FNV-1a of the body */
};

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static size_t make_payload(unsigned char *buf, uint64_t seq, uint32_t kind, size_t size)
{
    struct payload_hdr h = {.seq = seq, .kind = kind, .size = (uint32_t)size};

    t_fill(buf + sizeof h, size - sizeof h, seq);
    h.sum = fnv1a(buf + sizeof h, size - sizeof h);
    memcpy(buf, &h, sizeof h);
    return size;
}

/* 0 when @buf (@n bytes read from a file of @st_size bytes) is a complete
 * valid payload of @kind (and of id @id when unnamed); else a reason. */
static const char *check_payload(const unsigned char *buf, size_t n, off_t st_size,
                                 uint32_t kind, uint64_t id, uint64_t *seq)
{
    struct payload_hdr h;

    if (n < sizeof h)
        return "shorter than a header";
    memcpy(&h, buf, sizeof h);
    *seq = h.seq;
    if (h.size != n || (off_t)n != st_size)
        return "size differs from the header's or from fstat's";
    if (h.kind != kind)
        return "payload of another name";
    if (kind == 0 && h.seq != id)
        return "unnamed chunk whose payload is another id's";
    if (fnv1a(buf + sizeof h, n - sizeof h) != h.sum)
        return "checksum mismatch (torn contents)";
    if (t_check_fill(buf + sizeof h, n - sizeof h, h.seq) != 0)
        return "body is not the pattern of its sequence number";
    return NULL;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- concurrent_readers_under_writes -------------------------------- */

/*
 * The run ends when what it is about has happened often enough over all
 * readers together (the quotas below), not after a fixed time: a loaded
 * machine takes longer, and only a run that does not get there within
 * LOAD_DEADLINE_MS fails. Each reader is held to correctness alone: what a
 * reader manages in a given time depends on the scheduler, and a stat of
 * an unnamed chunk that expired meanwhile rightly says ENOENT.
 */
#define LOAD_DEADLINE_MS 60000
#define Q_GCS 200           /* explicit collections while the readers read */
#define Q_LISTINGS 300      /* listings read to their end */
#define Q_STATS 1000        /* stats that found their chunk */
#define Q_STATS_UNNAMED 50  /* ... of unnamed chunks */
#define Q_OPENS_NAMED 1000  /* opens read to the end and verified, named */
#define Q_OPENS_UNNAMED 100 /* ... unnamed */
#define Q_RECORDS 20        /* records of .all opened and verified */
#define Q_OPS_PER_READER 64 /* operations each reader made (any outcome) */

/* Unnamed chunks live 2-9 ms, so that they vanish under the readers; one
 * commit in LOAD_LASTING_EVERY is an unnamed chunk that lives
 * LOAD_LASTING_MS, so that a stat or an open of an unnamed chunk picked
 * from a listing also finds it now and then, however slow the reader. */
#define LOAD_LASTING_EVERY 128
#define LOAD_LASTING_MS 250

enum { OP_READDIR, OP_STAT, OP_OPEN, OP_NKINDS };

/* A reader's counts. Each has one writer, its reader; the test process
 * reads them while the readers run (atomics, relaxed: counts only). */
struct load_stats {
    uint64_t ops;               /* operations made, whatever their outcome */
    uint64_t done[OP_NKINDS];   /* operations that succeeded */
    uint64_t enoent[OP_NKINDS]; /* ENOENT (a chunk that vanished) */
    uint64_t estale[2];         /* ESTALE on open: unnamed, named (must stay 0) */
    uint64_t stat_unnamed;      /* stats that found an unnamed chunk */
    uint64_t verified_named, verified_unnamed, verified_records;
    uint64_t listed;       /* entries listed */
    uint64_t enoent_named; /* ENOENT of a name n0..n7 (stat or open): must stay 0 */
    uint64_t unexpected;   /* anything else: must stay 0 */
    char first_error[160];
};

struct load_shared {
    int ready, stop;
    uint64_t commits, gcs, named_commits;
    struct load_stats r[LOAD_READERS];
};

static void count(uint64_t *c)
{
    __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static uint64_t seen_count(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static int stopped(const struct load_shared *sh)
{
    return __atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE);
}

/* Count an unexpected outcome of @op on @path; keep the first one's text
 * (@why, or strerror(@err) when @why is NULL). */
static void bad(struct load_stats *st, const char *op, const char *path, const char *why, int err)
{
    const char *base = strrchr(path, '/');

    if (__atomic_fetch_add(&st->unexpected, 1, __ATOMIC_RELAXED) == 0)
        snprintf(st->first_error, sizeof st->first_error, "%.20s %.40s: %.80s", op,
                 base != NULL ? base + 1 : path, why != NULL ? why : strerror(err));
}

/* The writer: unnamed chunks of a few ms (and a few lasting ones), named
 * ones updated in place, an explicit GC every 2000 commits, until told to
 * stop. */
static int run_writer(struct load_shared *sh)
{
    struct speculo_writer_options wo = {.capacity = 256 * KiB};
    unsigned char buf[LOAD_MAX_PAYLOAD];
    speculo_writer *w = NULL;
    uint64_t seq = 0, rnd = 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
    char name[8];

    T_CHILD_EQ(speculo_writer_open(LOAD_SEG, &wo, &w), 0);
    for (int k = 0; k < LOAD_NAMES; k++) { /* every name exists from the start */
        struct speculo_commit_options o = {.name = name};
        uint64_t id = 0;
        snprintf(name, sizeof name, "n%d", k);
        make_payload(buf, ++seq, (uint32_t)(1 + k), 64);
        T_CHILD_EQ(speculo_writer_put(w, buf, 64, &o, &id), 0);
        T_CHILD_EQ(id, seq);
    }
    __atomic_store_n(&sh->ready, 1, __ATOMIC_RELEASE);
    while (!stopped(sh)) {
        for (int i = 0; i < 256; i++) {
            uint64_t r = xorshift(&rnd), id = 0;
            size_t size = sizeof(struct payload_hdr) + (size_t)(r % (LOAD_MAX_PAYLOAD - 31));
            struct speculo_commit_options o = {0};
            uint32_t kind = 0;
            if ((r >> 32) % 4 == 0) { /* a named update */
                kind = (uint32_t)(1 + (r >> 40) % LOAD_NAMES);
                snprintf(name, sizeof name, "n%u", (unsigned)kind - 1);
                o.name = name;
                count(&sh->named_commits);
            } else if ((seq + 1) % LOAD_LASTING_EVERY == 0) {
                o.ttl_ns = LOAD_LASTING_MS * MS;
                size = sizeof(struct payload_hdr) + (size_t)(r % 256);
            } else {
                o.ttl_ns = (int64_t)(2 + (r >> 40) % 8) * MS; /* 2-9 ms */
            }
            make_payload(buf, ++seq, kind, size);
            T_CHILD_EQ(speculo_writer_put(w, buf, size, &o, &id), 0);
            T_CHILD_EQ(id, seq);
            if (seq % 2000 == 0) {
                T_CHILD_EQ(speculo_writer_gc(w), 0);
                count(&sh->gcs);
            }
        }
        __atomic_store_n(&sh->commits, seq, __ATOMIC_RELAXED);
    }
    speculo_writer_close(w);
    return 0;
}

/* What a name of the segment directory is: 0 an unnamed chunk (its id in
 * @id), 1 + k the name "nk", -1 .info or .all, -2 anything else. */
static int classify(const char *name, uint64_t *id)
{
    if (strcmp(name, ".info") == 0 || strcmp(name, ".all") == 0)
        return -1;
    if (name[0] == 'n' && name[1] >= '0' && name[1] < '0' + LOAD_NAMES && name[2] == '\0')
        return 1 + (name[1] - '0');
    if (strlen(name) == 20 && strspn(name, "0123456789") == 20) {
        *id = strtoull(name, NULL, 10);
        return 0;
    }
    return -2;
}

/* The last SEEN_MAX names of the last listing (the newest chunks: the most
 * likely to be still live), to pick from. */
#define SEEN_MAX 4096
struct seen {
    char name[SEEN_MAX][24];
    uint64_t total;
    int n;
};

static void do_stat(const char *dir, const char *name, struct load_stats *st);

/* opendir + readdir of the segment to its end, then (when @stat_all) stat
 * of every entry kept. The stats come after the listing: a listing
 * follows new commits to the end of the segment, and one slowed down by a
 * stat per entry would not catch up with the writer. */
static void do_readdir(const char *dir, struct seen *seen, int stat_all, struct load_stats *st)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    count(&st->ops);
    if (d == NULL) {
        bad(st, "opendir", dir, NULL, errno);
        return;
    }
    seen->total = 0;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t id = 0;
        int c;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        c = classify(de->d_name, &id);
        st->listed++;
        if (c == -2)
            bad(st, "readdir", de->d_name, "unexpected name", 0);
        else if (c >= 0)
            snprintf(seen->name[seen->total++ % SEEN_MAX], sizeof seen->name[0], "%.23s",
                     de->d_name);
        errno = 0;
    }
    seen->n = seen->total < SEEN_MAX ? (int)seen->total : SEEN_MAX;
    if (errno != 0)
        bad(st, "readdir", dir, NULL, errno);
    else
        count(&st->done[OP_READDIR]);
    closedir(d);
    for (int i = 0; stat_all && i < seen->n; i++)
        do_stat(dir, seen->name[i], st);
}

static void do_stat(const char *dir, const char *name, struct load_stats *st)
{
    char p[PATH_MAX + 300];
    struct stat sb;

    count(&st->ops);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (stat(p, &sb) == 0) {
        count(&st->done[OP_STAT]);
        if (name[0] != 'n')
            count(&st->stat_unnamed);
        if (!S_ISREG(sb.st_mode) || sb.st_size < (off_t)sizeof(struct payload_hdr))
            bad(st, "stat", p, "bad mode or size", 0);
    } else if (errno == ENOENT) {
        count(&st->enoent[OP_STAT]);
        if (name[0] == 'n')
            count(&st->enoent_named);
    } else {
        bad(st, "stat", p, NULL, errno);
    }
}

/* open + read to the end + verify; a named chunk never goes back in time
 * for one process (@last_seq per name). @last_seq NULL: a record of .all,
 * which may be any chunk, dead or not, and is never ESTALE. */
static void do_open(const char *dir, const char *name, uint64_t *last_seq,
                    struct load_stats *st)
{
    unsigned char buf[LOAD_MAX_PAYLOAD + 64];
    char p[PATH_MAX + 300];
    struct stat sb;
    size_t got = 0;
    uint64_t id = 0, seq = 0;
    int kind = classify(name, &id), fd;
    const char *why;

    count(&st->ops);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            count(&st->enoent[OP_OPEN]);
            if (kind > 0)
                count(&st->enoent_named);
        } else if (errno == ESTALE && last_seq != NULL) {
            count(&st->estale[kind > 0]);
        } else {
            bad(st, "open", p, NULL, errno);
        }
        return;
    }
    if (fstat(fd, &sb) != 0) {
        bad(st, "fstat", p, NULL, errno);
        close(fd);
        return;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, sizeof buf - got);
        if (n < 0) {
            bad(st, "read", p, NULL, errno);
            close(fd);
            return;
        }
        if (n == 0 || got + (size_t)n == sizeof buf) {
            got += (size_t)n;
            break;
        }
        got += (size_t)n;
    }
    if (close(fd) != 0)
        bad(st, "close", p, NULL, errno);
    if (last_seq == NULL && got >= sizeof(struct payload_hdr)) /* its id is its seq */
        kind = (int)((const struct payload_hdr *)(const void *)buf)->kind;
    why = check_payload(buf, got, sb.st_size, (uint32_t)kind, kind > 0 ? 0 : id, &seq);
    if (why == NULL && last_seq == NULL && seq != id)
        why = "record whose payload is another id's";
    if (why != NULL) {
        bad(st, "verify", p, why, 0);
        return;
    }
    if (last_seq == NULL) {
        count(&st->verified_records);
    } else if (kind > 0) {
        if (seq < last_seq[kind - 1])
            bad(st, "open", p, "a named chunk went back in time", 0);
        last_seq[kind - 1] = seq;
        count(&st->verified_named);
    } else {
        count(&st->verified_unnamed);
    }
    count(&st->done[OP_OPEN]);
}

/* A listing of .all (every name an id), then 4 of its records opened and
 * verified, whatever their state: ENOENT once collected. */
static void do_all(const char *dir, struct seen *seen, uint64_t *rnd, struct load_stats *st)
{
    char all[PATH_MAX + 32];
    uint64_t id;

    snprintf(all, sizeof all, "%s/.all", dir);
    do_readdir(all, seen, 0, st);
    for (int i = 0; i < seen->n; i++)
        if (classify(seen->name[i], &id) != 0)
            bad(st, "readdir", seen->name[i], "not a record's name in .all", 0);
    for (int k = 0; k < 4 && seen->n > 0; k++)
        do_open(all, seen->name[xorshift(rnd) % (uint64_t)seen->n], NULL, st);
}

/* Reader @i, by role i % 3: 0 opens 4 chunks, then lists the segment and
 * stats every entry, and so on; 1 mostly opens and reads, 2 mostly stats; 1 and 2 list
 * the segment every 16 operations to find names to pick from. A pick is one
 * of the names n0..n7 a third of the time, else an entry of the last
 * listing. Role 0 also looks at .all every 10 operations. */
static int run_reader(struct load_shared *sh, int i)
{
    struct load_stats *st = &sh->r[i];
    struct seen *seen = calloc(1, sizeof *seen), *records = calloc(1, sizeof *records);
    uint64_t last_seq[LOAD_NAMES] = {0}, rnd = 0x2545f4914f6cdd1du ^ ((uint64_t)(i + 1) << 32);
    char dir[PATH_MAX + 16], name[8];
    int role = i % 3;

    T_CHILD_ASSERT(seen != NULL && records != NULL);
    snprintf(dir, sizeof dir, "%s/%s", tf_m.mnt, LOAD_SEG);
    for (uint64_t it = 0; !stopped(sh); it++) {
        uint64_t r = xorshift(&rnd);
        const char *pick;
        int op;
        if (role == 0 && it % 10 == 9) {
            do_all(dir, records, &rnd, st);
            continue;
        }
        if (role == 0 ? it % 5 == 4 : it % 16 == 0 || seen->n == 0) {
            do_readdir(dir, seen, role == 0, st);
            continue;
        }
        if (seen->n == 0 || (r >> 8) % 3 == 0) {
            snprintf(name, sizeof name, "n%u", (unsigned)((r >> 16) % LOAD_NAMES));
            pick = name;
        } else {
            pick = seen->name[(r >> 16) % (uint64_t)seen->n];
        }
        if (role == 2)
            op = (r >> 4) % 4 == 0 ? OP_OPEN : OP_STAT;
        else
            op = role == 1 && (r >> 4) % 4 == 0 ? OP_STAT : OP_OPEN;
        if (op == OP_OPEN)
            do_open(dir, pick, last_seq, st);
        else
            do_stat(dir, pick, st);
    }
    free(seen);
    free(records);
    return 0;
}

/* NULL when the run has done what it is about, else what it still lacks. */
static const char *coverage_missing(struct load_shared *sh, char *why, size_t size)
{
    uint64_t listings = 0, stats = 0, stats_unnamed = 0, named = 0, unnamed = 0, records = 0;

    for (int i = 0; i < LOAD_READERS; i++) {
        struct load_stats *st = &sh->r[i];
        if (seen_count(&st->ops) < Q_OPS_PER_READER) {
            snprintf(why, size, "reader %d made %" PRIu64 " operations of %d", i,
                     seen_count(&st->ops), Q_OPS_PER_READER);
            return why;
        }
        listings += seen_count(&st->done[OP_READDIR]);
        stats += seen_count(&st->done[OP_STAT]);
        stats_unnamed += seen_count(&st->stat_unnamed);
        named += seen_count(&st->verified_named);
        unnamed += seen_count(&st->verified_unnamed);
        records += seen_count(&st->verified_records);
    }
    if (seen_count(&sh->gcs) < Q_GCS || listings < Q_LISTINGS || stats < Q_STATS ||
        stats_unnamed < Q_STATS_UNNAMED || named < Q_OPENS_NAMED || unnamed < Q_OPENS_UNNAMED ||
        records < Q_RECORDS) {
        snprintf(why, size,
                 "%" PRIu64 " GCs of %d, %" PRIu64 " listings of %d, %" PRIu64
                 " stats of %d (%" PRIu64 " unnamed of %d), %" PRIu64
                 " named opens of %d, %" PRIu64 " unnamed of %d, %" PRIu64 " records of %d",
                 seen_count(&sh->gcs), Q_GCS, listings, Q_LISTINGS, stats, Q_STATS, stats_unnamed,
                 Q_STATS_UNNAMED, named, Q_OPENS_NAMED, unnamed, Q_OPENS_UNNAMED, records,
                 Q_RECORDS);
        return why;
    }
    return NULL;
}

/* A child that ended while it should still run (it failed: its message
 * is above), or -1. */
static int ended_early(pid_t writer, const pid_t *readers)
{
    if (t_proc_state(writer) == 'Z')
        return LOAD_READERS;
    for (int i = 0; i < LOAD_READERS; i++)
        if (t_proc_state(readers[i]) == 'Z')
            return i;
    return -1;
}

/* Correct answers only, for one reader: no error but ENOENT of an unnamed
 * chunk (which may expire or be obsoleted between the listing and the
 * look), no ENOENT of a name (n0..n7 have a live version at every
 * instant), no ESTALE (an unnamed chunk the first OPEN finds dead stays
 * dead: the retried walk's LOOKUP answers ENOENT; a name's version
 * replaced, or even collected, between its LOOKUP and its OPEN opens from
 * the file the LOOKUP read, held for it: fusefs/holds.c), every payload
 * whole and of its name, no name going back in time. */
static void check_reader(int i, const struct load_stats *st)
{
    ck_assert_msg(st->unexpected == 0, "reader %d: %" PRIu64 " unexpected errors, first: %s", i,
                  st->unexpected, st->first_error);
    ck_assert_msg(st->enoent_named == 0, "reader %d: a name was not found %" PRIu64 " times", i,
                  st->enoent_named);
    ck_assert_msg(st->estale[0] + st->estale[1] == 0,
                  "reader %d: ESTALE from open(2) of %" PRIu64 " unnamed and %" PRIu64
                  " named chunks",
                  i, st->estale[0], st->estale[1]);
}

START_TEST(test_concurrent_readers_under_writes)
{
    struct load_shared *sh = t_shared_alloc(sizeof *sh);
    pid_t writer, readers[LOAD_READERS];
    int64_t t0 = t_mono_ns(), ran_ms;
    struct load_stats sum = {0};
    char p[PATH_MAX + 300], why[256];
    int rc;

    ck_assert_ptr_nonnull(sh);
    writer = t_fork();
    ck_assert_int_ge(writer, 0);
    if (writer == 0)
        _exit(run_writer(sh));
    while (!__atomic_load_n(&sh->ready, __ATOMIC_ACQUIRE)) {
        ck_assert_msg(t_ms_since(t0) < T_PATIENCE_MS, "the writer did not start");
        ck_assert_msg(t_proc_state(writer) != 'Z', "the writer failed");
        t_sleep_ms(1);
    }
    ck_assert_int_eq(tf_stat_err(tf_path(p, LOAD_SEG, "n0")), 0);
    t0 = t_mono_ns();
    for (int i = 0; i < LOAD_READERS; i++) {
        readers[i] = t_fork();
        ck_assert_int_ge(readers[i], 0);
        if (readers[i] == 0)
            _exit(run_reader(sh, i));
    }
    while (coverage_missing(sh, why, sizeof why) != NULL &&
           ended_early(writer, readers) < 0 && t_ms_since(t0) < LOAD_DEADLINE_MS)
        t_sleep_ms(10);
    ran_ms = t_ms_since(t0);
    __atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
    rc = t_wait(writer, T_PATIENCE_MS);
    ck_assert_msg(rc == 0, "the writer failed (%d)", rc);
    for (int i = 0; i < LOAD_READERS; i++) {
        rc = t_wait(readers[i], T_PATIENCE_MS);
        ck_assert_msg(rc == 0, "reader %d failed (%d)", i, rc);
    }
    for (int i = 0; i < LOAD_READERS; i++) {
        const struct load_stats *st = &sh->r[i];
        check_reader(i, st);
        for (int k = 0; k < OP_NKINDS; k++) {
            sum.done[k] += st->done[k];
            sum.enoent[k] += st->enoent[k];
        }
        sum.verified_named += st->verified_named;
        sum.verified_unnamed += st->verified_unnamed;
        sum.verified_records += st->verified_records;
        sum.listed += st->listed;
    }
    ck_assert_msg(coverage_missing(sh, why, sizeof why) == NULL,
                  "in %" PRId64 " ms (the deadline is a failure bound, generous for a loaded"
                  " machine): %s",
                  ran_ms, why);
    printf("load: %" PRIu64 " commits (%" PRIu64 " named, %" PRIu64 " explicit GCs) in %" PRId64
           " ms; %d readers: %" PRIu64 " listings (%" PRIu64 " entries),"
           " %" PRIu64 " stats (%" PRIu64 " ENOENT),"
           " %" PRIu64 " opens verified (%" PRIu64 " named, %" PRIu64 " unnamed, %" PRIu64
           " records of .all; %" PRIu64 " ENOENT)\n",
           sh->commits, sh->named_commits, sh->gcs, ran_ms, LOAD_READERS, sum.done[OP_READDIR],
           sum.listed, sum.done[OP_STAT], sum.enoent[OP_STAT], sum.done[OP_OPEN],
           sum.verified_named, sum.verified_unnamed, sum.verified_records, sum.enoent[OP_OPEN]);
    t_shared_free(sh, sizeof *sh);
}
END_TEST

/* ---- no_leak_over_100k_opens ---------------------------------------- */

#define LEAK_FILES 64
#define LEAK_TOTAL 100000
#define LEAK_WARMUP 10000
#define LEAK_PROCS 2
/* The warm-up runs more processes than the server has worker threads, so
 * that every worker (its stack, its malloc arena) exists before "before". */
#define LEAK_WARMUP_PROCS 16

struct server_usage {
    long rss_kib;
    int maps, fds, threads;
    int seg_maps; /* mappings of segment files (a leaked reader or hold) */
};

/* Mappings a worker thread may bring (its stack and guard, a sanitizer's
 * per-thread areas): libfuse starts and ends workers as the load goes. */
#define MAPS_PER_THREAD 8

/* Mappings of the segment's files a server may keep however many opens it
 * served: its pool of idle readers (SFS_POOL_MAX, 8, in fusefs/sfs.h; one
 * mapping each), the current file held for opens, the notifier's reader
 * and its mapping of the header. The pool grows to what lookups needed at once:
 * the warm-up fills it on an idle machine, not always on a loaded one, and
 * the opens measured may add to it. A leak goes past this. */
#define SEG_MAPS_AT_MOST (8 + 3)

static struct server_usage server_usage(pid_t pid)
{
    struct server_usage u = {-1, 0, 0, 0, 0};
    char path[64], line[PATH_MAX + 128], seg[PATH_MAX];
    char *slash;
    FILE *f;
    DIR *d;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &u.rss_kib) == 1)
            break;
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    f = fopen(path, "re");
    ck_assert_ptr_nonnull(f);
    tf_seg_path(seg, "leak");
    slash = strrchr(seg, '/');
    ck_assert_ptr_nonnull(slash);
    slash[1] = '\0'; /* the segment directory, and the collector's files in it */
    while (fgets(line, sizeof line, f) != NULL)
        if (strchr(line, '\n') != NULL) {
            u.maps++;
            u.seg_maps += strstr(line, seg) != NULL;
        }
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (de->d_name[0] != '.')
            u.fds++;
    closedir(d);
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (de->d_name[0] != '.')
            u.threads++;
    closedir(d);
    ck_assert_int_gt(u.rss_kib, 0);
    return u;
}

/* @n open + read + close of the chunk files, from @procs processes;
 * every 8th read drops the cached pages first so that READ reaches the
 * server too. */
static void open_many(char (*names)[PATH_MAX], const size_t *sizes, int n, int procs)
{
    pid_t pids[LEAK_WARMUP_PROCS];

    ck_assert_int_le(procs, LEAK_WARMUP_PROCS);
    for (int k = 0; k < procs; k++) {
        pids[k] = t_fork();
        ck_assert_int_ge(pids[k], 0);
        if (pids[k] == 0) {
            char buf[8192];
            for (int i = k; i < n; i += procs) {
                int f = (i * 7 + k) % LEAK_FILES;
                int fd = open(names[f], O_RDONLY | O_CLOEXEC);
                ssize_t got;
                T_CHILD_ASSERT(fd >= 0);
                if (i % 8 == 0)
                    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
                got = read(fd, buf, sizeof buf);
                T_CHILD_EQ(got, sizes[f]);
                T_CHILD_EQ(t_check_fill(buf, (size_t)got, (uint64_t)f), 0);
                T_CHILD_EQ(close(fd), 0);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < procs; k++)
        ck_assert_int_eq(t_wait(pids[k], 60000), 0);
}

/* The server's usage settled: the least descriptors and mappings seen in
 * a few samples (RELEASEs of closed files are handled asynchronously; a
 * count caught before that only makes the comparison below laxer). */
static struct server_usage settled_usage(pid_t pid)
{
    struct server_usage u = server_usage(pid);

    for (int i = 0; i < 20; i++) {
        struct server_usage v;
        t_sleep_ms(10);
        v = server_usage(pid);
        if (v.fds < u.fds)
            u.fds = v.fds;
        if (v.maps < u.maps)
            u.maps = v.maps;
        if (v.seg_maps < u.seg_maps)
            u.seg_maps = v.seg_maps;
        u.rss_kib = v.rss_kib;
    }
    return u;
}

/* Nothing more held than @before: no more descriptors, no more mappings
 * of segment files than before or than a full reader pool brings, no more
 * mappings but those and those of new worker threads. */
static int usage_back_to(const struct server_usage *u, const struct server_usage *before)
{
    int threads = u->threads > before->threads ? u->threads - before->threads : 0;
    int seg_maps = u->seg_maps > before->seg_maps ? u->seg_maps - before->seg_maps : 0;

    return u->fds <= before->fds &&
           (u->seg_maps <= before->seg_maps || u->seg_maps <= SEG_MAPS_AT_MOST) &&
           u->maps <= before->maps + MAPS_PER_THREAD * threads + seg_maps;
}

/* The server's usage once the RELEASEs of the opens made are handled
 * (they come after the close(2)s that caused them): sampled until it is
 * back to @before, for T_PATIENCE_MS at most (then the caller's
 * assertions tell what was left). */
static struct server_usage usage_after(pid_t pid, const struct server_usage *before)
{
    int64_t t0 = t_mono_ns();
    struct server_usage u = server_usage(pid);

    while (!usage_back_to(&u, before) && t_ms_since(t0) < T_PATIENCE_MS) {
        t_sleep_ms(10);
        u = server_usage(pid);
    }
    return u;
}

START_TEST(test_no_leak_over_100k_opens)
{
    static char names[LEAK_FILES][PATH_MAX];
    static size_t sizes[LEAK_FILES];
    speculo_writer *w = tf_writer("leak", 0, 0);
    unsigned char buf[8192];
    struct server_usage before, after;
    int64_t t0 = t_mono_ns();
    char id[24];

    ck_assert_int_gt(tf_m.pid, 0);
    for (int f = 0; f < LEAK_FILES; f++) {
        char name[16];
        uint64_t cid;
        sizes[f] = 100 + (size_t)f * 97;
        t_fill(buf, sizes[f], (uint64_t)f);
        snprintf(name, sizeof name, "named%d", f);
        cid = tf_put(w, f % 2 ? name : NULL, buf, sizes[f], 0);
        tf_path(names[f], "leak", f % 2 ? name : tf_idname(id, cid));
    }
    open_many(names, sizes, LEAK_WARMUP, LEAK_WARMUP_PROCS);
    before = settled_usage(tf_m.pid);
    open_many(names, sizes, LEAK_TOTAL - LEAK_WARMUP, LEAK_PROCS);
    after = usage_after(tf_m.pid, &before);
    printf("no_leak: %d opens in %" PRId64 " ms; server after %d: RSS %ld KiB, %d mappings"
           " (%d of segment files), %d fds, %d threads; after %d: RSS %ld KiB, %d mappings"
           " (%d), %d fds, %d threads\n",
           LEAK_TOTAL, t_ms_since(t0), LEAK_WARMUP, before.rss_kib, before.maps, before.seg_maps,
           before.fds, before.threads, LEAK_TOTAL, after.rss_kib, after.maps, after.seg_maps,
           after.fds, after.threads);
    ck_assert_int_lt(after.rss_kib - before.rss_kib, 8 * 1024);
    ck_assert_int_le(after.fds, before.fds);
    ck_assert_msg(usage_back_to(&after, &before),
                  "%d mappings (%d of segment files) for %d threads, were %d (%d) for %d",
                  after.maps, after.seg_maps, after.threads, before.maps, before.seg_maps,
                  before.threads);
    speculo_writer_close(w);
}
END_TEST

/* tf_setup(), with a server that, when built with AddressSanitizer, keeps
 * no quarantine of freed memory: its RSS then measures what it holds, not
 * the hundreds of MiB of freed blocks ASan keeps aside. Other servers
 * ignore the variable. */
static void setup_no_quarantine(void)
{
    const char *old = getenv("ASAN_OPTIONS");
    char *saved = old != NULL ? strdup(old) : NULL;
    char opts[1024];
    int rc;

    snprintf(opts, sizeof opts, "%s%squarantine_size_mb=0:thread_local_quarantine_size_kb=0",
             old != NULL ? old : "", old != NULL && *old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    tf_make_dirs(&tf_m);
    rc = tf_start(&tf_m, NULL);
    if (saved != NULL)
        setenv("ASAN_OPTIONS", saved, 1);
    else
        unsetenv("ASAN_OPTIONS");
    free(saved);
    ck_assert_msg(rc == 0, "speculofs did not mount");
}

Suite *tf_suite_load(void)
{
    Suite *s = suite_create("load");

    suite_add_tcase(s, tf_tcase("concurrent_readers_under_writes",
                                test_concurrent_readers_under_writes, tf_setup,
                                LOAD_DEADLINE_MS / 1000 + 60));
    suite_add_tcase(s, tf_tcase("no_leak_over_100k_opens", test_no_leak_over_100k_opens,
                                setup_no_quarantine, 150));
    return s;
}
