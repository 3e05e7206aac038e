/*
 * Reference costs of the machine, measured in the same run: what bounds the
 * figures of the other benchmarks (see docs/PERFORMANCE.md, "What limits").
 *
 *   clock_gettime(CLOCK_REALTIME), read once per commit
 *   populating a new tmpfs page (MADV_POPULATE_WRITE), as the writer does for
 *   every page it appends to, and an anonymous page, for comparison
 *   a dependent random read in regions of 4 MiB .. 256 MiB (TLB and cache
 *   misses: what a lookup among many names costs)
 *   memcpy bandwidth into memory already faulted in
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bc.h"
#include "speculo.h"

#define MiB ((size_t)1 << 20)

static double clock_cost(void)
{
    struct timespec ts;
    long n = 2000000;
    int64_t t0 = bc_mono_ns();
    for (long i = 0; i < n; i++)
        clock_gettime(CLOCK_REALTIME, &ts);
    return (double)(bc_mono_ns() - t0) / (double)n;
}

static double populate_cost(bool tmpfs, size_t size)
{
    char path[4200], dir[4096];
    void *p;
    if (tmpfs) {
        if (speculo_segment_dir(dir, sizeof dir) < 0)
            bc_die("segment dir");
        snprintf(path, sizeof path, "%s/.%s-pop", dir, bc_tag());
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
            bc_die("%s: %s", path, strerror(errno));
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
    } else {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    if (p == MAP_FAILED)
        bc_die("mmap: %s", strerror(errno));
    int64_t t0 = bc_mono_ns();
    for (size_t off = 0; off < size; off += 256 << 10) /* in steps, as the writer does */
        if (madvise((char *)p + off, 256 << 10, MADV_POPULATE_WRITE) < 0)
            bc_die("populate: %s", strerror(errno));
    double ns = (double)(bc_mono_ns() - t0) / (double)(size / 4096);
    munmap(p, size);
    if (tmpfs)
        unlink(path);
    return ns;
}

static double chase(size_t size)
{
    size_t n = size / 64;
    uint64_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    size_t *perm = malloc(n * sizeof *perm);
    if (p == MAP_FAILED || !perm)
        bc_die("out of memory");
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    uint64_t x = 88172645463325252u;
    for (size_t i = n - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t j = x % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        p[perm[i] * 8] = perm[(i + 1) % n] * 8;
    free(perm);
    volatile uint64_t *q = p; /* every read is made, in order */
    uint64_t k = 0;
    long m = 1000000;
    for (long i = 0; i < m / 10; i++)
        k = q[k];
    int64_t t0 = bc_mono_ns();
    for (long i = 0; i < m; i++)
        k = q[k];
    double ns = (double)(bc_mono_ns() - t0) / (double)m;
    munmap(p, size);
    return k == UINT64_MAX ? 0 : ns;
}

static double memcpy_bw(void)
{
    size_t size = 256 * MiB, chunk = MiB;
    uint8_t *src = malloc(chunk), *dst = malloc(size);
    if (!src || !dst)
        bc_die("out of memory");
    memset(src, 3, chunk);
    memset(dst, 1, size);
    double best = 0;
    for (int r = 0; r < 3; r++) {
        int64_t t0 = bc_mono_ns();
        for (size_t off = 0; off < size; off += chunk)
            memcpy(dst + off, src, chunk);
        double bw = (double)size / ((double)(bc_mono_ns() - t0) / 1e9);
        if (bw > best)
            best = bw;
    }
    free(src);
    free(dst);
    return best;
}

int main(int argc, char **argv)
{
    struct bc_opts o;
    bc_parse(argc, argv, &o);
    bc_pin(0);
    char a[32];
    bc_head("ref", "what|cost");
    bc_row("ref", "clock_gettime(CLOCK_REALTIME) (vDSO)|%s", bc_fmt_ns(a, sizeof a, clock_cost()));
    bc_row("ref", "populate one new tmpfs page (MADV_POPULATE_WRITE)|%s",
           bc_fmt_ns(a, sizeof a, populate_cost(true, (o.quick ? 32 : 128) * MiB)));
    bc_row("ref", "populate one new anonymous page|%s",
           bc_fmt_ns(a, sizeof a, populate_cost(false, (o.quick ? 32 : 128) * MiB)));
    static const size_t sizes[] = {4, 16, 64, 256};
    for (int i = 0; i < 4; i++)
        bc_row("ref", "dependent random read, %zu MiB region|%s", sizes[i],
               bc_fmt_ns(a, sizeof a, chase(sizes[i] * MiB)));
    bc_row("ref", "memcpy bandwidth, 1 MiB blocks into 256 MiB faulted in|%s",
           bc_fmt_rate(a, sizeof a, memcpy_bw(), "B/s"));
    return 0;
}
