/*
 * libFuzzer target: speculofs's FUSE operations, in-process, on a segment
 * file made of the input.
 *
 * fusefs/ops.c, segtab.c, nodes.c and guard.c are compiled in (main.c is
 * not) with a stand-in for libfuse's reply API (fuse_stub.c), and the
 * target plays the kernel: it calls the handlers of sfs_ops the way the
 * kernel's requests would, keeps what the kernel would keep (the inodes it
 * looked up and their lookup counts, open files and directories, names
 * listed), and checks every answer.
 *
 * The input is a segment file and an optional program (fuzz_fs.h). Every
 * input gets a sweep: list the root, each segment directory and its .all
 * in small buffers, look every name up, stat it, read its xattrs, open and
 * read it (files are left open, so that the program runs with open
 * handles). Then
 * the program runs: lookups, reads at odd offsets, rewinds, forgets, and
 * changes behind the filesystem's back (the file replaced, removed, cut
 * while mapped, taken over and collected by a writer, ...). At the end
 * everything is released and forgotten, as at unmount.
 *
 * What counts as a failure, besides a crash, a hang or a sanitizer report:
 *  - a request that gets no reply, two replies, or a reply of the wrong
 *    kind; an error that is not one the operation can give;
 *  - a buffer reply larger than asked for; a READDIR buffer that does not
 *    parse, whose offsets do not increase past the one asked for (the
 *    kernel would list for ever), or whose entries are not what the
 *    directory can hold (names, inode numbers, types);
 *  - a LOOKUP whose inode GETATTR then refuses or describes differently;
 *  - a READ that returns more than the file holds (or less than asked
 *    for, before its end), EIO from a chunk whose file was never cut, or
 *    bytes that differ from the chunk's (from an independent reader) or
 *    from what the same open file returned before;
 *  - an xattr size query that disagrees with the value, a value that is
 *    not decimal or not the chunk's id, a state that is not one of the
 *    words of `speculo ls --all`, or on anything but a record of .all;
 *  - the filesystem's count of chunk inodes differing from the kernel's
 *    (a lookup count leaked or lost, also when a reply did not reach the
 *    kernel), or left non-zero once everything was forgotten;
 *  - a descriptor or a mapping of a file of the segment directory left
 *    once everything was released and the tables freed (checked after
 *    every input), and memory leaks (libFuzzer's -detect_leaks).
 *
 * Build and run: make fuzz (see the Makefile and docs/RELIABILITY.md).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "fuse_stub.h"
#include "fuzz_fs.h"
#include "notify_stub.h"
#include "sfs.h"
#include "t_util.h"

#define FZ_MAX_INPUT (1u << 20)
#define FZ_MAX_OPS 160
#define K_INOS 64    /* inodes the simulated kernel holds */
#define K_FILES 16   /* open files */
#define K_DIRS 6     /* open directories */
#define K_NAMES 64   /* names listed, to look up again */
#define SWEEP_NAMES 32
#define SWEEP_READDIRS 256
#define XATTR_MAX 64

#define FZ_CHECK(cond) STUB_CHECK(cond)
/* The same, saying what the reply was. */
#define FZ_REPLY(cond, req)                                                                \
    do {                                                                                   \
        if (!(cond))                                                                       \
            stub_fail_req(__FILE__, __LINE__, #cond, req);                                 \
    } while (0)

struct kino {
    fuse_ino_t ino;
    uint64_t nlookup;
};

struct kfile {
    uint64_t fh;
    fuse_ino_t ino;
    int info;         /* a .info snapshot, else a chunk */
    int have_size;    /* size: from the GETATTR just before the open */
    uint64_t size;
    int have_sum;     /* sum: of the whole contents, at the first full read */
    uint64_t sum;
    unsigned epoch;   /* K.epoch at open */
};

struct kdir {
    uint64_t fh;
    fuse_ino_t ino;
    uint64_t next_off; /* the offset of the last entry received */
};

struct kname {
    fuse_ino_t parent;
    char name[256];
};

/* What the simulated kernel knows; reset for every input. */
static struct {
    const uint8_t *file; /* the segment file's bytes (the input's) */
    size_t file_size;
    struct kino inos[K_INOS];
    int ninos;
    struct kfile files[K_FILES];
    int nfiles;
    struct kdir dirs[K_DIRS];
    int ndirs;
    struct kname names[K_NAMES];
    int nnames;
    unsigned epoch;         /* +1 at every change made to the segment directory */
    unsigned clobber_epoch; /* epoch of the last in-place rewrite or cut of "s" */
    int cut;                /* "s" was cut or rewritten in place: EIO is fair */
    int fail_next;          /* the next reply does not reach the kernel */
    speculo_reader *ref;    /* an independent reader of "s", while epoch is 0 */
} K;

static const char *fz_dir; /* t_private_dir() */

/* ---- the segment directory ------------------------------------------ */

static void fz_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", fz_dir, name);
}

/* Write @name with the segment's bytes. An even-sized file gets its
 * capacity field set to its size (as in fuzz_reader), so that mutations
 * that change the length still reach past the header checks. */
static int fz_write(const char *name, const uint8_t *data, size_t size)
{
    char path[PATH_MAX + 64];
    size_t done = 0;
    int fd;

    fz_path(path, sizeof path, name);
    fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    if (done == size && size >= SEG_HEADER_SIZE && size % 2 == 0) {
        uint64_t cap = size;
        if (pwrite(fd, &cap, sizeof cap, offsetof(struct seg_header, capacity)) != sizeof cap)
            done = 0;
    }
    close(fd);
    return done == size ? 0 : -1;
}

/* ---- the SIGBUS guard, and crashes it must not swallow --------------- */

static struct sigaction fz_prev_bus;  /* the sanitizer's or libFuzzer's */
static void (*fz_guard_bus)(int, siginfo_t *, void *);

/* guard.c's handler jumps back into a guarded call, or, for a SIGBUS
 * outside any guard (a real bug: the filesystem touched a mapping without
 * the guard), resets the signal to its default and returns. In that case
 * the handler installed before (the sanitizer's, which reports and has
 * libFuzzer save the input) must run, rather than a silent death. */
