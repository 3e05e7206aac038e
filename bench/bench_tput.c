/*
 * Throughput.
 *
 *   writer   chunks/s and bytes/s of speculo_writer_put() for 64 B, 4 KiB and
 *            1 MiB chunks with 0, 1 and 4 busy-polling readers (on the other
 *            CPU), against a raw append loop that writes the same record
 *            header and payload into a MAP_SHARED tmpfs file of the same size
 *            with the pages populated the same way (MADV_POPULATE_WRITE, 256 KiB
 *            ahead), followed by as many raw readers; 1 MiB chunks also
 *            against plain memcpy bandwidth.
 *   reader   speculo_reader_next() over 64 B chunks against a raw scan of the
 *            same records; a checksum of 1 MiB chunks in place against the same
 *            checksum over a private buffer holding the same bytes.
 *
 * The raw loops know the segment format (lib/format.h): they are what the
 * library does with nothing around it (no checks, no index, no id table).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bc.h"
#include "format.h"
#include "speculo.h"

#define PREFAULT_AHEAD ((uint64_t)256 << 10)
#define MAX_READERS 4
#define MAX_ROUNDS 16

struct ctl {
    _Atomic uint32_t ready, stop;
    _Atomic uint64_t seen[MAX_READERS];
};

static char dir[4096];

static void seg_dir(void)
{
    if (speculo_segment_dir(dir, sizeof dir) < 0)
        bc_die("segment dir");
}

/* Record length as the library lays it out (unnamed). */
static size_t rlen(size_t size)
{
    return (size_t)rec_length(size, 0);
}

/* A segment capacity whose record area holds `bytes` of records: the id
 * table takes 1/16 of the file and the name index 1/256, so that no
 * collection happens during a measurement. */
static size_t seg_cap(size_t bytes)
{
    return bytes + bytes / 8 + ((size_t)8 << 20);
}

/* ---- raw append loop ------------------------------------------------------- */

struct rawfile {
    uint8_t *base;
    size_t size;
    char path[4200];
};

static void raw_create(struct rawfile *f, const char *name, size_t size)
{
    snprintf(f->path, sizeof f->path, "%s/.%s", dir, name);
    int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        bc_die("raw file %s: %s", f->path, strerror(errno));
    f->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (f->base == MAP_FAILED)
        bc_die("mmap raw: %s", strerror(errno));
    f->size = size;
}

static void raw_destroy(struct rawfile *f)
{
    munmap(f->base, f->size);
    unlink(f->path);
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The records start one page in; the library puts its header, index and
 * table there, the raw loop nothing. */
#define RAW_START 4096u

static void raw_append(struct rawfile *f, const void *data, size_t size, long n)
{
    uint64_t off = RAW_START, faulted = 0, len = rlen(size);
    for (long i = 0; i < n; i++) {
        uint64_t need = off + len + REC_ALIGN;
        if (need > faulted) {
            uint64_t from = faulted & ~(uint64_t)(SEG_PAGE - 1);
            uint64_t to = align_up(need + PREFAULT_AHEAD, SEG_PAGE);
            if (to > f->size)
                to = f->size;
            if (madvise(f->base + from, to - from, MADV_POPULATE_WRITE) < 0)
                bc_die("populate: %s", strerror(errno));
            faulted = to;
        }
        struct rec_header *r = (struct rec_header *)(f->base + off);
        int64_t now = wall_ns();
        r->id = (uint64_t)i + 1;
        r->size = size;
        r->committed_ns = now;
        r->expires_ns = 0;
        r->replaces = 0;
        atomic_store_explicit(&r->obsoleted_by, 0, memory_order_relaxed);
        r->name_len = 0;
        r->name_hash = 0;
        memcpy((uint8_t *)r + REC_HEADER_SIZE, data, size);
        /* the file past the tail is the kernel's zeros: nothing to clear */
        atomic_store_explicit(&r->commit, len, memory_order_release);
        off += len;
    }
}

/* A raw reader: follows the commit words until told to stop. */
static void raw_follow(struct ctl *c, int k, const char *path, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bc_die("open raw: %s", strerror(errno));
    const uint8_t *base = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        bc_die("mmap raw reader: %s", strerror(errno));
    uint64_t off = RAW_START, seen = 0, sum = 0;
    atomic_fetch_add(&c->ready, 1);
    while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
        if (off + REC_HEADER_SIZE > size)
            break;
        struct rec_header *r = (struct rec_header *)(base + off);
        uint64_t len = atomic_load_explicit(&r->commit, memory_order_acquire);
        if (!len)
            continue;
        sum += r->id + r->size;
        off += len;
        seen++;
    }
    atomic_store(&c->seen[k], seen + (sum & 0));
}

