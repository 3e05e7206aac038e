/*
 * Segment file helpers; see t_seg.h.
 */
#include "t_seg.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_util.h"

int t_seg_map(const char *seg, struct t_seg_map *m)
{
    char path[PATH_MAX];
    int rc = t_path(path, sizeof(path), seg);
    if (rc < 0)
        return rc;
    return t_seg_map_path(path, m);
}

int t_seg_map_path(const char *path, struct t_seg_map *m)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size <= 0) {
        int e = st.st_size <= 0 ? EINVAL : errno;
        close(fd);
        return -e;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return -e;
    m->p = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void t_seg_unmap(struct t_seg_map *m)
{
    if (m->p)
        munmap(m->p, m->size);
    m->p = NULL;
    m->size = 0;
}

int t_seg_records(const struct t_seg_map *m, uint64_t *offs, int max)
{
    const struct seg_header *h = t_seg_hdr(m);
    uint64_t off = h->records_off;
    int n = 0;
    while (n < max && off + REC_HEADER_SIZE <= m->size) {
        const struct rec_header *r = t_seg_rec(m, off);
        uint64_t len = atomic_load_explicit(&r->commit, memory_order_acquire);
        if (len == 0 || len % REC_ALIGN || off + len > m->size)
            break;
        offs[n++] = off;
        off += len;
    }
    return n;
}

uint64_t t_seg_same_home(const struct t_seg_map *m, const char *name, char *out, size_t size)
{
    const struct seg_header *h = t_seg_hdr(m);
    uint64_t mask = h->index_slots - 1;
    uint64_t home = speculo__name_hash(h->hash_seed, name, strlen(name)) & mask;
    for (unsigned i = 0;; i++) {
        snprintf(out, size, "n%u", i);
        if (strcmp(out, name) != 0 &&
            (speculo__name_hash(h->hash_seed, out, strlen(out)) & mask) == home)
            return home;
    }
}

int t_seg_pwrite(const char *seg, uint64_t off, const void *buf, size_t len)
{
    char path[PATH_MAX];
    int rc = t_path(path, sizeof(path), seg);
    if (rc < 0)
        return rc;
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    ssize_t n = pwrite(fd, buf, len, (off_t)off);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    return (size_t)n == len ? 0 : -EIO;
}

int t_seg_truncate(const char *seg, uint64_t size)
{
    char path[PATH_MAX];
    int rc = t_path(path, sizeof(path), seg);
    if (rc < 0)
        return rc;
    if (truncate(path, (off_t)size) < 0)
        return -errno;
    return 0;
}

int64_t t_seg_file_size(const char *seg)
{
    char path[PATH_MAX];
    int rc = t_path(path, sizeof(path), seg);
    if (rc < 0)
        return rc;
    struct stat st;
    if (lstat(path, &st) < 0)
        return -errno;
    return (int64_t)st.st_size;
}

int t_seg_await_waiters(const struct t_seg_map *m, uint32_t want, int timeout_ms)
{
    const struct seg_header *h = t_seg_hdr(m);
    int64_t start = t_mono_ns();
    /* observes: readers registering in speculo_reader_wait() or leaving it */
    while (atomic_load_explicit(&h->waiters, memory_order_acquire) != want) {
        if (t_ms_since(start) >= timeout_ms)
            return -ETIMEDOUT;
        t_sleep_ms(1);
    }
    return 0;
}