static void fz_on_sigbus(int sig, siginfo_t *si, void *uc)
{
    struct sigaction now;

    fz_guard_bus(sig, si, uc);
    if (sigaction(SIGBUS, NULL, &now) != 0 || now.sa_handler != SIG_DFL)
        return;
    fprintf(stderr, "fuzz_fs: SIGBUS outside the guard\n");
    if ((fz_prev_bus.sa_flags & SA_SIGINFO) && fz_prev_bus.sa_sigaction != NULL)
        fz_prev_bus.sa_sigaction(sig, si, uc);
    else if (fz_prev_bus.sa_handler != SIG_DFL && fz_prev_bus.sa_handler != SIG_IGN)
        fz_prev_bus.sa_handler(sig);
}

static int fz_install_guard(void)
{
    struct sigaction sa;

    if (sigaction(SIGBUS, NULL, &fz_prev_bus) != 0 || guard_install() != 0 ||
        sigaction(SIGBUS, NULL, &sa) != 0 || !(sa.sa_flags & SA_SIGINFO))
        return -1;
    fz_guard_bus = sa.sa_sigaction;
    sa.sa_sigaction = fz_on_sigbus;
    return sigaction(SIGBUS, &sa, NULL);
}

/* Once per process: a private segment directory (mode 0700, as the
 * library wants it), named by SPECULO_DIR for the library's calls and
 * given to segtab_init() for the filesystem's own. */
static int fz_init(void)
{
    if (fz_dir != NULL)
        return 0;
    fz_dir = t_private_dir("fuzzfs");
    return fz_dir != NULL && fz_install_guard() == 0 ? 0 : -1;
}

/* ---- the program ------------------------------------------------------ */

struct prog {
    const uint8_t *p;
    size_t n, i;
};

static unsigned pb(struct prog *g)
{
    return g->i < g->n ? g->p[g->i++] : 0;
}

static uint64_t pu64(struct prog *g, int bytes)
{
    uint64_t v = 0;

    for (int k = 0; k < bytes; k++)
        v = v << 8 | pb(g);
    return v;
}

static int take_fail(void)
{
    int f = K.fail_next;

    K.fail_next = 0;
    return f;
}

/* ---- what the kernel holds -------------------------------------------- */

static struct kino *kino_find(fuse_ino_t ino)
{
    for (int i = 0; i < K.ninos; i++)
        if (K.inos[i].ino == ino)
            return &K.inos[i];
    return NULL;
}

static void kino_drop(struct kino *k)
{
    *k = K.inos[--K.ninos];
}

/* Chunk and record inodes: the ones with their own attributes. */
static int is_file_ino(fuse_ino_t ino)
{
    return sfs_ino_kind(ino) == SFS_CHUNK || sfs_ino_kind(ino) == SFS_RECORD;
}

static int is_dir_ino(fuse_ino_t ino)
{
    enum sfs_kind k = sfs_ino_kind(ino);

    return k == SFS_ROOT || k == SFS_SEGDIR || k == SFS_ALLDIR;
}

/* The chunk and record inodes with a lookup count: the filesystem must
 * count the same (it keeps their attributes until the last FORGET). */
static size_t kernel_chunk_inodes(void)
{
    size_t n = 0;

    for (int i = 0; i < K.ninos; i++)
        n += is_file_ino(K.inos[i].ino);
    return n;
}

static void check_counts(void)
{
    FZ_CHECK(nodes_count() == kernel_chunk_inodes());
}

static void send_forget(fuse_ino_t ino, uint64_t n, int batch)
{
    struct fuse_req req;

    stub_req_begin(&req, STUB_FORGET, ino, 0, 0);
    if (batch) {
        struct fuse_forget_data f = {.ino = ino, .nlookup = n};
        sfs_ops.forget_multi(&req, 1, &f);
    } else {
        sfs_ops.forget(&req, ino, n);
    }
    stub_req_end(&req);
}

/* One more lookup of @ino reached the kernel. When the table is full the
 * kernel forgets it at once, so that the counts stay comparable. */
static void kino_ref(fuse_ino_t ino)
{
    struct kino *k = kino_find(ino);

    if (k != NULL) {
        k->nlookup++;
    } else if (K.ninos < K_INOS) {
        K.inos[K.ninos].ino = ino;
        K.inos[K.ninos++].nlookup = 1;
    } else {
        send_forget(ino, 1, 0);
    }
}

static void kname_add(fuse_ino_t parent, const char *name)
{
    struct kname *n;

    if (K.nnames >= K_NAMES)
        return;
    for (int i = 0; i < K.nnames; i++)
        if (K.names[i].parent == parent && strcmp(K.names[i].name, name) == 0)
            return;
    n = &K.names[K.nnames++];
    n->parent = parent;
    snprintf(n->name, sizeof n->name, "%s", name);
}

/* ---- errors an operation may give -------------------------------------- */

/* Whatever speculofs tells the kernel when the library says no. */
static int fs_errno(int err)
{
    return err == ENOENT || err == EIO || err == ENAMETOOLONG || err == ENOMEM ||
           err == EACCES || err == ESTALE || err == EOVERFLOW;
}

/* 0-terminated list of more errors that @err may be. */
static int err_ok(int err, ...)
{
    va_list ap;
    int ok = fs_errno(err);

    va_start(ap, err);
    for (int e = va_arg(ap, int); !ok && e != 0; e = va_arg(ap, int))
        ok = err == e;
    va_end(ap);
    return ok;
}

/* ---- names ----------------------------------------------------------- */

