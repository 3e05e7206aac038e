/*
 * The namespace: where segments live, and opening segment files safely. Files are opened relative to a checked directory
 * with O_NOFOLLOW, so neither a symlinked directory nor a symlinked
 * segment can send us elsewhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* The default directory, or $SPECULO_DIR: read when a handle is opened,
 * never again during its life. */
static int env_dir_path(char *buf, size_t size, bool *is_default)
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
    return env_dir_path(buf, size, &is_default);
}

int speculo__dir_get(const char *dir, struct ns_dir *d)
{
    char path[PATH_BUF];
    d->is_default = false;
    if (dir && *dir) {
        if (strlen(dir) >= sizeof path)
            return -ENAMETOOLONG;
        d->path = strdup(dir);
    } else {
        int rc = env_dir_path(path, sizeof path, &d->is_default);
        if (rc < 0)
            return rc;
        d->path = strdup(path);
    }
    return d->path ? 0 : -ENOMEM;
}

void speculo__dir_put(struct ns_dir *d)
{
    free(d->path);
    d->path = NULL;
}

/* Strip trailing slashes and "/." from @path: "d/", "d/." and "d/./"
 * name d itself, and must be checked as d (open() with O_NOFOLLOW follows
 * a symlink spelled "link/"). */
static void strip_dots(char *path)
{
    size_t n = strlen(path);
    for (;;) {
        while (n > 1 && path[n - 1] == '/')
            n--;
        if (n > 2 && path[n - 1] == '.' && path[n - 2] == '/')
            n -= 2;
        else
            break;
    }
    path[n] = '\0';
}

/*
 * Spell @path so that its last component is the directory's own name, or
 * say that it is reached through a symbolic link (-EPERM). "x/.." names
 * the parent of x, which is x's parent directory only if x is no symlink:
 * so "a/x/.." is checked as "a" when x is a real directory, and refused
 * when x is a symlink. Leading ".." of a relative path stay as they are
 * (".." is never a symlink).
 */
static int dir_spelling(char *path)
{
    for (;;) {
        strip_dots(path);
        char *slash = strrchr(path, '/');
        const char *last = slash ? slash + 1 : path;
        if (strcmp(last, "..") != 0 || last == path)
            return 0;
        if (slash == path) { /* "/..": the root */
            path[1] = '\0';
            return 0;
        }
        *slash = '\0';
        strip_dots(path);
        char *pslash = strrchr(path, '/');
        const char *pred = pslash ? pslash + 1 : path;
        if (strcmp(pred, "..") == 0 || strcmp(pred, ".") == 0) {
            *slash = '/'; /* "../..": nothing to fold */
            return 0;
        }
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
            return -EPERM;
        if (pslash == path)
            path[1] = '\0';
        else if (pslash)
            *pslash = '\0';
        else
            strcpy(path, ".");
    }
}

__attribute__((format(printf, 3, 4))) static int why_not(char *why, size_t size, const char *fmt,
                                                         ...)
{
    if (why && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, size, fmt, ap);
        va_end(ap);
    }
    return -EPERM;
}

/*
 * Open the segment directory @path and check that it is safe: a real
 * directory (its last component no symlink, however spelled), writable by
 * nobody but its owner. A writer must own it and creates it (0700) when
 * missing. The default directory is named after the caller's uid, so there
 * the caller must own it even to read: anyone could have made it first.
 * On -EPERM, @why (if any) says what is wrong with it.
 */
