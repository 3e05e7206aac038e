/*
 * Load: many processes walking, listing, stat-ing and reading the mount
 * while a writer commits at full speed and collects often; and no growth of
 * the server's memory, mappings or descriptors over 100,000 opens.
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
#define LOAD_WRITE_MS 8000
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

enum { OP_READDIR, OP_STAT, OP_OPEN, OP_NKINDS };

struct load_stats {
    uint64_t done[OP_NKINDS];   /* operations that succeeded */
    uint64_t enoent[OP_NKINDS]; /* ENOENT (a chunk that vanished) */
    uint64_t estale[2];         /* ESTALE on open: unnamed, named (must stay 0) */
    uint64_t verified_named, verified_unnamed;
    uint64_t listed;       /* entries listed */
    uint64_t enoent_named; /* ENOENT of a name n0..n7 (stat or open): must stay 0 */
    uint64_t unexpected; /* anything else: must stay 0 */
    char first_error[160];
};

struct load_shared {
    volatile int ready, stop;
    uint64_t commits, gcs, named_commits;
    struct load_stats r[LOAD_READERS];
};

/* Count an unexpected outcome of @op on @path; keep the first one's text
 * (@why, or strerror(@err) when @why is NULL). */
static void bad(struct load_stats *st, const char *op, const char *path, const char *why, int err)
{
    const char *base = strrchr(path, '/');

    if (st->unexpected++ == 0)
        snprintf(st->first_error, sizeof st->first_error, "%.20s %.40s: %.80s", op,
                 base != NULL ? base + 1 : path, why != NULL ? why : strerror(err));
}

/* The writer: unnamed chunks of a few ms, named ones updated in place, an
 * explicit GC every 2000 commits, for LOAD_WRITE_MS. */
static int run_writer(struct load_shared *sh)
{
    struct speculo_writer_options wo = {.capacity = 256 * KiB};
    unsigned char buf[LOAD_MAX_PAYLOAD];
    speculo_writer *w = NULL;
    uint64_t seq = 0, rnd = 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
    int64_t start;
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
    __atomic_store_n(&sh->ready, 1, __ATOMIC_SEQ_CST);
    start = t_mono_ns();
    while (t_ms_since(start) < LOAD_WRITE_MS) {
        for (int i = 0; i < 256; i++) {
            uint64_t r = xorshift(&rnd), id = 0;
            size_t size = sizeof(struct payload_hdr) + (size_t)(r % (LOAD_MAX_PAYLOAD - 31));
            struct speculo_commit_options o = {0};
            uint32_t kind = 0;
            if ((r >> 32) % 4 == 0) { /* a named update */
                kind = (uint32_t)(1 + (r >> 40) % LOAD_NAMES);
                snprintf(name, sizeof name, "n%u", (unsigned)kind - 1);
                o.name = name;
                sh->named_commits++;
            } else {
                o.ttl_ns = (int64_t)(2 + (r >> 40) % 8) * MS; /* 2-9 ms */
            }
            make_payload(buf, ++seq, kind, size);
            T_CHILD_EQ(speculo_writer_put(w, buf, size, &o, &id), 0);
            T_CHILD_EQ(id, seq);
            if (seq % 2000 == 0) {
                T_CHILD_EQ(speculo_writer_gc(w), 0);
                sh->gcs++;
            }
        }
    }
    sh->commits = seq;
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
    speculo_writer_close(w);
    return 0;
}

/* What a name of the segment directory is: 0 an unnamed chunk (its id in
 * @id), 1 + k the name "nk", -1 .info, -2 anything else. */
static int classify(const char *name, uint64_t *id)
{
    if (strcmp(name, ".info") == 0)
        return -1;
    if (name[0] == 'n' && name[1] >= '0' && name[1] < '0' + LOAD_NAMES && name[2] == '\0')
        return 1 + (name[1] - '0');
    if (strlen(name) == 20 && strspn(name, "0123456789") == 20) {
        *id = strtoull(name, NULL, 10);
        return 0;
    }
    return -2;
}

/* Names seen in the last listing, to pick from. */
#define SEEN_MAX 4096
struct seen {
    char name[SEEN_MAX][24];
    int n;
};

static void do_stat(const char *dir, const char *name, struct load_stats *st);

/* opendir + readdir of the segment to its end, then (when @stat_all) stat
 * of every entry listed. The stats come after the listing: a listing
 * follows new commits to the end of the segment, and one slowed down by a
 * stat per entry would not catch up with the writer. */
