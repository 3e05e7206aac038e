/*
 * libfuse's low-level reply API, re-done for in-process tests of
 * speculofs: see fuse_stub.h. Only what fusefs/ calls is here; the fuzz
 * target's build fails to link when fusefs/ starts calling something new,
 * which is the cue to add it (check with `nm -u` on fusefs's objects).
 */
#include "fuse_stub.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct stub_notes stub_notes;

_Noreturn void stub_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuse_stub: %s:%d: invariant failed: %s\n", file, line, what);
    abort();
}

static const char *const op_names[] = {
    "LOOKUP",   "FORGET",    "GETATTR", "OPEN",     "READ",      "RELEASE",    "OPENDIR",
    "READDIR",  "READDIRPLUS", "RELEASEDIR", "GETXATTR", "LISTXATTR", "STATFS",
};

static void describe(const struct fuse_req *req)
{
    fprintf(stderr, "fuse_stub: %s of inode %#llx, size %zu%s: reply kind %d, error %d (%s), "
                    "length %zu\n",
            op_names[req->op], (unsigned long long)req->ino, req->size,
            req->fail ? " (the reply fails)" : "", (int)req->kind, req->err,
            req->kind == STUB_R_ERR ? strerror(req->err) : "-", req->len);
}

_Noreturn void stub_fail_req(const char *file, int line, const char *what,
                             const struct fuse_req *req)
{
    describe(req);
    stub_fail(file, line, what);
}

void stub_req_begin(struct fuse_req *req, enum stub_op op, fuse_ino_t ino, size_t size, int fail)
{
    memset(req, 0, sizeof *req);
    req->op = op;
    req->ino = ino;
    req->size = size;
    req->fail = fail;
}

/* Which replies each request may get, besides an error. */
static int reply_allowed(const struct fuse_req *req)
{
    switch (req->op) {
    case STUB_LOOKUP:
        return req->kind == STUB_R_ENTRY;
    case STUB_FORGET:
        return req->kind == STUB_R_NONE;
    case STUB_GETATTR:
        return req->kind == STUB_R_ATTR;
    case STUB_OPEN:
    case STUB_OPENDIR:
        return req->kind == STUB_R_OPEN;
    case STUB_READ:
    case STUB_READDIR:
    case STUB_READDIRPLUS:
        return req->kind == STUB_R_BUF;
    case STUB_GETXATTR:
    case STUB_LISTXATTR:
        /* a size query gets the size; a real buffer gets the value */
        return req->kind == (req->size == 0 ? STUB_R_XATTR : STUB_R_BUF);
    case STUB_STATFS:
        return req->kind == STUB_R_STATFS;
    case STUB_RELEASE:
    case STUB_RELEASEDIR:
        return 0;
    }
    return 0;
}

/* FUSE_STUB_TRACE=1: one line per request, to see what an input does. */
static void trace(const struct fuse_req *req)
{
    static int on = -1;

    if (on < 0) {
        const char *v = getenv("FUSE_STUB_TRACE");
        on = v != NULL && *v == '1';
    }
    if (on)
        describe(req);
}

#define REQ_CHECK(cond)                                                                    \
    do {                                                                                   \
        if (!(cond))                                                                       \
            stub_fail_req(__FILE__, __LINE__, #cond, req);                                 \
    } while (0)

void stub_req_end(struct fuse_req *req)
{
    trace(req);
    REQ_CHECK(req->replies == 1);
    if (req->kind == STUB_R_ERR) {
        /* Errors are positive errno values; 0 is "done" and only fits a
         * request that has no other answer (release). FORGET gets none. */
        REQ_CHECK(req->err >= 0 && req->err < 4096);
        REQ_CHECK(req->err > 0 || req->op == STUB_RELEASE || req->op == STUB_RELEASEDIR);
        REQ_CHECK(req->op != STUB_FORGET);
    } else {
        REQ_CHECK(reply_allowed(req));
    }
    if (req->kind == STUB_R_BUF)
        REQ_CHECK(req->len <= req->size);
    free(req->buf);
    req->buf = NULL;
}

/* Every reply goes through here: one per request. The return value is
 * what libfuse returns when the kernel no longer waits for the answer
 * (the request was interrupted): the filesystem must then undo what the
 * reply would have handed over (a lookup count, an open handle). */
static int replied(fuse_req_t req, enum stub_reply kind)
{
    req->replies++;
    STUB_CHECK(req->replies == 1);
    req->kind = kind;
    return req->fail ? -ENOENT : 0;
}

int fuse_reply_err(fuse_req_t req, int err)
{
    req->err = err;
    return replied(req, STUB_R_ERR);
}

void fuse_reply_none(fuse_req_t req)
{
    (void)replied(req, STUB_R_NONE);
}

int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
    STUB_CHECK(e != NULL);
    /* ino 0 would be a negative entry, which speculofs never gives */
    STUB_CHECK(e->ino != 0 && (fuse_ino_t)e->attr.st_ino == e->ino);
    STUB_CHECK(S_ISDIR(e->attr.st_mode) || S_ISREG(e->attr.st_mode));
    STUB_CHECK(e->attr_timeout >= 0 && e->entry_timeout >= 0);
    req->entry = *e;
    return replied(req, STUB_R_ENTRY);
}