static int is_idname(const char *name, uint64_t *id)
{
    uint64_t v = 0;

    if (strlen(name) != SFS_IDNAME_LEN || strspn(name, "0123456789") != SFS_IDNAME_LEN)
        return 0;
    for (const char *p = name; *p; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *id = v;
    return 1;
}

/* A LOOKUP or listing of @name in directory @parent answered @ino, @mode. */
static void check_name(fuse_ino_t parent, const char *name, fuse_ino_t ino, mode_t type)
{
    enum sfs_kind pk = sfs_ino_kind(parent), k = sfs_ino_kind(ino);
    uint64_t id;

    FZ_CHECK(is_dir_ino(parent));
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        FZ_CHECK(type == S_IFDIR);
        if (pk == SFS_ALLDIR) /* .all/.. is its segment's directory */
            FZ_CHECK(ino == (name[1] == '.' ? sfs_ino(sfs_ino_slot(parent), 0) : parent));
        else
            FZ_CHECK(ino == (name[1] == '.' ? FUSE_ROOT_ID : parent));
        return;
    }
    if (pk == SFS_ROOT) {
        FZ_CHECK(type == S_IFDIR && k == SFS_SEGDIR);
        FZ_CHECK(speculo_segment_name_check(name) == 0);
        return;
    }
    FZ_CHECK(sfs_ino_slot(ino) == sfs_ino_slot(parent));
    if (pk == SFS_ALLDIR) { /* every record by its id, named or not */
        FZ_CHECK(type == S_IFREG && is_idname(name, &id));
        FZ_CHECK(k == SFS_RECORD && sfs_ino_id(ino) == id);
        return;
    }
    if (strcmp(name, ".all") == 0) {
        FZ_CHECK(type == S_IFDIR && k == SFS_ALLDIR);
        return;
    }
    FZ_CHECK(type == S_IFREG);
    if (strcmp(name, ".info") == 0) {
        FZ_CHECK(k == SFS_INFO);
    } else if (is_idname(name, &id)) {
        FZ_CHECK(k == SFS_CHUNK && sfs_ino_low(ino) == id);
    } else {
        FZ_CHECK(k == SFS_CHUNK && speculo_chunk_name_check(name) == 0);
    }
}

/* ---- requests --------------------------------------------------------- */

/* GETATTR of @ino: 0 and its attributes in @out (if not NULL), or the
 * error it answered (positive). */
static int do_getattr(fuse_ino_t ino, struct stat *out)
{
    struct fuse_req req;
    int ok;

    stub_req_begin(&req, STUB_GETATTR, ino, 0, take_fail());
    sfs_ops.getattr(&req, ino, NULL);
    ok = req.kind == STUB_R_ATTR;
    if (ok) {
        if (!is_dir_ino(ino))
            FZ_CHECK(S_ISREG(req.attr.st_mode) && (req.attr.st_mode & 0222) == 0);
        else
            FZ_CHECK(S_ISDIR(req.attr.st_mode) && (req.attr.st_mode & 0222) == 0);
        if (out != NULL)
            *out = req.attr;
    } else {
        FZ_REPLY(req.kind == STUB_R_ERR && err_ok(req.err, 0), &req);
    }
    stub_req_end(&req);
    return ok ? 0 : req.err != 0 ? req.err : EIO;
}

/* The checker finds a segment file of the mount wrong. Its structures may
 * then disagree (a name's index slot leads to a sound record while the id
 * table does not), so one request may find what another gets EIO for. */
static int some_file_unsound(void)
{
    static const char *const segs[] = {"s", "t"};
    struct speculo_check_report rep;

    for (size_t i = 0; i < sizeof segs / sizeof segs[0]; i++) {
        int rc = speculo_segment_check(segs[i], &rep, NULL, NULL);
        if (rc != -ENOENT && (rc < 0 || rep.status != 0))
            return 1;
    }
    return 0;
}

/* The entry just handed to the kernel must be one GETATTR accepts and
 * describes the same way, unless the file is corrupt (EIO, with the
 * checker agreeing). */
static void check_entry_attr(const struct fuse_entry_param *e)
{
    struct stat a;
    int err = do_getattr(e->ino, &a);

    if (err == EIO && some_file_unsound())
        return;
    FZ_CHECK(err == 0);
    FZ_CHECK(a.st_ino == e->attr.st_ino && a.st_mode == e->attr.st_mode);
    FZ_CHECK(a.st_size == e->attr.st_size);
}

/* Returns the inode found, or 0. */
static fuse_ino_t do_lookup(fuse_ino_t parent, const char *name)
{
    struct fuse_req req;
    struct fuse_entry_param e;
    int fail = take_fail();

    stub_req_begin(&req, STUB_LOOKUP, parent, 0, fail);
    sfs_ops.lookup(&req, parent, name);
    e = req.entry;
    if (req.kind != STUB_R_ENTRY)
        FZ_REPLY(req.kind == STUB_R_ERR && err_ok(req.err, ENOTDIR, 0), &req);
    stub_req_end(&req);
    if (req.kind != STUB_R_ENTRY)
        return 0;
    check_name(parent, name, e.ino, e.attr.st_mode & S_IFMT);
    if (fail) {
        check_counts(); /* an entry that did not reach the kernel is uncounted */
        return 0;
    }
    kino_ref(e.ino);
    check_counts();
    check_entry_attr(&e);
    return e.ino;
}

/* ---- files ---------------------------------------------------------------- */

static struct kfile *do_open(fuse_ino_t ino, int flags)
{
    enum sfs_kind kind = sfs_ino_kind(ino);
    struct fuse_file_info fi;
    struct fuse_req req;
    struct kfile *f;
    struct stat a;
    int fail = take_fail(), ok; /* for the OPEN, not the GETATTR before it */
    int have = !is_dir_ino(ino) && do_getattr(ino, &a) == 0;

    memset(&fi, 0, sizeof fi);
    fi.flags = flags;
    stub_req_begin(&req, STUB_OPEN, ino, 0, fail);
    sfs_ops.open(&req, ino, &fi);
    ok = req.kind == STUB_R_OPEN;
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
        FZ_REPLY(req.kind == STUB_R_ERR && req.err == EROFS, &req);
    else if (is_dir_ino(ino))
        FZ_REPLY(req.kind == STUB_R_ERR && req.err == EISDIR, &req);
    else if (!ok)
        FZ_REPLY(req.kind == STUB_R_ERR && err_ok(req.err, 0), &req);
    stub_req_end(&req);
    if (!ok || fail || K.nfiles == K_FILES) {
        if (ok && !fail) { /* no room to keep it: closed at once */
            struct fuse_req rel;
            stub_req_begin(&rel, STUB_RELEASE, ino, 0, 0);
            sfs_ops.release(&rel, ino, &req.fi);
            stub_req_end(&rel);
        }
        return NULL;
    }
    FZ_CHECK(req.fi.fh != 0);
    FZ_CHECK(kind == SFS_INFO ? req.fi.direct_io : req.fi.keep_cache);
    f = &K.files[K.nfiles++];
    memset(f, 0, sizeof *f);
    f->fh = req.fi.fh;
    f->ino = ino;
    f->info = kind == SFS_INFO;
    f->have_size = have;
    f->size = have ? (uint64_t)a.st_size : 0;
    f->epoch = K.epoch;
    return f;
}