static void do_readdir(const char *dir, struct seen *seen, int stat_all, struct load_stats *st)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (d == NULL) {
        bad(st, "opendir", dir, NULL, errno);
        return;
    }
    seen->n = 0;
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
        else if (c >= 0 && seen->n < SEEN_MAX)
            snprintf(seen->name[seen->n++], sizeof seen->name[0], "%.23s", de->d_name);
        errno = 0;
    }
    if (errno != 0)
        bad(st, "readdir", dir, NULL, errno);
    else
        st->done[OP_READDIR]++;
    closedir(d);
    for (int i = 0; stat_all && i < seen->n; i++)
        do_stat(dir, seen->name[i], st);
}

static void do_stat(const char *dir, const char *name, struct load_stats *st)
{
    char p[PATH_MAX + 300];
    struct stat sb;

    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (stat(p, &sb) == 0) {
        st->done[OP_STAT]++;
        if (!S_ISREG(sb.st_mode) || sb.st_size < (off_t)sizeof(struct payload_hdr))
            bad(st, "stat", p, "bad mode or size", 0);
    } else if (errno == ENOENT) {
        st->enoent[OP_STAT]++;
        st->enoent_named += name[0] == 'n';
    } else {
        bad(st, "stat", p, NULL, errno);
    }
}

/* open + read to the end + verify; a named chunk never goes back in time
 * for one process (@last_seq per name). */
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

    snprintf(p, sizeof p, "%s/%s", dir, name);
    fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            st->enoent[OP_OPEN]++;
            st->enoent_named += kind > 0;
        } else if (errno == ESTALE) {
            st->estale[kind > 0]++;
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
    why = check_payload(buf, got, sb.st_size, (uint32_t)kind, id, &seq);
    if (why != NULL) {
        bad(st, "verify", p, why, 0);
        return;
    }
    if (kind > 0) {
        if (seq < last_seq[kind - 1])
            bad(st, "open", p, "a named chunk went back in time", 0);
        last_seq[kind - 1] = seq;
        st->verified_named++;
    } else {
        st->verified_unnamed++;
    }
    st->done[OP_OPEN]++;
}

/* Reader @i, by role i % 3: 0 opens 4 chunks, then lists the segment and
 * stats every entry, and so on; 1 mostly opens and reads, 2 mostly stats; 1 and 2 list
 * the segment every 16 operations to find names to pick from. A pick is one
 * of the names n0..n7 a third of the time, else an entry of the last
 * listing. */
static int run_reader(struct load_shared *sh, int i)
{
    struct load_stats *st = &sh->r[i];
    struct seen *seen = calloc(1, sizeof *seen);
    uint64_t last_seq[LOAD_NAMES] = {0}, rnd = 0x2545f4914f6cdd1du ^ ((uint64_t)(i + 1) << 32);
    char dir[PATH_MAX + 16], name[8];
    int role = i % 3;

    T_CHILD_ASSERT(seen != NULL);
    snprintf(dir, sizeof dir, "%s/%s", tf_m.mnt, LOAD_SEG);
    for (uint64_t it = 0; !__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST); it++) {
        uint64_t r = xorshift(&rnd);
        const char *pick;
        int op;
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
    return 0;
}