int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double attr_timeout)
{
    STUB_CHECK(attr != NULL && attr_timeout >= 0);
    STUB_CHECK((fuse_ino_t)attr->st_ino == req->ino);
    STUB_CHECK(S_ISDIR(attr->st_mode) || S_ISREG(attr->st_mode));
    STUB_CHECK(attr->st_size >= 0);
    req->attr = *attr;
    req->attr_timeout = attr_timeout;
    return replied(req, STUB_R_ATTR);
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
    STUB_CHECK(fi != NULL);
    req->fi = *fi;
    return replied(req, STUB_R_OPEN);
}

/* The kernel copies the bytes out of the server's memory: so does this,
 * which reads every byte of the range (a read outside a mapping faults
 * here; outside a heap block, AddressSanitizer reports it). */
int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
    STUB_CHECK(buf != NULL || size == 0);
    req->buf = malloc(size > 0 ? size : 1);
    STUB_CHECK(req->buf != NULL);
    if (size > 0)
        memcpy(req->buf, buf, size);
    req->len = size;
    return replied(req, STUB_R_BUF);
}

/* One buffer, in memory or a pipe (what speculofs splices into): all of
 * it must be there, since libfuse would send a short reply. */
int fuse_reply_data(fuse_req_t req, struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags)
{
    const struct fuse_buf *b = &bufv->buf[0];
    size_t got = 0;
    ssize_t k = 1;

    (void)flags;
    STUB_CHECK(bufv->count == 1 && bufv->idx == 0 && bufv->off == 0);
    req->buf = malloc(b->size > 0 ? b->size : 1);
    STUB_CHECK(req->buf != NULL);
    if (!(b->flags & FUSE_BUF_IS_FD))
        memcpy(req->buf, b->mem, b->size);
    else
        while (got < b->size && (k = read(b->fd, req->buf + got, b->size - got)) > 0)
            got += (size_t)k;
    STUB_CHECK(!(b->flags & FUSE_BUF_IS_FD) || got == b->size);
    req->len = b->size;
    return replied(req, STUB_R_BUF);
}

int fuse_reply_xattr(fuse_req_t req, size_t count)
{
    req->len = count;
    return replied(req, STUB_R_XATTR);
}

int fuse_reply_statfs(fuse_req_t req, const struct statvfs *stbuf)
{
    STUB_CHECK(stbuf != NULL);
    req->vfs = *stbuf;
    return replied(req, STUB_R_STATFS);
}

/* ---- directory buffers ------------------------------------------------ */

/* The kernel's struct fuse_dirent, written out: ino, off, namelen, type,
 * then the name, the whole padded to 8 bytes. */
#define DIRENT_HEAD 24u
#define DIRENT_NAME_MAX 255u

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t dirent_size(size_t namelen)
{
    return align8(DIRENT_HEAD + namelen);
}

static void put_dirent(char *buf, const char *name, size_t namelen, uint64_t ino, uint64_t off,
                       mode_t mode)
{
    uint32_t len32 = (uint32_t)namelen, type = (uint32_t)((mode & S_IFMT) >> 12);
    size_t size = dirent_size(namelen);

    memcpy(buf, &ino, 8);
    memcpy(buf + 8, &off, 8);
    memcpy(buf + 16, &len32, 4);
    memcpy(buf + 20, &type, 4);
    memcpy(buf + DIRENT_HEAD, name, namelen);
    memset(buf + DIRENT_HEAD + namelen, 0, size - DIRENT_HEAD - namelen);
}

/* A name the kernel would accept in a directory listing. */
static void check_entry_name(const char *name, size_t len)
{
    STUB_CHECK(len >= 1 && len <= DIRENT_NAME_MAX);
    STUB_CHECK(memchr(name, '/', len) == NULL);
}

size_t fuse_add_direntry(fuse_req_t req, char *buf, size_t bufsize, const char *name,
                         const struct stat *stbuf, off_t off)
{
    size_t len = strlen(name), need = dirent_size(len);

    STUB_CHECK(req != NULL && req->op == STUB_READDIR && req->replies == 0);
    STUB_CHECK(stbuf != NULL && off > 0);
    check_entry_name(name, len);
    if (buf != NULL && need <= bufsize)
        put_dirent(buf, name, len, (uint64_t)stbuf->st_ino, (uint64_t)off, stbuf->st_mode);
    return need;
}