/* RELEASE (@op STUB_RELEASE) or RELEASEDIR of handle @fh: always 0. */
static void send_release(enum stub_op op, fuse_ino_t ino, uint64_t fh)
{
    struct fuse_file_info fi;
    struct fuse_req req;

    memset(&fi, 0, sizeof fi);
    fi.fh = fh;
    stub_req_begin(&req, op, ino, 0, take_fail());
    if (op == STUB_RELEASE)
        sfs_ops.release(&req, ino, &fi);
    else
        sfs_ops.releasedir(&req, ino, &fi);
    FZ_REPLY(req.kind == STUB_R_ERR && req.err == 0, &req);
    stub_req_end(&req);
}

static void do_release(struct kfile *f)
{
    send_release(STUB_RELEASE, f->ino, f->fh);
    *f = K.files[--K.nfiles];
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * UINT64_C(1099511628211);
    return h;
}

/* The chunk's bytes, as a reader of our own sees them: only while nothing
 * was changed in the directory (then "s" is the input's file, slot 1). A
 * record of .all: its bytes whatever its state. */
static void check_against_ref(const struct kfile *f, off_t off, const unsigned char *buf,
                              size_t len)
{
    struct speculo_record rec;
    speculo_chunk c;
    int rc;

    if (K.epoch != 0 || f->info || sfs_ino_slot(f->ino) != 1)
        return;
    if (K.ref == NULL && speculo_reader_open("s", &K.ref) != 0)
        return;
    if (sfs_ino_kind(f->ino) == SFS_RECORD) {
        rc = speculo_reader_get_record(K.ref, sfs_ino_id(f->ino), &rec);
        c = rec.chunk;
    } else {
        rc = speculo_reader_get_id(K.ref, sfs_ino_id(f->ino), &c);
    }
    if (rc != 0)
        return; /* expired meanwhile */
    FZ_CHECK(c.size == f->size);
    FZ_CHECK(len == 0 || memcmp((const char *)c.data + off, buf, len) == 0);
}

/* Same bytes as the last full read of this open file, unless "s" was
 * rewritten in place since it was opened (which no writer does). */
static void check_stable(struct kfile *f, const unsigned char *buf, size_t len)
{
    uint64_t sum = fnv1a(buf, len);

    if (f->epoch < K.clobber_epoch)
        return;
    if (f->have_sum)
        FZ_CHECK(f->sum == sum);
    f->have_sum = 1;
    f->sum = sum;
}

static void check_read(struct kfile *f, size_t size, off_t off, const struct fuse_req *req)
{
    if (req->kind == STUB_R_ERR) {
        /* EIO: the mapping faulted, which needs a file cut under it */
        FZ_CHECK((off < 0 && req->err == EINVAL) || (req->err == EIO && K.cut && !f->info));
        return;
    }
    FZ_CHECK(off >= 0);
    if (f->info) /* text, whatever the state of the segment */
        FZ_CHECK(memchr(req->buf, '\0', req->len) == NULL);
    if (!f->have_size)
        return;
    if ((uint64_t)off >= f->size)
        FZ_CHECK(req->len == 0);
    else
        FZ_CHECK(req->len == (f->size - (uint64_t)off < size ? f->size - (uint64_t)off : size));
    if (!f->info && off == 0 && req->len == f->size)
        check_stable(f, req->buf, req->len);
    if (!f->info)
        check_against_ref(f, off, req->buf, req->len);
}

static void do_read(struct kfile *f, size_t size, off_t off)
{
    struct fuse_file_info fi;
    struct fuse_req req;

    memset(&fi, 0, sizeof fi);
    fi.fh = f->fh;
    stub_req_begin(&req, STUB_READ, f->ino, size, take_fail());
    sfs_ops.read(&req, f->ino, size, off, &fi);
    check_read(f, size, off, &req);
    stub_req_end(&req);
}

/* ---- directories ------------------------------------------------------ */

static struct kdir *do_opendir(fuse_ino_t ino)
{
    struct fuse_file_info fi;
    struct fuse_req req;
    int fail = take_fail(), ok;

    memset(&fi, 0, sizeof fi);
    stub_req_begin(&req, STUB_OPENDIR, ino, 0, fail);
    sfs_ops.opendir(&req, ino, &fi);
    ok = req.kind == STUB_R_OPEN;
    if (!is_dir_ino(ino))
        FZ_REPLY(req.kind == STUB_R_ERR && req.err == ENOTDIR, &req);
    else if (!ok)
        FZ_REPLY(req.kind == STUB_R_ERR && err_ok(req.err, 0), &req);
    stub_req_end(&req);
    if (!ok || fail)
        return NULL;
    FZ_CHECK(req.fi.fh != 0);
    if (K.ndirs == K_DIRS) { /* no room: closed at once */
        struct fuse_req rel;
        stub_req_begin(&rel, STUB_RELEASEDIR, ino, 0, 0);
        sfs_ops.releasedir(&rel, ino, &req.fi);
        stub_req_end(&rel);
        return NULL;
    }
    K.dirs[K.ndirs] = (struct kdir){.fh = req.fi.fh, .ino = ino, .next_off = 0};
    return &K.dirs[K.ndirs++];
}

static void do_releasedir(struct kdir *d)
{
    send_release(STUB_RELEASEDIR, d->ino, d->fh);
    *d = K.dirs[--K.ndirs];
}

/* Names of one listing, for the sweep to look up. */
struct namelist {
    int n;
    char name[SWEEP_NAMES][256];
};

/* One READDIR entry: what it names must be what the directory holds. */
static void take_dirent(const struct kdir *d, const struct stub_dirent *e, int counted,
                        struct namelist *out)
{
    int dot = strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0;

    FZ_CHECK(e->type == (S_IFDIR >> 12) || e->type == (S_IFREG >> 12));
    check_name(d->ino, e->name, (fuse_ino_t)e->ino, (mode_t)(e->type << 12));
    if (e->plus != NULL)
        FZ_CHECK(e->plus->ino == 0 || e->plus->ino == e->ino);
    if (counted && e->plus != NULL && e->plus->ino != 0 && !dot)
        kino_ref(e->plus->ino); /* READDIRPLUS entries are lookups */
    if (dot)
        return;
    kname_add(d->ino, e->name);
    if (out != NULL && out->n < SWEEP_NAMES)
        snprintf(out->name[out->n++], sizeof out->name[0], "%s", e->name);
}

