/*
 * Whole-segment operations: the text description (speculofs' .info and
 * `speculo info` share it), removal, and what dead writers left.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* An snprintf that keeps counting past the end of the buffer, so that the
 * caller learns the full length. */
struct text {
    char *buf;
    size_t size, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->len < t->size ? t->size - t->len : 0;
    int n = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        t->len += (size_t)n;
}

/* "2026-11-26T07:12:03.123456789Z", or "-" for 0. */
static void put_time(struct text *t, const char *key, int64_t ns)
{
    if (ns <= 0) {
        put(t, "%s: -\n", key);
        return;
    }
    time_t s = (time_t)(ns / 1000000000);
    struct tm tm;
    char day[32];
    gmtime_r(&s, &tm);
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    put(t, "%s: %s.%09ldZ\n", key, day, (long)(ns % 1000000000));
}

static void describe_ok(struct text *t, const struct speculo_segment_info *s)
{
    put(t, "status: ok\n");
    put(t, "format_version: %u\n", s->format_version);
    put(t, "generation: %llu\n", (unsigned long long)s->generation);
    put(t, "capacity: %llu\n", (unsigned long long)s->capacity);
    put(t, "data_capacity: %llu\n", (unsigned long long)s->data_capacity);
    put(t, "bytes_used: %llu\n", (unsigned long long)s->bytes_used);
    put(t, "dead_bytes: %llu\n", (unsigned long long)s->dead_bytes);
    put(t, "live_chunks: %llu\n", (unsigned long long)s->live_chunks);
    put(t, "expired_chunks: %llu\n", (unsigned long long)s->expired_chunks);
    put(t, "obsolete_chunks: %llu\n", (unsigned long long)s->obsolete_chunks);
    put(t, "named_chunks: %llu\n", (unsigned long long)s->named_chunks);
    put(t, "first_id: %llu\n", (unsigned long long)s->first_id);
    put(t, "last_id: %llu\n", (unsigned long long)s->last_id);
    put(t, "writer_pid: %lld\n", (long long)s->writer_pid);
    put(t, "writer_alive: %s\n", s->writer_alive ? "yes" : "no");
    put_time(t, "created", s->created_ns);
    put_time(t, "last_commit", s->last_commit_ns);
}

/* For a file that cannot be read as a segment: say what is wrong, and what
 * the raw header claims when there is one to read. */
static void describe_error(struct text *t, const struct ns_dir *d, const char *segment, int err)
{
    put(t, "status: error\n");
    put(t, "error: %s\n", speculo_strerror(err));
    int dirfd, fd;
    struct stat st;
    if (speculo__dir_open(d, false, &dirfd) < 0)
        return;
    fd = openat(dirfd, segment, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    close(dirfd);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        put(t, "file_size: %lld\n", (long long)st.st_size);
        struct seg_header h;
        if (err == -EPROTO && pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h)
            put(t, "format_version: %u (this library reads %d)\n", h.version,
                SPECULO_FORMAT_VERSION);
    }
    close(fd);
}

int speculo_segment_describe_at(const char *dir, const char *segment, char *buf, size_t size)
{
    int rc = speculo_segment_name_check(segment);
    if (rc < 0)
        return rc;
    if (!buf && size)
        return -EINVAL;
    struct ns_dir d;
    if ((rc = speculo__dir_get(dir, &d)) < 0)
        return rc;
    int dirfd;
    if ((rc = speculo__dir_open(&d, false, &dirfd)) < 0) {
        speculo__dir_put(&d);
        return rc;
    }
    close(dirfd);
    struct text t = {buf, size, 0};
    if (size)
        buf[0] = '\0';
    put(&t, "segment: %s\n", segment);
    speculo_reader *r;
    struct speculo_segment_info s;
    rc = speculo_reader_open_at(d.path, segment, 0, &r);
    if (rc == 0) {
        rc = speculo_reader_info(r, &s);
        speculo_reader_close(r);
    }
    if (rc == 0)
        describe_ok(&t, &s);
    else if (rc != -ENOENT)
        describe_error(&t, &d, segment, rc);
    speculo__dir_put(&d);
    if (rc == -ENOENT)
        return rc;
    if (t.len > INT32_MAX)
        return -EOVERFLOW;
    return (int)t.len;
}

