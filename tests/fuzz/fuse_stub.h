/*
 * A stand-in for libfuse's low-level reply API, so that speculofs's
 * operations (sfs_ops) can be called in-process, without a kernel mount,
 * by the fuzz_fs target and its replay in `make check`.
 *
 * The caller makes a request with stub_req_begin(), calls the handler, and
 * ends it with stub_req_end(), which checks that exactly one reply was
 * given and that it is a reply this kind of request may get (an entry for
 * a LOOKUP, a buffer no larger than asked for, ...). Every reply is
 * recorded in the request (buffers are copied, as the kernel would copy
 * them), so that the caller can look at what the filesystem answered.
 *
 * Directory buffers are filled in the kernel's layout (struct fuse_dirent:
 * ino, off, namelen, type, name padded to 8 bytes), so that the sizes the
 * filesystem sees when packing a READDIR reply are the real ones;
 * stub_dirent_next() reads them back.
 */
#ifndef FUSE_STUB_H
#define FUSE_STUB_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>

/* The requests the stub knows how to check. */
enum stub_op {
    STUB_LOOKUP,
    STUB_FORGET, /* FORGET and BATCH_FORGET */
    STUB_GETATTR,
    STUB_OPEN,
    STUB_READ,
    STUB_RELEASE,
    STUB_OPENDIR,
    STUB_READDIR,
    STUB_READDIRPLUS,
    STUB_RELEASEDIR,
    STUB_GETXATTR,
    STUB_LISTXATTR,
    STUB_STATFS,
};

enum stub_reply {
    STUB_R_NONE_YET,
    STUB_R_ERR,
    STUB_R_NONE, /* fuse_reply_none */
    STUB_R_ENTRY,
    STUB_R_ATTR,
    STUB_R_OPEN,
    STUB_R_BUF,
    STUB_R_XATTR,
    STUB_R_STATFS,
};

struct fuse_req {
    enum stub_op op;
    size_t size;      /* READ, READDIR, xattrs: the size asked for */
    fuse_ino_t ino;   /* the inode the request is about */
    int fail;         /* the reply "does not reach the kernel" (interrupted) */
    unsigned replies; /* how many replies were given */
    enum stub_reply kind;
    int err;
    struct fuse_entry_param entry;
    struct stat attr;
    double attr_timeout;
    struct fuse_file_info fi;
    unsigned char *buf; /* a copy of a buffer reply (malloc'ed) */
    size_t len;         /* its length; for STUB_R_XATTR the size announced */
    struct statvfs vfs;
};

/* What the notification calls were asked (counts since the start). */
struct stub_notes {
    uint64_t inval_entry, inval_inode, expire_entry, delete_entry;
};
extern struct stub_notes stub_notes;

void stub_req_begin(struct fuse_req *req, enum stub_op op, fuse_ino_t ino, size_t size,
                    int fail);
/* Checks the reply (aborts on a broken rule) and frees the buffer copy. */
void stub_req_end(struct fuse_req *req);

/* A directory entry read back from a READDIR reply. */
struct stub_dirent {
    uint64_t ino;
    uint64_t off;
    unsigned type; /* S_IFMT bits >> 12, as fuse_add_direntry() stores them */
    char name[256];
    const struct fuse_entry_param *plus; /* READDIRPLUS only */
};

/* The entry at *pos of @buf[0..@len); advances *pos. 1: an entry, 0: the
 * end of the buffer, -1: the buffer does not parse (a broken reply). */
int stub_dirent_next(const unsigned char *buf, size_t len, size_t *pos, struct stub_dirent *d,
                     int plus);

/* Abort with a message: libFuzzer reports it as a crash with its input. */
#define STUB_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond))                                                                       \
            stub_fail(__FILE__, __LINE__, #cond);                                          \
    } while (0)
_Noreturn void stub_fail(const char *file, int line, const char *what);
/* The same, with the request and its reply. */
_Noreturn void stub_fail_req(const char *file, int line, const char *what,
                             const struct fuse_req *req);

#endif