static void spec_follow(struct ctl *c, int k, const char *seg)
{
    speculo_reader *r;
    int rc = speculo_reader_open(seg, &r);
    if (rc < 0)
        bc_die("reader_open: %s", speculo_strerror(rc));
    uint64_t seen = 0, sum = 0;
    atomic_fetch_add(&c->ready, 1);
    while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
        speculo_chunk ch;
        rc = speculo_reader_next(r, &ch);
        if (rc == -EAGAIN)
            continue;
        if (rc < 0)
            bc_die("next: %s", speculo_strerror(rc));
        sum += ch.id + ch.size;
        seen++;
    }
    atomic_store(&c->seen[k], seen + (sum & 0));
    speculo_reader_close(r);
}

/* ---- one writer run -------------------------------------------------------- */

enum subject { RAW, SPECULO, MEMCPY };

struct wresult {
    double secs;
    uint64_t seen; /* chunks the readers saw, summed */
};

static struct wresult writer_run(enum subject s, size_t size, long n, int readers)
{
    static unsigned serial;
    char name[64];
    snprintf(name, sizeof name, "%s-w%u", bc_tag(), ++serial);
    size_t cap = seg_cap((size_t)n * rlen(size));
    const void *src = NULL;
    uint8_t *buf = malloc(size);
    if (!buf)
        bc_die("out of memory");
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    src = buf;
    struct ctl *c = bc_shared(sizeof *c);
    struct rawfile f = {0};
    speculo_writer *w = NULL;
    uint8_t *dst = NULL;
    if (s == RAW) {
        raw_create(&f, name, cap);
    } else if (s == SPECULO) {
        struct speculo_writer_options o = {.capacity = cap};
        int rc = speculo_writer_open(name, &o, &w);
        if (rc < 0)
            bc_die("writer_open: %s", speculo_strerror(rc));
    } else {
        dst = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (dst == MAP_FAILED)
            bc_die("mmap: %s", strerror(errno));
        memset(dst, 1, cap); /* faulted in before the clock starts */
    }
    pid_t pids[MAX_READERS];
    for (int k = 0; k < readers; k++) {
        fflush(NULL);
        pids[k] = fork();
        if (pids[k] < 0)
            bc_die("fork: %s", strerror(errno));
        if (pids[k] == 0) {
            bc_pin(1);
            if (s == RAW)
                raw_follow(c, k, f.path, cap);
            else
                spec_follow(c, k, name);
            _exit(0);
        }
    }
    bc_pin(0);
    while (atomic_load(&c->ready) != (uint32_t)readers)
        sched_yield();
    int64_t t0 = bc_mono_ns();
    if (s == RAW) {
        raw_append(&f, src, size, n);
    } else if (s == SPECULO) {
        for (long i = 0; i < n; i++) {
            int rc = speculo_writer_put(w, src, size, NULL, NULL);
            if (rc < 0)
                bc_die("put: %s", speculo_strerror(rc));
        }
    } else {
        uint8_t *d = dst;
        for (long i = 0; i < n; i++, d += size)
            memcpy(d, src, size);
    }
    int64_t t1 = bc_mono_ns();
    atomic_store(&c->stop, 1);
    struct wresult res = {(double)(t1 - t0) / 1e9, 0};
    for (int k = 0; k < readers; k++) {
        bc_wait_child(pids[k], "reader");
        res.seen += atomic_load(&c->seen[k]);
    }
    if (s == RAW)
        raw_destroy(&f);
    else if (s == SPECULO) {
        speculo_writer_close(w);
        speculo_segment_remove(name, SPECULO_REMOVE_FORCE);
    } else
        munmap(dst, cap);
    bc_unshared(c, sizeof *c);
    free(buf);
    return res;
}