static int open_dir_at(const char *path, bool is_default, bool writer, bool create, int *dirfd,
                       char *why, size_t why_size)
{
    char spelled[PATH_BUF];
    if (snprintf(spelled, sizeof spelled, "%s", path) >= (int)sizeof spelled)
        return -ENAMETOOLONG;
    if (dir_spelling(spelled) < 0)
        return why_not(why, why_size, "it is reached through a symbolic link");
    if (create && mkdir(spelled, 0700) < 0 && errno != EEXIST)
        return -errno;
    int fd = open(spelled, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        struct stat lst;
        if ((errno == ELOOP || errno == ENOTDIR) && lstat(spelled, &lst) == 0)
            return why_not(why, why_size, "%s",
                           S_ISLNK(lst.st_mode) ? "it is a symbolic link" : "not a directory");
        return -errno;
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (st.st_mode & 022))
        rc = why_not(why, why_size, "%s",
                     (st.st_mode & 002) ? "writable by others (chmod go-w it)"
                                        : "writable by its group (chmod g-w it)");
    else if (rc == 0 && is_default && st.st_uid != geteuid())
        rc = why_not(why, why_size, "not owned by you");
    else if (rc == 0 && writer && st.st_uid != geteuid())
        rc = why_not(why, why_size,
                     "not owned by you (a writer writes only in a directory it owns)");
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *dirfd = fd;
    return 0;
}

int speculo__dir_open(const struct ns_dir *d, bool writer, int *dirfd)
{
    return open_dir_at(d->path, d->is_default, writer, writer, dirfd, NULL, 0);
}

int speculo_dir_check(const char *dir, unsigned flags, char *why, size_t why_size)
{
    if (flags & ~SPECULO_DIR_WRITER)
        return -EINVAL;
    if (why && why_size)
        why[0] = '\0';
    struct ns_dir d;
    int rc = speculo__dir_get(dir, &d);
    if (rc < 0)
        return rc;
    int fd;
    rc = open_dir_at(d.path, d.is_default, flags & SPECULO_DIR_WRITER, false, &fd, why, why_size);
    if (rc == 0)
        close(fd);
    speculo__dir_put(&d);
    return rc;
}

/*
 * Check a segment file just opened: a regular file that nobody but its
 * owner can write, and for a writer one that it owns.
 */
int speculo__ns_check_segment(int fd, bool writable, struct stat *st)
{
    if (fstat(fd, st) < 0)
        return -errno;
    if (!S_ISREG(st->st_mode) || (st->st_mode & 022) || (writable && st->st_uid != geteuid()))
        return -EPERM;
    return 0;
}

/* openat() errors that mean "not a plain file under this name". */
int speculo__ns_open_error(int err)
{
    return err == ELOOP || err == EISDIR || err == ENXIO ? -EPERM : -err;
}

/*
 * Open a segment file in `dirfd`. O_NONBLOCK so that a FIFO planted under
 * a segment's name cannot block us; it is then refused as not regular.
 */