/* The entries of a READDIR reply; their number, or -1 on an error. */
static int parse_listing(struct kdir *d, const struct fuse_req *req, off_t off, int counted,
                         struct namelist *out)
{
    int plus = req->op == STUB_READDIRPLUS, n = 0, rc;
    uint64_t prev = (uint64_t)off;
    struct stub_dirent e;
    size_t pos = 0;

    while ((rc = stub_dirent_next(req->buf, req->len, &pos, &e, plus)) == 1) {
        /* each offset is where the next READDIR resumes: it must move on */
        FZ_CHECK(e.off > prev && e.off <= (uint64_t)INT64_MAX);
        prev = e.off;
        take_dirent(d, &e, counted, out);
        n++;
    }
    FZ_CHECK(rc == 0);
    if (n > 0 && counted)
        d->next_off = prev;
    return n;
}

static int do_readdir(struct kdir *d, size_t size, off_t off, int plus, struct namelist *out)
{
    struct fuse_file_info fi;
    struct fuse_req req;
    int fail = take_fail(), n = -1;

    plus = plus && sfs_ops.readdirplus != NULL;
    memset(&fi, 0, sizeof fi);
    fi.fh = d->fh;
    stub_req_begin(&req, plus ? STUB_READDIRPLUS : STUB_READDIR, d->ino, size, fail);
    if (plus)
        sfs_ops.readdirplus(&req, d->ino, size, off, &fi);
    else
        sfs_ops.readdir(&req, d->ino, size, off, &fi);
    if (req.kind == STUB_R_BUF) {
        FZ_CHECK(off >= 0);
        n = parse_listing(d, &req, off, !fail, out);
    } else {
        FZ_REPLY(req.kind == STUB_R_ERR && (req.err == EINVAL ? off < 0 : req.err == ENOMEM), &req);
    }
    stub_req_end(&req);
    check_counts();
    return n;
}

/* READDIR from the start to the end, in buffers of @size. */
static void list_all(struct kdir *d, size_t size, struct namelist *out)
{
    off_t off = 0;

    for (int i = 0; i < SWEEP_READDIRS; i++) {
        if (do_readdir(d, size, off, i % 2, out) <= 0)
            return;
        off = (off_t)d->next_off;
    }
}

/* ---- extended attributes ------------------------------------------------ */

static const char *const xattr_names[] = {
    "user.speculo.id", "user.speculo.expires", "user.speculo.replaces", "user.speculo.state",
    "user.other",      "security.selinux",     "trusted.speculo.id",
};
#define NXNAMES (sizeof xattr_names / sizeof xattr_names[0])
#define NXOURS 4 /* the user.speculo ones */

/* A size query (@size 0) or a value; returns the length, or -1. */
static long xattr_req(int list, fuse_ino_t ino, const char *name, size_t size, char *val)
{
    struct fuse_req req;
    long len = -1;

    stub_req_begin(&req, list ? STUB_LISTXATTR : STUB_GETXATTR, ino, size, take_fail());
    if (list)
        sfs_ops.listxattr(&req, ino, size);
    else
        sfs_ops.getxattr(&req, ino, name, size);
    if (req.kind == STUB_R_XATTR || req.kind == STUB_R_BUF) {
        len = (long)req.len;
        if (req.kind == STUB_R_BUF)
            memcpy(val, req.buf, req.len);
    } else {
        FZ_REPLY(err_ok(req.err, ENODATA, ERANGE, EOPNOTSUPP, 0), &req);
        FZ_CHECK(req.err != ERANGE || size > 0);
        /* only the user namespace is the filesystem's */
        FZ_CHECK(req.err != EOPNOTSUPP || (!list && strncmp(name, "user.", 5) != 0));
    }
    stub_req_end(&req);
    return len;
}

/* A record's state, in the words of `speculo ls --all`. */
static void check_state(fuse_ino_t ino, const char *val, size_t len)
{
    static const char *const words[] = {"live", "expired", "obsolete"};
    int ok = len > 9 && memcmp(val, "obsolete>", 9) == 0;

    for (size_t i = 9; ok && i < len; i++) /* the value is not NUL-terminated */
        ok = val[i] >= '0' && val[i] <= '9';
    FZ_CHECK(sfs_ino_kind(ino) == SFS_RECORD);
    for (size_t i = 0; i < 3; i++)
        ok |= len == strlen(words[i]) && memcmp(val, words[i], len) == 0;
    FZ_CHECK(ok);
}

static void check_xattr_value(fuse_ino_t ino, size_t k, const char *val, size_t len)
{
    char id[32];

    FZ_CHECK(len > 0 && len < 32);
    if (k == 3) {
        check_state(ino, val, len);
        return;
    }
    for (size_t i = 0; i < len; i++)
        FZ_CHECK((val[i] >= '0' && val[i] <= '9') || (i == 0 && val[i] == '-' && k == 1));
    if (k == 0) {
        snprintf(id, sizeof id, "%" PRIu64, sfs_ino_id(ino));
        FZ_CHECK(len == strlen(id) && memcmp(val, id, len) == 0);
    }
}

static void check_xattr_list(fuse_ino_t ino, const char *list, size_t len)
{
    size_t pos = 0;

    FZ_CHECK(is_file_ino(ino) || len == 0);
    while (pos < len) {
        const char *n = list + pos;
        size_t l = strnlen(n, len - pos);
        int known = 0;
        FZ_CHECK(l > 0 && l < len - pos); /* NUL-terminated, inside */
        for (size_t k = 0; k < NXOURS; k++)
            known |= strcmp(n, xattr_names[k]) == 0;
        FZ_CHECK(known);
        FZ_CHECK(strcmp(n, xattr_names[3]) != 0 || sfs_ino_kind(ino) == SFS_RECORD);
        FZ_CHECK(pos > 0 || strcmp(n, xattr_names[0]) == 0); /* the id is always there */
        pos += l + 1;
    }
}

/* The size a query announces is the size of the value, and a buffer
 * smaller than that gets ERANGE. */
