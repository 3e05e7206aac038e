/*
 * The namespace: where segments live, which names are valid, and opening
 * segment files safely. Files are opened relative to a checked directory
 * with O_NOFOLLOW, so neither a symlinked directory nor a symlinked
 * segment can send us elsewhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* [A-Za-z0-9_.-] as a bitmap of the 128 ASCII codes: a name is checked up
 * to three times per speculo_reader_get(), so this is on the lookup path.
 * Bits 45 '-', 46 '.', 48-57 '0'-'9'; then 65-90 'A'-'Z', 95 '_', 97-122. */
static bool name_char_ok(char c)
{
    static const uint64_t ok[2] = {UINT64_C(0x03ff600000000000), UINT64_C(0x07fffffe87fffffe)};
    unsigned char u = (unsigned char)c;
    return u < 128 && ((ok[u >> 6] >> (u & 63)) & 1);
}

/* Checks all the bytes (so "a/b" is -EINVAL whatever its length), then the
 * length, as a path lookup would. */
static int check_name(const char *name, size_t max)
{
    if (!name || !*name)
        return -EINVAL;
    size_t n = 0;
    for (; name[n]; n++) {
        if (!name_char_ok(name[n]))
            return -EINVAL;
    }
    return n > max ? -ENAMETOOLONG : 0;
}

int speculo_segment_name_check(const char *segment)
{
    int rc = check_name(segment, SPECULO_SEGMENT_NAME_MAX);
    if (rc == 0 && segment[0] == '.')
        return -EINVAL;
    return rc;
}

int speculo_chunk_name_check(const char *name)
{
    int rc = check_name(name, SPECULO_CHUNK_NAME_MAX);
    if (rc == 0 && !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
                     name[0] == '_'))
        return -EINVAL;
    return rc;
}

int ns_dir_path(char *buf, size_t size, bool *is_default)
{
    const char *env = getenv("SPECULO_DIR");
    int n;
    *is_default = !(env && *env);
    if (!*is_default)
        n = snprintf(buf, size, "%s", env);
    else
        n = snprintf(buf, size, "/dev/shm/speculo-%u", (unsigned)geteuid());
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    return n;
}

int speculo_segment_dir(char *buf, size_t size)
{
    bool is_default;
    if (!buf)
        return -EINVAL;
    return ns_dir_path(buf, size, &is_default);
}

/*
 * Open the segment directory and check that it is safe: a real directory
 * (not a symlink), writable by nobody but its owner. A writer must own it
 * and creates it (0700) when missing. The default directory is named after
 * the caller's uid, so there the caller must own it even to read: anyone
 * could have made it first.
 */
int ns_open_dir(bool writer, int *dirfd)
{
    char path[PATH_BUF];
    bool is_default;
    int rc = ns_dir_path(path, sizeof path, &is_default);
    if (rc < 0)
        return rc;
    if (writer && mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        struct stat lst;
        if ((errno == ELOOP || errno == ENOTDIR) && lstat(path, &lst) == 0)
            return -EPERM;
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if ((st.st_mode & 022) || ((writer || is_default) && st.st_uid != geteuid())) {
        close(fd);
        return -EPERM;
    }
    *dirfd = fd;
    return 0;
}

/*
 * Open a segment file in `dirfd`. O_NONBLOCK so that a FIFO planted under
 * a segment's name cannot block us; it is then refused as not regular.
 * A writer only writes files it owns; nobody trusts a file that others can
 * write.
 */
int ns_open_segment(int dirfd, const char *segment, bool writable, int *fd, struct stat *st)
{
    int f = openat(dirfd, segment,
                   (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) {
        if (errno == ELOOP || errno == EISDIR || errno == ENXIO)
            return -EPERM;
        return -errno;
    }
    int rc = 0;
    if (fstat(f, st) < 0)
        rc = -errno;
    else if (!S_ISREG(st->st_mode) || (st->st_mode & 022) || (writable && st->st_uid != geteuid()))
        rc = -EPERM;
    if (rc < 0) {
        close(f);
        return rc;
    }
    *fd = f;
    return 0;
}

/* Map a file of at least a header's size, whatever it holds. */
static int map_fd(int fd, const struct stat *st, bool writable, struct seg_map *m)
{
    if (st->st_size < (off_t)SEG_HEADER_SIZE)
        return -EBADMSG;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *p = mmap(NULL, (size_t)st->st_size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    m->base = p;
    m->size = (uint64_t)st->st_size;
    m->dev = st->st_dev;
    m->ino = st->st_ino;
    m->uid = st->st_uid;
    m->mode = st->st_mode & 07777;
    return 0;
}

/* Map a file that the writer is making: its header is not written yet. */
int ns_map_fd_raw(int fd, const struct stat *st, struct seg_map *m)
{
    return map_fd(fd, st, true, m);
}

/* Map a segment file and check its header. */
int ns_map_fd(int fd, const struct stat *st, bool writable, struct seg_map *m)
{
    int rc = map_fd(fd, st, writable, m);
    if (rc == 0 && (rc = seg_check_layout(m->base, m->size, &m->lay)) < 0)
        ns_unmap(m);
    return rc;
}

/* Open, check and map a segment, leaving no descriptor open. */
int ns_map_segment(const char *segment, bool writable, struct seg_map *m)
{
    int dirfd, fd;
    struct stat st;
    int rc = ns_open_dir(false, &dirfd);
    if (rc < 0)
        return rc;
    rc = ns_open_segment(dirfd, segment, writable, &fd, &st);
    close(dirfd);
    if (rc < 0)
        return rc;
    rc = ns_map_fd(fd, &st, writable, m);
    close(fd);
    return rc;
}

void ns_unmap(struct seg_map *m)
{
    if (m->base)
        munmap(m->base, m->size);
    m->base = NULL;
    m->size = 0;
}

/* 1 when the name in `dirfd` still refers to the mapped file, 0 when it
 * refers to another one, -ENOENT when it is gone. */
int ns_same_file(int dirfd, const char *segment, const struct seg_map *m)
{
    struct stat st;
    if (fstatat(dirfd, segment, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return st.st_dev == m->dev && st.st_ino == m->ino;
}