int speculo__ns_open_segment(int dirfd, const char *segment, bool writable, int *fd,
                             struct stat *st)
{
    int f = openat(dirfd, segment,
                   (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (f < 0)
        return speculo__ns_open_error(errno);
    int rc = speculo__ns_check_segment(f, writable, st);
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
int speculo__ns_map_fd_raw(int fd, const struct stat *st, struct seg_map *m)
{
    return map_fd(fd, st, true, m);
}

/*
 * Make sure the pages every caller looks at first exist: the header, the
 * name index and the first record. Writers allocate them before a file
 * gets its name, but an older library could leave a segment half-made on
 * a full filesystem, and there a load from a missing tmpfs page raises
 * SIGBUS. Populating reports that as an error instead.
 */
static int populate_start(const struct seg_map *m)
{
    uint64_t first = m->lay.records_off & ~(uint64_t)(SEG_PAGE - 1);
    uint64_t len = first + SEG_PAGE <= m->size ? SEG_PAGE : m->size - first;
    if (madvise(m->base, m->lay.table_off, MADV_POPULATE_READ) < 0 ||
        (len && madvise(m->base + first, len, MADV_POPULATE_READ) < 0)) {
        if (errno == EINVAL) /* a kernel without it (before 5.14) */
            return 0;
        return errno == EFAULT ? -ENOSPC : -ENOMEM;
    }
    return 0;
}

/* Map a segment file and check its header. */
int speculo__ns_map_fd(int fd, const struct stat *st, bool writable, struct seg_map *m)
{
    int rc = map_fd(fd, st, writable, m);
    if (rc == 0 && (rc = speculo__seg_check_layout(m->base, m->size, &m->lay)) == 0)
        rc = populate_start(m);
    if (rc < 0)
        speculo__ns_unmap(m);
    return rc;
}

/* Open, check and map a segment, leaving no descriptor open. */
int speculo__ns_map_segment(const struct ns_dir *d, const char *segment, bool writable,
                            struct seg_map *m)
{
    int dirfd, fd;
    struct stat st;
    int rc = speculo__dir_open(d, false, &dirfd);
    if (rc < 0)
        return rc;
    rc = speculo__ns_open_segment(dirfd, segment, writable, &fd, &st);
    close(dirfd);
    if (rc < 0)
        return rc;
    rc = speculo__ns_map_fd(fd, &st, writable, m);
    close(fd);
    return rc;
}

void speculo__ns_unmap(struct seg_map *m)
{
    if (m->base)
        munmap(m->base, m->size);
    m->base = NULL;
    m->size = 0;
}

/* 1 when the name in `dirfd` still refers to the mapped file, 0 when it
 * refers to another one, -ENOENT when it is gone. */
int speculo__ns_same_file(int dirfd, const char *segment, const struct seg_map *m)
{
    struct stat st;
    if (fstatat(dirfd, segment, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    return st.st_dev == m->dev && st.st_ino == m->ino;
}

/* The length of the segment name in a writer's temporary file name,
 * ".SEG.KIND.SUFFIX" with KIND "gc" or "new" and SUFFIX 16 hex digits (or
 * a decimal pid, from older libraries); 0 when @name is not one. */
static size_t temp_segment_len(const char *name)
{
    if (name[0] != '.')
        return 0;
    const char *suffix = strrchr(name, '.');
    size_t slen = strlen(suffix + 1);
    bool hex = slen == 16, digits = slen > 0 && slen <= 10;
    for (const char *p = suffix + 1; *p; p++) {
        hex = hex && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
        digits = digits && *p >= '0' && *p <= '9';
    }
    if (!hex && !digits)
        return 0;
    const char *kind = suffix - 1;
    while (kind > name && *kind != '.')
        kind--;
    size_t klen = (size_t)(suffix - kind - 1);
    if (kind == name ||
        !((klen == 2 && !memcmp(kind + 1, "gc", 2)) || (klen == 3 && !memcmp(kind + 1, "new", 3))))
        return 0;
    size_t seglen = (size_t)(kind - name - 1);
    char seg[SPECULO_SEGMENT_NAME_MAX + 1];
    if (seglen == 0 || seglen > SPECULO_SEGMENT_NAME_MAX)
        return 0;
    memcpy(seg, name + 1, seglen);
    seg[seglen] = '\0';
    return speculo_segment_name_check(seg) == 0 ? seglen : 0;
}

/* A temporary file nobody holds: its maker died (a live writer holds the
 * role's lock on its files from their first instant). Its size, or -1. */
static int64_t abandoned_size(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat st;
    int64_t size = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && speculo__role_held(fd) == 0)
        size = st.st_blocks * 512;
    close(fd);
    return size;
}

int speculo__temporaries_remove(int dirfd, const char *segment, bool dry_run,
                                speculo_leftover_fn fn, void *arg)
{
    int dfd = dup(dirfd);
    if (dfd < 0)
        return -errno;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -ENOMEM;
    }
    size_t want = segment ? strlen(segment) : 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = temp_segment_len(e->d_name);
        if (len == 0 || (segment && (len != want || memcmp(e->d_name + 1, segment, len) != 0)))
            continue;
        int64_t size = abandoned_size(dirfd, e->d_name);
        if (size < 0 || (!dry_run && unlinkat(dirfd, e->d_name, 0) < 0))
            continue;
        if (fn)
            fn(e->d_name, (uint64_t)size, arg);
        count++;
    }
    closedir(d);
    return count;
}