static void do_xattr(int list, fuse_ino_t ino, size_t k, size_t size)
{
    const char *name = xattr_names[k % NXNAMES];
    char val[XATTR_MAX + 1024];
    long want = xattr_req(list, ino, name, 0, val);
    long got;

    if (size > sizeof val)
        size = sizeof val;
    got = xattr_req(list, ino, name, size, val);
    FZ_CHECK(want >= 0 || got < 0);
    if (size == 0 || want < 0 || got < 0) {
        FZ_CHECK(size == 0 || want < 0 || (size_t)want > size);
        return;
    }
    FZ_CHECK(got == want && (size_t)got <= size);
    if (list)
        check_xattr_list(ino, val, (size_t)got);
    else
        check_xattr_value(ino, k % NXNAMES, val, (size_t)got);
}

/* ---- the rest ----------------------------------------------------------- */

static void do_statfs(void)
{
    struct fuse_req req;

    stub_req_begin(&req, STUB_STATFS, FUSE_ROOT_ID, 0, take_fail());
    sfs_ops.statfs(&req, FUSE_ROOT_ID);
    FZ_CHECK(req.kind == STUB_R_STATFS);
    FZ_CHECK((req.vfs.f_flag & ST_RDONLY) && req.vfs.f_namemax == 255);
    FZ_CHECK(req.vfs.f_files == nodes_count());
    stub_req_end(&req);
}

/* Every operation that would change something is the kernel's to refuse
 * (EROFS: the mount is read-only): none is in the table. */
static void do_refused(void)
{
    FZ_CHECK(sfs_ops.setattr == NULL && sfs_ops.mknod == NULL && sfs_ops.mkdir == NULL &&
             sfs_ops.unlink == NULL && sfs_ops.rmdir == NULL && sfs_ops.symlink == NULL &&
             sfs_ops.rename == NULL && sfs_ops.link == NULL && sfs_ops.write == NULL &&
             sfs_ops.create == NULL && sfs_ops.setxattr == NULL && sfs_ops.removexattr == NULL &&
             sfs_ops.fallocate == NULL);
}

/* ---- changes behind the filesystem's back ------------------------------ */

static void fz_junk(void)
{
    static const uint8_t few[] = "not a segment";
    char path[PATH_MAX + 64];

    fz_path(path, sizeof path, "d");
    mkdir(path, 0700);
    fz_path(path, sizeof path, "l");
    (void)symlink("s", path);
    fz_path(path, sizeof path, "f");
    mkfifo(path, 0600);
    fz_write(".s.gc.1", few, sizeof few);
    fz_write("bad name", few, sizeof few);
    fz_write("x", few, 0);
}

/* A writer takes "s" over (or creates it), commits, collects. No TTLs:
 * the target's outcome must not depend on the clock. */
static void fz_writer(unsigned arg)
{
    struct speculo_writer_options o = {.capacity = 16 << 10, .gc_min_dead_bytes = 1};
    struct speculo_commit_options named = {.name = "fz"};
    speculo_writer *w = NULL;
    uint64_t id = 0;

    for (int i = 0; i < K.nnames; i++)
        if (speculo_chunk_name_check(K.names[(int)(arg + (unsigned)i) % K.nnames].name) == 0) {
            named.name = K.names[(int)(arg + (unsigned)i) % K.nnames].name;
            break;
        }
    if (speculo_writer_open("s", &o, &w) != 0)
        return;
    (void)speculo_writer_put(w, "unnamed", 7, NULL, &id);
    (void)speculo_writer_put(w, "named", 5, &named, NULL);
    if (arg & 1)
        (void)speculo_writer_obsolete(w, id);
    if (arg & 2)
        (void)speculo_writer_gc(w);
    (void)speculo_writer_put(w, "last", 4, &named, NULL);
    speculo_writer_close(w);
}

static void fz_cut(unsigned arg)
{
    char path[PATH_MAX + 64];
    size_t sizes[4] = {0, SEG_HEADER_SIZE, K.file_size / 2 & ~(size_t)4095,
                       K.file_size > 0 ? K.file_size - 1 : 0};

    fz_path(path, sizeof path, "s");
    (void)truncate(path, (off_t)sizes[arg % 4]);
}

static void fz_file(unsigned op, unsigned arg)
{
    static const mode_t modes[] = {0600, 0400, 0640, 0644, 0000, 0620, 0606, 0444};
    char path[PATH_MAX + 64], tmp[PATH_MAX + 64];

    if (getenv("FUSE_STUB_TRACE") != NULL)
        fprintf(stderr, "fuzz_fs: change %u (fuzz_fs.h: enum fz_file_op), arg %u\n",
                op % FZF_NOPS, arg);
    /* our own reader must not watch "s" change (a cut would fault it) */
    speculo_reader_close(K.ref);
    K.ref = NULL;
    K.epoch++;
    fz_path(path, sizeof path, "s");
    switch (op % FZF_NOPS) {
    case FZF_REPLACE:
        fz_path(tmp, sizeof tmp, ".s.new");
        if (fz_write(".s.new", K.file, K.file_size) == 0)
            (void)rename(tmp, path);
        break;
    case FZF_REMOVE:
        if (arg & 1)
            (void)speculo_segment_remove("s", SPECULO_REMOVE_FORCE);
        else
            (void)unlink(path);
        break;
    case FZF_TRUNCATE:
        K.cut = 1;
        K.clobber_epoch = K.epoch;
        fz_cut(arg);
        break;
    case FZF_WRITER:
        fz_writer(arg);
        break;
    case FZF_SECOND:
        fz_write("t", K.file, K.file_size);
        break;
    case FZF_JUNK:
        fz_junk();
        break;
    case FZF_CHMOD:
        (void)chmod(path, modes[arg % (sizeof modes / sizeof modes[0])]);
        break;
    default: /* FZF_RESTORE: in place, so mappings see it shrink and change */
        K.cut = 1;
        K.clobber_epoch = K.epoch;
        fz_write("s", K.file, K.file_size);
        break;
    }
}

/* notify.c's threads stop (no segment is followed: its chunk names may no
 * longer be cached), or start again (segments are followed afresh). */
static void fz_notify(void)
{
    struct sfs_seg *seg;

    fz_notify_on = !fz_notify_on;
    for (uint64_t slot = 1; (seg = segtab_get(slot)) != NULL; slot++)
        seg->follow = fz_notify_on ? SFS_FOLLOW_NONE : SFS_FOLLOW_OFF;
}