static void part_writer(const struct bc_opts *o)
{
    static const size_t sizes[] = {64, 4096, 1 << 20};
    static const int nreaders[] = {0, 1, 4};
    size_t budget = o->quick ? (size_t)16 << 20 : (size_t)128 << 20;
    int rounds = o->quick ? 2 : 5;
    bc_head("writer", "chunk|readers|speculo|speculo|raw append loop|speculo / raw|"
                      "readers saw (speculo)");
    double mc_ratio = 0, mc_bw = 0, sp_bw_1m = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t size = sizes[si];
        long n = (long)(budget / rlen(size));
        for (size_t ri = 0; ri < sizeof nreaders / sizeof nreaders[0]; ri++) {
            int rd = nreaders[ri];
            double ratio[MAX_ROUNDS], sp[MAX_ROUNDS], rw[MAX_ROUNDS], mc[MAX_ROUNDS];
            double seen = 0;
            for (int r = 0; r < rounds; r++) {
                /* alternate which goes first */
                struct wresult a, b, m = {0, 0};
                if (r % 2) {
                    a = writer_run(SPECULO, size, n, rd);
                    b = writer_run(RAW, size, n, rd);
                } else {
                    b = writer_run(RAW, size, n, rd);
                    a = writer_run(SPECULO, size, n, rd);
                }
                if (size == (1 << 20) && rd == 0)
                    m = writer_run(MEMCPY, size, n, 0);
                sp[r] = (double)n / a.secs;
                rw[r] = (double)n / b.secs;
                ratio[r] = sp[r] / rw[r];
                mc[r] = m.secs > 0 ? sp[r] / ((double)n / m.secs) : 0;
                if (m.secs > 0)
                    mc_bw = (double)n * (double)size / m.secs;
                seen += rd ? (double)a.seen / rd / (double)n : 0;
            }
            double spm = bc_median(sp, (size_t)rounds), rwm = bc_median(rw, (size_t)rounds);
            double rat = bc_median(ratio, (size_t)rounds);
            char a1[32], a2[32], b1[32], b2[32];
            bc_row("writer", "%zu B|%d|%s|%s|%s, %s|%.2f|%s", size, rd,
                   bc_fmt_rate(a1, sizeof a1, spm, "chunks/s"),
                   bc_fmt_rate(a2, sizeof a2, spm * (double)size, "B/s"),
                   bc_fmt_rate(b1, sizeof b1, rwm, "chunks/s"),
                   bc_fmt_rate(b2, sizeof b2, rwm * (double)size, "B/s"), rat,
                   rd ? (snprintf(a1, sizeof a1, "%.0f %%", 100 * seen / rounds), a1) : "-");
            if (size == 64) {
                char id[8], what[96];
                snprintf(id, sizeof id, "2%c", "abc"[ri]);
                snprintf(what, sizeof what, "writer 64 B commits/s, %d busy reader%s, vs raw "
                                            "append loop", rd, rd == 1 ? "" : "s");
                /* one busy reader: a commit then costs the record's own
                 * line transfers and little more, 0.9; 0.5 otherwise */
                bc_target(id, what, bc_fmt_rate(a1, sizeof a1, spm, "/s"),
                          bc_fmt_rate(b1, sizeof b1, rwm, "/s"), rat, true, rd == 1 ? 0.9 : 0.5);
            }
            if (size == (1 << 20) && rd == 0) {
                mc_ratio = bc_median(mc, (size_t)rounds);
                sp_bw_1m = spm * (double)size;
            }
        }
    }
    char a[32], b[32];
    bc_target("2d", "writer 1 MiB chunks, bytes/s vs memcpy bandwidth",
              bc_fmt_rate(a, sizeof a, sp_bw_1m, "B/s"), bc_fmt_rate(b, sizeof b, mc_bw, "B/s"),
              mc_ratio, true, 0.8);
}

/* ---- reader throughput ------------------------------------------------------ */