int speculo_segment_describe(const char *segment, char *buf, size_t size)
{
    return speculo_segment_describe_at(NULL, segment, buf, size);
}

/*
 * Remove a segment: unless forced, holding its writer role (its lock), so
 * that no writer can start on the file while it goes. Mark the file
 * removed (readers' next call says -ENOENT, waiting readers wake), unlink
 * it, and remove what dead writers of it left. Readers keep their mapping:
 * the data lives on until the last of them unmaps it.
 */
/* Remove the segment in @dirfd; see speculo_segment_remove(). */
static int remove_at(int dirfd, const char *segment, bool force)
{
    int fd = -1;
    struct stat st;
    int rc = speculo__ns_open_segment(dirfd, segment, true, &fd, &st);
    if (rc == -EACCES || rc == -EPERM) {
        /* not ours to write, or not a plain segment file: a live writer
         * still shows in the lock, which reading suffices to see */
        rc = speculo__role_held_at(dirfd, segment);
        rc = rc == 1 && !force ? -EBUSY : rc < 0 ? rc : 0;
    } else if (rc == 0) {
        rc = speculo__role_lock(fd);
        if (rc == -EBUSY && force)
            rc = 0;
    }
    if (rc == 0 && fd >= 0) {
        struct seg_map m;
        if (speculo__ns_map_fd(fd, &st, true, &m) == 0) {
            /* publishes: the segment is gone, to readers of this file */
            atomic_store_explicit(&map_header(&m)->superseded, SUPERSEDED_REMOVED,
                                  memory_order_release);
            speculo__wake_waiters(map_header(&m));
            speculo__ns_unmap(&m);
        }
    }
    if (rc == 0 && unlinkat(dirfd, segment, 0) < 0)
        rc = -errno;
    if (rc == 0)
        speculo__temporaries_remove(dirfd, segment, false, NULL, NULL);
    if (fd >= 0)
        close(fd); /* releases the role, on a file that has no name any more */
    return rc;
}

int speculo_segment_remove_at(const char *dir, const char *segment, unsigned flags)
{
    int rc = speculo_segment_name_check(segment);
    if (rc < 0)
        return rc;
    if (flags & ~SPECULO_REMOVE_FORCE)
        return -EINVAL;
    struct ns_dir d;
    if ((rc = speculo__dir_get(dir, &d)) < 0)
        return rc;
    int dirfd;
    if ((rc = speculo__dir_open(&d, false, &dirfd)) == 0) {
        rc = remove_at(dirfd, segment, flags & SPECULO_REMOVE_FORCE);
        close(dirfd);
    }
    speculo__dir_put(&d);
    return rc;
}

int speculo_segment_remove(const char *segment, unsigned flags)
{
    return speculo_segment_remove_at(NULL, segment, flags);
}

int speculo_leftovers_remove(const char *dir, const char *segment, unsigned flags,
                             speculo_leftover_fn fn, void *arg)
{
    int rc = segment ? speculo_segment_name_check(segment) : 0;
    if (rc < 0)
        return rc;
    if (flags & ~SPECULO_DRY_RUN)
        return -EINVAL;
    struct ns_dir d;
    if ((rc = speculo__dir_get(dir, &d)) < 0)
        return rc;
    int dirfd;
    if ((rc = speculo__dir_open(&d, false, &dirfd)) == 0) {
        rc = speculo__temporaries_remove(dirfd, segment, flags & SPECULO_DRY_RUN, fn, arg);
        close(dirfd);
    }
    speculo__dir_put(&d);
    return rc;
}