/* ---- choosing from the program ------------------------------------------ */

static fuse_ino_t pick_ino(struct prog *g)
{
    /* besides what the kernel holds: inodes it never looked up (the
     * filesystem must answer without its tables), and junk */
    const fuse_ino_t extra[] = {
        FUSE_ROOT_ID,          sfs_ino(0, 7),        sfs_ino(1, 0),
        sfs_ino(1, 1),         sfs_ino(1, 2),        sfs_ino(1, SFS_INFO_LOW),
        sfs_ino(1, SFS_CHUNK_ID_MAX), sfs_ino(2, 0), sfs_ino(999, 0),
        sfs_ino(1, SFS_ALL_LOW),      sfs_ino(1, SFS_ALL_BIT | 1), sfs_ino(1, SFS_ALL_BIT),
    };
    unsigned n = (unsigned)K.ninos + sizeof extra / sizeof extra[0];
    unsigned b = pb(g) % n;

    return b < (unsigned)K.ninos ? K.inos[b].ino : extra[b - (unsigned)K.ninos];
}

static char long_name[300];

static const char *fixed_name(unsigned b)
{
    static const char *const fixed[] = {
        "s", "t", ".info", ".", "..", ".s.gc.1", "x", "d", "l", "f", "bad name", "a/b", "",
        "00000000000000000000", "00000000000000000001", "00000000000000000002",
        "00000000000000000042", "18446744073709551615", "99999999999999999999",
        "0000000000000000001", "000000000000000000001", "first", "third", "n0", "_x",
        "temp.c-1", "name", "a", "fz", "_", "1abc", ".all",
    };
    size_t nfixed = sizeof fixed / sizeof fixed[0];

    if (b < nfixed)
        return fixed[b];
    /* 199..256 letters: around the segment and chunk name limits */
    memset(long_name, 'a', sizeof long_name);
    long_name[199 + (b - nfixed) % 58] = '\0';
    return long_name;
}

/* A name: one listed before (its directory too, in *parent), a fixed
 * one, or bytes of the program. */
static const char *pick_name(struct prog *g, char *buf, size_t size, fuse_ino_t *parent)
{
    unsigned b = pb(g);
    size_t len;

    if (b < 0x80 && K.nnames > 0) {
        *parent = K.names[b % (unsigned)K.nnames].parent;
        return K.names[b % (unsigned)K.nnames].name;
    }
    if (b < 0xf0)
        return fixed_name(b & 0x7f);
    len = pb(g) % size;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)pb(g);
    buf[len] = '\0';
    return buf;
}

static size_t pick_size(struct prog *g, uint64_t file_size)
{
    switch (pb(g) % 7) {
    case 0: return 0;
    case 1: return 1;
    case 2: return 4096;
    case 3: return 131072;
    case 4: return (size_t)pu64(g, 2);
    case 5: return (size_t)file_size;
    default: return 100;
    }
}

static off_t pick_off(struct prog *g, uint64_t file_size)
{
    switch (pb(g) % 7) {
    case 0: return 0;
    case 1: return file_size > 0 ? (off_t)file_size - 1 : 0;
    case 2: return (off_t)file_size;
    case 3: return (off_t)pu64(g, 3);
    case 4: return -1;
    case 5: return (off_t)(pb(g) * 4096u);
    default: return (off_t)pu64(g, 8); /* anything, negative included */
    }
}

/* ---- the program's operations -------------------------------------------- */

static void op_lookup(struct prog *g)
{
    char buf[256];
    fuse_ino_t parent = pick_ino(g);
    const char *name = pick_name(g, buf, sizeof buf, &parent);

    (void)do_lookup(parent, name);
}

static void op_open(struct prog *g)
{
    static const int flags[] = {O_RDONLY, O_RDONLY, O_RDONLY | O_NONBLOCK, O_WRONLY,
                                O_RDWR,   O_RDONLY | O_TRUNC};
    fuse_ino_t ino = pick_ino(g);

    (void)do_open(ino, flags[pb(g) % (sizeof flags / sizeof flags[0])]);
}

static void op_read(struct prog *g)
{
    struct kfile *f;
    size_t size;

    if (K.nfiles == 0)
        return;
    f = &K.files[pb(g) % (unsigned)K.nfiles];
    size = pick_size(g, f->size);
    do_read(f, size, pick_off(g, f->size));
}

static void op_readdir(struct prog *g)
{
    struct kdir *d;
    unsigned how;
    size_t size;
    off_t off;

    if (K.ndirs == 0)
        return;
    d = &K.dirs[pb(g) % (unsigned)K.ndirs];
    how = pb(g);
    size = pick_size(g, 512);
    switch (how % 4) {
    case 0: off = (off_t)d->next_off; break;      /* go on */
    case 1: off = 0; break;                       /* rewinddir() */
    case 2: off = (off_t)pu64(g, 8); break;       /* seekdir() anywhere */
    default: off = (off_t)d->next_off + (off_t)(how >> 2); break;
    }
    (void)do_readdir(d, size, off, (how >> 2) & 1, NULL);
}

static void op_forget(struct prog *g)
{
    struct kino *k;
    uint64_t n;
    unsigned b = pb(g);

    if (K.ninos == 0)
        return;
    k = &K.inos[b % (unsigned)K.ninos];
    n = 1 + pb(g) % k->nlookup;
    send_forget(k->ino, n, b & 0x80);
    k->nlookup -= n;
    if (k->nlookup == 0)
        kino_drop(k);
}