/* READDIRPLUS entries: the entry parameters, then a plain entry. (The
 * kernel's fuse_entry_out is smaller; this keeps the whole parameters so
 * that the caller can check them.) */
#define PLUS_HEAD align8(sizeof(struct fuse_entry_param))

size_t fuse_add_direntry_plus(fuse_req_t req, char *buf, size_t bufsize, const char *name,
                              const struct fuse_entry_param *e, off_t off)
{
    size_t len = strlen(name), need = PLUS_HEAD + dirent_size(len);

    STUB_CHECK(req != NULL && req->op == STUB_READDIRPLUS && req->replies == 0);
    STUB_CHECK(e != NULL && off > 0);
    check_entry_name(name, len);
    if (buf != NULL && need <= bufsize) {
        memset(buf, 0, PLUS_HEAD);
        memcpy(buf, e, sizeof *e);
        /* the entry's inode (0: not linked) and the listed one may differ */
        put_dirent(buf + PLUS_HEAD, name, len, (uint64_t)e->attr.st_ino, (uint64_t)off,
                   e->attr.st_mode);
    }
    return need;
}

int stub_dirent_next(const unsigned char *buf, size_t len, size_t *pos, struct stub_dirent *d,
                     int plus)
{
    size_t head = plus ? PLUS_HEAD : 0;
    uint32_t namelen, type;

    memset(d, 0, sizeof *d);
    if (*pos == len)
        return 0;
    if (len - *pos < head + DIRENT_HEAD)
        return -1;
    if (plus)
        d->plus = (const struct fuse_entry_param *)(const void *)(buf + *pos);
    buf += *pos + head;
    memcpy(&d->ino, buf, 8);
    memcpy(&d->off, buf + 8, 8);
    memcpy(&namelen, buf + 16, 4);
    memcpy(&type, buf + 20, 4);
    if (namelen == 0 || namelen > DIRENT_NAME_MAX || len - *pos - head < dirent_size(namelen))
        return -1;
    memcpy(d->name, buf + DIRENT_HEAD, namelen);
    d->name[namelen] = '\0';
    if (strlen(d->name) != namelen)
        return -1; /* a NUL inside the name */
    d->type = type;
    *pos += head + dirent_size(namelen);
    return 1;
}

/* ---- the rest of the API fusefs/ may use ------------------------------ */

void *fuse_req_userdata(fuse_req_t req)
{
    (void)req;
    return NULL;
}

const struct fuse_ctx *fuse_req_ctx(fuse_req_t req)
{
    static struct fuse_ctx ctx;

    (void)req;
    ctx.uid = getuid();
    ctx.gid = getgid();
    ctx.pid = getpid();
    ctx.umask = 022;
    return &ctx;
}

/* Notifications go to the kernel, which has nothing to invalidate here:
 * they are counted, and their arguments checked. */
int fuse_lowlevel_notify_inval_entry(struct fuse_session *se, fuse_ino_t parent,
                                     const char *name, size_t namelen)
{
    (void)se;
    STUB_CHECK(parent != 0 && name != NULL && strlen(name) == namelen);
    check_entry_name(name, namelen);
    stub_notes.inval_entry++;
    return 0;
}

int fuse_lowlevel_notify_expire_entry(struct fuse_session *se, fuse_ino_t parent,
                                      const char *name, size_t namelen,
                                      enum fuse_expire_flags flags)
{
    (void)flags;
    stub_notes.expire_entry++;
    return fuse_lowlevel_notify_inval_entry(se, parent, name, namelen);
}

int fuse_lowlevel_notify_delete(struct fuse_session *se, fuse_ino_t parent, fuse_ino_t child,
                                const char *name, size_t namelen)
{
    STUB_CHECK(child != 0);
    stub_notes.delete_entry++;
    return fuse_lowlevel_notify_inval_entry(se, parent, name, namelen);
}

int fuse_lowlevel_notify_inval_inode(struct fuse_session *se, fuse_ino_t ino, off_t off,
                                     off_t len)
{
    (void)se;
    STUB_CHECK(ino != 0 && len >= 0);
    (void)off;
    stub_notes.inval_inode++;
    return 0;
}

/* Formatted, so that a bad format or argument is caught by the
 * sanitizers; shown only with FUSE_STUB_LOG=1. (Declared again to tell
 * the compiler that fmt is a printf format.) */
__attribute__((format(printf, 2, 3))) void fuse_log(enum fuse_log_level level, const char *fmt,
                                                    ...);
void fuse_log(enum fuse_log_level level, const char *fmt, ...)
{
    static int show = -1;
    char line[1024];
    va_list ap;

    if (show < 0) {
        const char *v = getenv("FUSE_STUB_LOG");
        show = v != NULL && *v == '1';
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (show)
        fprintf(stderr, "fuse_log(%d): %s", (int)level, line);
}