static void fill_segment(const char *name, size_t size, long n, uint8_t *copy)
{
    struct speculo_writer_options o = {.capacity = seg_cap((size_t)n * rlen(size))};
    speculo_writer *w;
    int rc = speculo_writer_open(name, &o, &w);
    if (rc < 0)
        bc_die("writer_open: %s", speculo_strerror(rc));
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (long i = 0; i < n; i++) {
        void *p;
        if ((rc = speculo_writer_alloc(w, size, &p)) < 0)
            bc_die("alloc: %s", speculo_strerror(rc));
        uint64_t *q = p;
        for (size_t j = 0; j < size / 8; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            q[j] = x;
        }
        if (copy)
            memcpy(copy + (size_t)i * size, p, size);
        if ((rc = speculo_writer_commit(w, NULL, NULL)) < 0)
            bc_die("commit: %s", speculo_strerror(rc));
    }
    speculo_writer_close(w);
}

/* Fletcher-style checksum over 64-bit words: two dependent sums, cheap
 * enough that memory, not arithmetic, sets the pace. */
static uint64_t checksum(const void *p, size_t n)
{
    const uint64_t *q = p;
    uint64_t a = 0, b = 0;
    for (size_t i = 0; i < n / 8; i++) {
        a += q[i];
        b += a;
    }
    return a ^ b;
}

static double scan_speculo(speculo_reader *r, long n, bool sum_data, uint64_t *out)
{
    int rc = speculo_reader_seek(r, 0);
    if (rc < 0)
        bc_die("seek: %s", speculo_strerror(rc));
    uint64_t s = 0;
    long got = 0;
    int64_t t0 = bc_mono_ns();
    speculo_chunk c;
    while ((rc = speculo_reader_next(r, &c)) == 0) {
        if (sum_data)
            s += checksum(c.data, c.size);
        else
            s += c.id + c.size + (uintptr_t)c.data;
        got++;
    }
    int64_t t1 = bc_mono_ns();
    if (rc != -EAGAIN || got != n)
        bc_die("scan: %s, %ld of %ld", speculo_strerror(rc), got, n);
    *out = s;
    return (double)(t1 - t0) / 1e9;
}

/* The same walk with nothing but the format: commit word, header, next. */
static double scan_raw(const uint8_t *base, size_t size, long n, uint64_t *out)
{
    const struct seg_header *h = (const struct seg_header *)base;
    uint64_t off = h->records_off, s = 0;
    long got = 0;
    int64_t t0 = bc_mono_ns();
    for (;;) {
        if (off + REC_HEADER_SIZE > size)
            break;
        struct rec_header *r = (struct rec_header *)(base + off);
        uint64_t len = atomic_load_explicit(&r->commit, memory_order_acquire);
        if (!len)
            break;
        s += r->id + r->size + (uintptr_t)((const uint8_t *)r + REC_HEADER_SIZE);
        off += len;
        got++;
    }
    int64_t t1 = bc_mono_ns();
    if (got != n)
        bc_die("raw scan: %ld of %ld", got, n);
    *out = s;
    return (double)(t1 - t0) / 1e9;
}

static double scan_private(const uint8_t *buf, size_t size, long n, uint64_t *out)
{
    uint64_t s = 0;
    int64_t t0 = bc_mono_ns();
    for (long i = 0; i < n; i++)
        s += checksum(buf + (size_t)i * size, size);
    int64_t t1 = bc_mono_ns();
    *out = s;
    return (double)(t1 - t0) / 1e9;
}

static const uint8_t *map_segment_file(const char *name, size_t *size)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        bc_die("open %s: %s", path, strerror(errno));
    const uint8_t *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        bc_die("mmap: %s", strerror(errno));
    *size = (size_t)st.st_size;
    return p;
}