static void run_op(struct prog *g)
{
    switch (pb(g) % FZ_NOPS) {
    case FZ_LOOKUP: op_lookup(g); break;
    case FZ_GETATTR: (void)do_getattr(pick_ino(g), NULL); break;
    case FZ_OPEN: op_open(g); break;
    case FZ_READ: op_read(g); break;
    case FZ_RELEASE:
        if (K.nfiles > 0)
            do_release(&K.files[pb(g) % (unsigned)K.nfiles]);
        break;
    case FZ_OPENDIR: (void)do_opendir(pick_ino(g)); break;
    case FZ_READDIR: op_readdir(g); break;
    case FZ_RELEASEDIR:
        if (K.ndirs > 0)
            do_releasedir(&K.dirs[pb(g) % (unsigned)K.ndirs]);
        break;
    case FZ_GETXATTR: {
        fuse_ino_t ino = pick_ino(g);
        unsigned k = pb(g);
        do_xattr(0, ino, k, pick_size(g, 32));
        break;
    }
    case FZ_LISTXATTR: {
        fuse_ino_t ino = pick_ino(g);
        do_xattr(1, ino, 0, pick_size(g, 64));
        break;
    }
    case FZ_FORGET: op_forget(g); break;
    case FZ_STATFS: do_statfs(); break;
    case FZ_REFUSED: /* its operands, as the corpus has them */
        (void)pb(g);
        (void)pick_ino(g);
        do_refused();
        break;
    case FZ_FILE: {
        unsigned op = pb(g);
        fz_file(op, pb(g));
        break;
    }
    case FZ_NOTIFY: fz_notify(); break;
    default: K.fail_next = 1; break;
    }
    check_counts();
}

/* ---- the sweep: everything, once ------------------------------------------ */

static void sweep_file(fuse_ino_t ino)
{
    struct kfile *f;

    for (size_t k = 0; k < NXOURS; k++)
        do_xattr(0, ino, k, XATTR_MAX);
    do_xattr(1, ino, 0, 256);
    f = do_open(ino, O_RDONLY);
    if (f == NULL)
        return;
    do_read(f, 131072, 0);
    if (f->size > 1)
        do_read(f, 4096, (off_t)f->size - 1);
    do_read(f, 10, (off_t)f->size);
}

static void sweep_segment(fuse_ino_t dir)
{
    static struct namelist list;
    struct kdir *d = do_opendir(dir);
    fuse_ino_t ino;

    if (d == NULL)
        return;
    list.n = 0;
    list_all(d, 512, &list); /* a few entries per READDIR */
    ino = do_lookup(dir, ".info");
    if (ino != 0)
        sweep_file(ino);
    for (int i = 0; i < list.n; i++) {
        ino = do_lookup(dir, list.name[i]);
        if (ino != 0 && strcmp(list.name[i], ".info") != 0 && !is_dir_ino(ino))
            sweep_file(ino);
    }
    do_releasedir(d);
}

/* .all: every record, live or dead, the same way. */
static void sweep_all(fuse_ino_t dir)
{
    fuse_ino_t all = do_lookup(dir, ".all");

    if (all != 0)
        sweep_segment(all);
}

static void sweep(void)
{
    static struct namelist list;
    struct kdir *root = do_opendir(FUSE_ROOT_ID);

    if (root == NULL)
        return;
    list.n = 0;
    list_all(root, 4096, &list);
    for (int i = 0; i < list.n; i++) {
        fuse_ino_t ino = do_lookup(FUSE_ROOT_ID, list.name[i]);
        if (ino != 0) {
            sweep_segment(ino);
            sweep_all(ino);
        }
    }
    do_releasedir(root);
}

/* ---- one input ------------------------------------------------------------ */

/* As at unmount: the kernel releases what is open and forgets everything
 * (half of it in batches); the filesystem must then hold no chunk inode. */
static void unmount(void)
{
    while (K.nfiles > 0)
        do_release(&K.files[K.nfiles - 1]);
    while (K.ndirs > 0)
        do_releasedir(&K.dirs[K.ndirs - 1]);
    while (K.ninos > 0) {
        struct kino *k = &K.inos[K.ninos - 1];
        send_forget(k->ino, k->nlookup, K.ninos % 2);
        kino_drop(k);
    }
    FZ_CHECK(nodes_count() == 0);
    if (sfs_ops.destroy != NULL)
        sfs_ops.destroy(NULL);
    sfs_ops_cleanup();
    segtab_fini();
    nodes_fini();
    speculo_reader_close(K.ref);
    K.ref = NULL;
}

/* Does @s hold the segment directory's path followed by '/' or the end?
 * (By hand: libFuzzer watches the C library's string compares and would
 * learn the path as a word to put in inputs.) */
static int in_fz_dir(const char *s)
{
    for (; *s != '\0'; s++) {
        size_t i = 0;
        while (fz_dir[i] != '\0' && s[i] == fz_dir[i])
            i++;
        if (fz_dir[i] == '\0' && (s[i] == '/' || s[i] == '\0' || s[i] == '\n'))
            return 1;
    }
    return 0;
}

/* Descriptors and mappings of files in the segment directory. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char target[PATH_MAX];
        ssize_t l = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (l <= 0)
            continue;
        target[l] = '\0';
        n += in_fz_dir(target);
    }
    closedir(d);
    return n;
}

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[PATH_MAX + 256];
    int n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        n += in_fz_dir(line);
    fclose(f);
    return n;
}

/* The input: the segment file, and the program when the trailer says so. */
static void split_input(const uint8_t *data, size_t size, struct prog *g)
{
    memset(g, 0, sizeof *g);
    K.file = data;
    K.file_size = size;
    if (size >= FZFS_TRAILER && memcmp(data + size - FZFS_MAGIC_LEN, FZFS_MAGIC,
                                       FZFS_MAGIC_LEN) == 0) {
        size_t n = data[size - FZFS_TRAILER];
        if (n <= size - FZFS_TRAILER) {
            g->p = data + size - FZFS_TRAILER - n;
            g->n = n;
            K.file_size = size - FZFS_TRAILER - n;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuse_conn_info conn;
    struct prog g;

    if (size > FZ_MAX_INPUT || fz_init() != 0)
        return 0;
    memset(&K, 0, sizeof K);
    fz_notify_on = 1;
    split_input(data, size, &g);
    t_empty_dir(fz_dir); /* files, and the junk directory */
    if (fz_write("s", K.file, K.file_size) != 0)
        return 0;
    FZ_CHECK(segtab_init(fz_dir) == 0 && nodes_init() == 0);
    memset(&conn, 0, sizeof conn);
    sfs_ops.init(NULL, &conn);
    sweep();
    for (int i = 0; i < FZ_MAX_OPS && g.i < g.n; i++)
        run_op(&g);
    unmount();
    t_empty_dir(fz_dir);
    FZ_CHECK(count_fds() == 0);
    FZ_CHECK(count_maps() == 0);
    return 0;
}