START_TEST(test_concurrent_readers_under_writes)
{
    struct load_shared *sh = t_shared_alloc(sizeof *sh);
    pid_t writer, readers[LOAD_READERS];
    int64_t t0 = t_mono_ns();
    struct load_stats sum = {0};
    char p[PATH_MAX + 300];
    int rc;

    ck_assert_ptr_nonnull(sh);
    writer = t_fork();
    ck_assert_int_ge(writer, 0);
    if (writer == 0)
        _exit(run_writer(sh));
    while (!__atomic_load_n(&sh->ready, __ATOMIC_SEQ_CST)) {
        ck_assert_msg(t_ms_since(t0) < 10000, "the writer did not start");
        t_sleep_ms(1);
    }
    ck_assert_int_eq(tf_stat_err(tf_path(p, LOAD_SEG, "n0")), 0);
    for (int i = 0; i < LOAD_READERS; i++) {
        readers[i] = t_fork();
        ck_assert_int_ge(readers[i], 0);
        if (readers[i] == 0)
            _exit(run_reader(sh, i));
    }
    rc = t_wait(writer, LOAD_WRITE_MS + 15000);
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST); /* even when the writer failed */
    ck_assert_msg(rc == 0, "the writer failed (%d)", rc);
    for (int i = 0; i < LOAD_READERS; i++)
        ck_assert_msg(t_wait(readers[i], 15000) == 0, "reader %d failed", i);

    for (int i = 0; i < LOAD_READERS; i++) {
        const struct load_stats *st = &sh->r[i];
        ck_assert_msg(st->unexpected == 0, "reader %d: %" PRIu64 " unexpected errors, first: %s",
                      i, st->unexpected, st->first_error);
        ck_assert_msg(st->enoent_named == 0, "reader %d: a name was not found %" PRIu64 " times",
                      i, st->enoent_named);
        ck_assert_msg(st->done[OP_READDIR] > 0 && st->done[OP_STAT] > 0 && st->done[OP_OPEN] > 0,
                      "reader %d: listings %" PRIu64 ", stats %" PRIu64 ", opens %" PRIu64, i,
                      st->done[OP_READDIR], st->done[OP_STAT], st->done[OP_OPEN]);
        for (int k = 0; k < OP_NKINDS; k++) {
            sum.done[k] += st->done[k];
            sum.enoent[k] += st->enoent[k];
        }
        sum.estale[0] += st->estale[0];
        sum.estale[1] += st->estale[1];
        sum.verified_named += st->verified_named;
        sum.verified_unnamed += st->verified_unnamed;
        sum.listed += st->listed;
    }
    ck_assert_uint_gt(sh->gcs, 0);
    ck_assert_uint_gt(sum.verified_named, 0);
    /* No ESTALE reaches a program. An unnamed chunk the first OPEN finds
     * dead stays dead: the retried walk's LOOKUP answers ENOENT. A name's
     * version replaced, or even collected, between its LOOKUP and its OPEN
     * opens (from the file the LOOKUP read, held for it: fusefs/holds.c). */
    ck_assert_msg(sum.estale[0] + sum.estale[1] == 0,
                  "ESTALE from open(2) of %" PRIu64 " unnamed and %" PRIu64 " named chunks",
                  sum.estale[0], sum.estale[1]);
    ck_assert_uint_gt(sum.verified_unnamed, 0);
    printf("load: %" PRIu64 " commits (%" PRIu64 " named, %" PRIu64 " explicit GCs) in %d ms;"
           " %d readers: %" PRIu64 " listings (%" PRIu64 " entries),"
           " %" PRIu64 " stats (%" PRIu64 " ENOENT),"
           " %" PRIu64 " opens verified (%" PRIu64 " named, %" PRIu64 " unnamed;"
           " %" PRIu64 " ENOENT, ESTALE %" PRIu64 " unnamed + %" PRIu64 " named)\n",
           sh->commits, sh->named_commits, sh->gcs, LOAD_WRITE_MS, LOAD_READERS,
           sum.done[OP_READDIR], sum.listed, sum.done[OP_STAT], sum.enoent[OP_STAT],
           sum.done[OP_OPEN], sum.verified_named, sum.verified_unnamed, sum.enoent[OP_OPEN],
           sum.estale[0], sum.estale[1]);
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

/* Mappings of the one segment the server may keep however many opens it
 * served: up to 8 idle readers (as many as ever ran at once, a peak the
 * warm-up may not have reached), its held files, a notifier's reader, and
 * readers still in use when looked at. A leak of one per open, or per
 * thousand, goes far beyond within 90,000 opens. */
#define SEG_MAPS_BOUND 16

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

/* The server's descriptors and mappings once the asynchronous RELEASEs
 * have been handled: the least seen over a short while. */
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
    after = settled_usage(tf_m.pid);
    printf("no_leak: %d opens in %" PRId64 " ms; server after %d: RSS %ld KiB, %d mappings"
           " (%d of segment files), %d fds, %d threads; after %d: RSS %ld KiB, %d mappings"
           " (%d), %d fds, %d threads\n",
           LEAK_TOTAL, t_ms_since(t0), LEAK_WARMUP, before.rss_kib, before.maps, before.seg_maps,
           before.fds, before.threads, LEAK_TOTAL, after.rss_kib, after.maps, after.seg_maps,
           after.fds, after.threads);
    ck_assert_int_lt(after.rss_kib - before.rss_kib, 8 * 1024);
    ck_assert_int_le(after.seg_maps,
                     before.seg_maps > SEG_MAPS_BOUND ? before.seg_maps : SEG_MAPS_BOUND);
    ck_assert_int_le(after.maps, before.maps + MAPS_PER_THREAD * (after.threads > before.threads
                                                                      ? after.threads - before.threads
                                                                      : 0));
    ck_assert_int_le(after.fds, before.fds);
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
                                test_concurrent_readers_under_writes, tf_setup, 40));
    suite_add_tcase(s, tf_tcase("no_leak_over_100k_opens", test_no_leak_over_100k_opens,
                                setup_no_quarantine, 60));
    return s;
}