static void part_reader(const struct bc_opts *o)
{
    int rounds = o->quick ? 3 : 7;
    bc_pin(0);
    bc_head("reader", "what|speculo|baseline|baseline is|speculo / baseline");
    /* next() over 64 B chunks */
    {
        long n = o->quick ? 250000 : 1000000;
        char name[64];
        snprintf(name, sizeof name, "%s-r64", bc_tag());
        fill_segment(name, 64, n, NULL);
        speculo_reader *r;
        int rc = speculo_reader_open(name, &r);
        if (rc < 0)
            bc_die("reader_open: %s", speculo_strerror(rc));
        size_t msize;
        const uint8_t *m = map_segment_file(name, &msize);
        uint64_t s1, s2;
        scan_speculo(r, n, false, &s1); /* warm both mappings */
        scan_raw(m, msize, n, &s2);
        double ratio[MAX_ROUNDS], sp[MAX_ROUNDS], rw[MAX_ROUNDS];
        for (int i = 0; i < rounds; i++) {
            double a, b;
            if (i % 2) {
                a = scan_speculo(r, n, false, &s1);
                b = scan_raw(m, msize, n, &s2);
            } else {
                b = scan_raw(m, msize, n, &s2);
                a = scan_speculo(r, n, false, &s1);
            }
            sp[i] = (double)n / a;
            rw[i] = (double)n / b;
            ratio[i] = sp[i] / rw[i];
        }
        double rat = bc_median(ratio, (size_t)rounds);
        char a[32], b[32];
        bc_fmt_rate(a, sizeof a, bc_median(sp, (size_t)rounds), "chunks/s");
        bc_fmt_rate(b, sizeof b, bc_median(rw, (size_t)rounds), "chunks/s");
        bc_row("reader", "next() over %ld chunks of 64 B|%s|%s|raw scan of the same records|%.2f",
               n, a, b, rat);
        bc_target("3a", "reader next() over 64 B chunks vs raw scan of the same records", a, b,
                  rat, true, 0.5);
        speculo_reader_close(r);
        munmap((void *)m, msize);
        speculo_segment_remove(name, SPECULO_REMOVE_FORCE);
    }
    /* checksum of 1 MiB chunks in place */
    {
        size_t size = 1 << 20;
        long n = o->quick ? 64 : 256;
        char name[64];
        snprintf(name, sizeof name, "%s-r1m", bc_tag());
        uint8_t *copy = mmap(NULL, (size_t)n * size, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (copy == MAP_FAILED)
            bc_die("mmap: %s", strerror(errno));
        fill_segment(name, size, n, copy);
        speculo_reader *r;
        int rc = speculo_reader_open(name, &r);
        if (rc < 0)
            bc_die("reader_open: %s", speculo_strerror(rc));
        uint64_t s1, s2;
        scan_speculo(r, n, true, &s1);
        scan_private(copy, size, n, &s2);
        if (s1 != s2)
            bc_die("checksums differ");
        double ratio[MAX_ROUNDS], sp[MAX_ROUNDS], pv[MAX_ROUNDS];
        for (int i = 0; i < rounds; i++) {
            double a, b;
            if (i % 2) {
                a = scan_speculo(r, n, true, &s1);
                b = scan_private(copy, size, n, &s2);
            } else {
                b = scan_private(copy, size, n, &s2);
                a = scan_speculo(r, n, true, &s1);
            }
            sp[i] = (double)n * (double)size / a;
            pv[i] = (double)n * (double)size / b;
            ratio[i] = sp[i] / pv[i];
        }
        double rat = bc_median(ratio, (size_t)rounds);
        char a[32], b[32];
        bc_fmt_rate(a, sizeof a, bc_median(sp, (size_t)rounds), "B/s");
        bc_fmt_rate(b, sizeof b, bc_median(pv, (size_t)rounds), "B/s");
        bc_row("reader", "checksum of %ld chunks of 1 MiB in place|%s|%s|same checksum, "
                         "private buffer|%.2f", n, a, b, rat);
        bc_target("3b", "reader checksum of 1 MiB chunks in place vs private buffer", a, b, rat,
                  true, 0.9);
        speculo_reader_close(r);
        munmap(copy, (size_t)n * size);
        speculo_segment_remove(name, SPECULO_REMOVE_FORCE);
    }
}

int main(int argc, char **argv)
{
    struct bc_opts o;
    bc_parse(argc, argv, &o);
    seg_dir();
    if (bc_want(&o, "writer"))
        part_writer(&o);
    if (bc_want(&o, "reader"))
        part_reader(&o);
    return 0;
}
