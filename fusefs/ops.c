/* The FUSE low-level operations of speculofs: / the segment directory,
 * /SEG/ one file per live chunk (named, or by its id in 20 digits), .info,
 * and .all/, one file per record still in the segment's file, live or dead,
 * by its id. What the kernel may cache: see sfs.h. Nothing here writes: the
 * mount is read-only, and the kernel refuses every change with EROFS. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "sfs.h"

enum sfs_kind sfs_ino_kind(fuse_ino_t ino)
{
    uint64_t low = sfs_ino_low(ino);

    if (ino == FUSE_ROOT_ID)
        return SFS_ROOT;
    if (sfs_ino_slot(ino) == 0)
        return SFS_BAD;
    if (low == 0)
        return SFS_SEGDIR;
    if (low == SFS_INFO_LOW)
        return SFS_INFO;
    if (low == SFS_ALL_LOW)
        return SFS_ALLDIR;
    return low & SFS_ALL_BIT ? SFS_RECORD : SFS_CHUNK;
}

/* Inodes the kernel counts lookups of, which nodes.c records. */
static int counted(fuse_ino_t ino)
{
    enum sfs_kind kind = sfs_ino_kind(ino);

    return kind == SFS_CHUNK || kind == SFS_RECORD;
}

/* What the kernel is told when the library says no. Anything that means
 * "this segment cannot be read" (corrupt, other version, unsafe, a
 * truncated mapping) is EIO. */
static int fs_err(int rc)
{
    switch (rc) {
    case -ENOENT:
    case -ENAMETOOLONG:
    case -ENOMEM:
    case -EACCES:
    case -ESTALE:
    case -EOVERFLOW:
        return -rc;
    default:
        return EIO;
    }
}

static struct timespec ns_to_ts(int64_t ns)
{
    int64_t s = ns / 1000000000, r = ns % 1000000000;

    if (r < 0) {
        r += 1000000000;
        s--;
    }
    return (struct timespec){.tv_sec = (time_t)s, .tv_nsec = (long)r};
}

/* A directory made from @src (the segment directory or a segment file). */
static void dir_attr(struct stat *a, fuse_ino_t ino, const struct stat *src)
{
    *a = (struct stat){.st_ino = ino,
                       .st_mode = S_IFDIR | sfs_allowed(src->st_mode, 0555),
                       .st_nlink = 2,
                       .st_uid = src->st_uid,
                       .st_gid = src->st_gid,
                       .st_atim = src->st_atim,
                       .st_mtim = src->st_mtim,
                       .st_ctim = src->st_ctim,
                       .st_blksize = 4096};
}

static void info_attr(struct stat *a, fuse_ino_t ino, const struct stat *file, size_t size)
{
    dir_attr(a, ino, file);
    a->st_mode = S_IFREG | sfs_allowed(file->st_mode, 0444);
    a->st_nlink = 1;
    a->st_size = (off_t)size;
    a->st_blocks = (blkcnt_t)((size + 511) / 512);
}

static void chunk_attr(struct stat *a, fuse_ino_t ino, const struct sfs_meta *m)
{
    struct timespec t = ns_to_ts(m->committed_ns);

    *a = (struct stat){.st_ino = ino,
                       .st_mode = S_IFREG | m->mode,
                       .st_nlink = 1,
                       .st_uid = m->uid,
                       .st_gid = m->gid,
                       .st_size = (off_t)m->size,
                       .st_blocks = (blkcnt_t)((m->size + 511) / 512),
                       .st_blksize = 4096,
                       .st_atim = t,
                       .st_mtim = t,
                       .st_ctim = t};
}

/* The segment @ino belongs to, still current under its name (fills @st);
 * else ESTALE: the kernel may still cache the root's name of an
 * incarnation that died, and walks the path again asking for every name. */
static int seg_of(fuse_ino_t ino, struct sfs_seg **seg, struct stat *st)
{
    int rc;

    *seg = segtab_get(sfs_ino_slot(ino));
    if (*seg == NULL)
        return -ENOENT;
    rc = seg_check(*seg, st);
    return rc == -ENOENT ? -ESTALE : rc;
}

/* The length of the segment's description (the size of .info), or its
 * text in a buffer of its own (@text not NULL: the snapshot of an open). */
static int info_text(const struct sfs_seg *seg, char **text, size_t *len)
{
    size_t size = text != NULL ? 4096 : 0;
    char *buf = NULL;
    int rc = -EIO;

    for (int tries = 0; tries < 4; tries++) {
        if (size > 0 && (buf = malloc(size)) == NULL)
            return -ENOMEM;
        rc = g_describe(seg->name, buf, size);
        if (rc < 0 || (size_t)rc < size || text == NULL)
            break;
        free(buf); /* longer than the buffer (it may grow meanwhile): again */
        buf = NULL;
        size = (size_t)rc + 1;
    }
    if (rc < 0 || (text != NULL && buf == NULL)) {
        free(buf);
        return rc < 0 ? rc : -EIO;
    }
    if (text != NULL)
        *text = buf;
    *len = (size_t)rc;
    return 0;
}

/* Exactly 20 digits, a non-zero value that fits 64 bits. */
static int parse_idname(const char *name, uint64_t *id)
{
    uint64_t v = 0;

    if (strlen(name) != SFS_IDNAME_LEN)
        return 0;
    for (const char *p = name; *p; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *id = v;
    return v != 0;
}

static void meta_owner(struct sfs_meta *m, const struct stat *file)
{
    m->uid = file->st_uid;
    m->gid = file->st_gid;
    m->mode = sfs_allowed(file->st_mode, 0444);
}

/* The live chunk @id (when @name is NULL) or named @name, with what its
 * attributes need. A named chunk's file is held (holds.c) for the OPEN
 * that may follow. */
static int fetch_chunk(struct sfs_seg *seg, const char *name, uint64_t id, struct sfs_meta *m)
{
    speculo_reader *r;
    speculo_chunk c;
    uint64_t rep = 0;
    int rc = seg_reader_take(seg, &r);

    if (rc != 0)
        return rc;
    rc = g_fetch(r, name, id, &c, &rep);
    if (rc == 0 && !seg_reads(seg, r))
        rc = -ENOENT;
    if (rc == 0)
        *m = sfs_meta_of(&c, rep);
    if (rc == 0 && name != NULL)
        (void)hold_keep(seg, &r, NULL); /* without it, only the OPEN may fail */
    seg_reader_give(seg, r, rc);
    if (rc == 0 && (m->id == 0 || m->id > SFS_CHUNK_ID_MAX))
        return -EOVERFLOW;
    return rc;
}

/* The live chunk shown as @name in @seg: by padded id if unnamed, else by
 * name. A named chunk is not found by its id: it appears once. */
static int find_chunk(struct sfs_seg *seg, const char *name, struct sfs_meta *m)
{
    uint64_t id = 0;
    int rc;

    if (parse_idname(name, &id)) {
        rc = fetch_chunk(seg, NULL, id, m);
        return rc == 0 && m->named ? -ENOENT : rc;
    }
    rc = speculo_chunk_name_check(name);
    if (rc != 0)
        return rc == -ENAMETOOLONG ? rc : -ENOENT;
    return fetch_chunk(seg, name, 0, m);
}

/* Record @id of @seg, live or dead, while it is in the segment's file:
 * what its attributes need, and (@rec not NULL) its state. */
static int fetch_record(struct sfs_seg *seg, uint64_t id, struct sfs_meta *m,
                        struct speculo_record *rec)
{
    struct speculo_record got;
    speculo_reader *r;
    int rc = seg_reader_take(seg, &r);

    if (rc != 0)
        return rc;
    rc = g_record(r, id, 0, &got);
    if (rc == 0 && !seg_reads(seg, r))
        rc = -ENOENT;
    seg_reader_give(seg, r, rc);
    if (rc != 0)
        return rc;
    *m = sfs_meta_of(&got.chunk, got.replaces);
    if (rec != NULL)
        *rec = got; /* its state; no pointer into the mapping is used */
    return id > SFS_CHUNK_ID_MAX ? -EOVERFLOW : 0;
}

/* A chunk's or record's attributes: from the inode table while the kernel
 * holds the inode (even after the chunk died), else from the segment. */
static int chunk_meta(fuse_ino_t ino, struct sfs_meta *m)
{
    struct sfs_seg *seg;
    struct stat st;
    int rc;

    if (node_get(ino, m) == 0)
        return 0;
    rc = seg_of(ino, &seg, &st);
    if (rc == 0 && sfs_ino_kind(ino) == SFS_RECORD)
        rc = fetch_record(seg, sfs_ino_id(ino), m, NULL);
    else if (rc == 0)
        rc = fetch_chunk(seg, NULL, sfs_ino_low(ino), m);
    if (rc == 0)
        meta_owner(m, &st);
    return rc;
}

/* Take @seg's entries_lock shared; if the reply may let the kernel cache
 * chunk names (@names), have the segment followed first (notify.c). */
static void entries_hold(struct sfs_seg *seg, int names)
{
    pthread_rwlock_rdlock(&seg->entries_lock);
    if (names && seg->follow == SFS_FOLLOW_NONE) {
        pthread_rwlock_unlock(&seg->entries_lock);
        notify_follow(seg);
        pthread_rwlock_rdlock(&seg->entries_lock);
    }
}

/* The entry of chunk @m: its name cached 0 s if named, or if no notifier
 * can take it back; else SFS_ENTRY_TIMEOUT, never past the expiry less
 * SFS_EXPIRY_MARGIN_NS, so that expiry needs no notification. */
static void chunk_entry(struct fuse_entry_param *e, fuse_ino_t ino, const struct sfs_meta *m,
                        int followed)
{
    struct timespec now;
    double left = SFS_ENTRY_TIMEOUT;

    if (m->named || !followed) {
        left = 0;
    } else if (m->expires_ns != 0) {
        clock_gettime(CLOCK_REALTIME, &now);
        left = (double)(m->expires_ns - (now.tv_sec * INT64_C(1000000000) + now.tv_nsec) -
                        SFS_EXPIRY_MARGIN_NS) /
               1e9;
        if (left > SFS_ENTRY_TIMEOUT)
            left = SFS_ENTRY_TIMEOUT;
        if (left < 0)
            left = 0;
    }
    *e = (struct fuse_entry_param){
        .ino = ino, .generation = 1, .entry_timeout = left, .attr_timeout = SFS_CHUNK_ATTR_TIMEOUT};
    chunk_attr(&e->attr, ino, m);
}

/* ------------------------------------------------------------------ */
/* lookup, forget, getattr */

/* A segment's name may be cached while inotify watches the directory, not
 * an unreadable one's (it may become readable with no event). */
static void lookup_segment(fuse_req_t req, const char *name)
{
    struct fuse_entry_param e = {.generation = 1, .attr_timeout = SFS_DIR_ATTR_TIMEOUT};
    struct sfs_seg *seg;
    struct stat st;
    int rc = segtab_lookup(name, &seg, &st);

    if (rc != 0) {
        fuse_reply_err(req, fs_err(rc));
        return;
    }
    e.ino = sfs_ino(seg->slot, 0);
    e.entry_timeout = notify_root_ok() && !seg->bad ? SFS_ENTRY_TIMEOUT : 0;
    dir_attr(&e.attr, e.ino, &st);
    fuse_reply_entry(req, &e);
}

/* .all means the same directory for as long as the incarnation lives: its
 * name may be cached (the segment's own name is taken back when it dies). */
static void lookup_all_dir(fuse_req_t req, const struct sfs_seg *seg, const struct stat *file)
{
    struct fuse_entry_param e = {.ino = sfs_ino(seg->slot, SFS_ALL_LOW),
                                 .generation = 1,
                                 .entry_timeout = SFS_ENTRY_TIMEOUT,
                                 .attr_timeout = SFS_DIR_ATTR_TIMEOUT};

    dir_attr(&e.attr, e.ino, file);
    fuse_reply_entry(req, &e);
}

/* A record in .all: its name is never cached, as the collector drops it
 * with no notification (no entries_lock, no notifier); its attributes are,
 * as its bytes never change. Counted in the inode table as a chunk is. */
static void lookup_in_all(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;
    struct sfs_seg *seg;
    struct sfs_meta m;
    struct stat st;
    uint64_t id;
    int rc = seg_of(parent, &seg, &st);

    if (rc == 0 && !parse_idname(name, &id))
        rc = -ENOENT;
    if (rc == 0)
        rc = fetch_record(seg, id, &m, NULL);
    if (rc == 0) {
        meta_owner(&m, &st);
        chunk_entry(&e, sfs_ino(seg->slot, SFS_ALL_BIT | id), &m, 0);
        rc = node_ref(e.ino, &m);
    }
    if (rc != 0)
        fuse_reply_err(req, fs_err(rc));
    else if (fuse_reply_entry(req, &e) != 0)
        node_forget(e.ino, 1);
}

/* A chunk is looked up with entries_lock held shared from before the check
 * that it is live to after the reply (notify.c); it is counted in the
 * inode table before the reply, uncounted if the reply did not reach the
 * kernel (the request was interrupted). */
static void lookup_in_segment(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e = {.generation = 1};
    struct sfs_seg *seg;
    struct sfs_meta m;
    struct stat st;
    uint64_t id;
    size_t len;
    int rc = seg_of(parent, &seg, &st);

    if (rc == 0 && strcmp(name, ".info") == 0 && (rc = info_text(seg, NULL, &len)) == 0) {
        e.ino = sfs_ino(seg->slot, SFS_INFO_LOW);
        info_attr(&e.attr, e.ino, &st, len);
        fuse_reply_entry(req, &e);
        return;
    }
    if (rc == 0 && !seg->bad && strcmp(name, ".all") == 0) {
        lookup_all_dir(req, seg, &st);
        return;
    }
    if (rc == 0 && name[0] == '.')
        rc = -ENOENT;
    if (rc != 0) {
        fuse_reply_err(req, fs_err(rc));
        return;
    }
    entries_hold(seg, parse_idname(name, &id));
    rc = find_chunk(seg, name, &m);
    if (rc == 0) {
        meta_owner(&m, &st);
        chunk_entry(&e, sfs_ino(seg->slot, m.id), &m, seg->follow == SFS_FOLLOW_ON);
        rc = node_ref(e.ino, &m);
    }
    if (rc != 0)
        fuse_reply_err(req, fs_err(rc));
    else if (fuse_reply_entry(req, &e) != 0)
        node_forget(e.ino, 1);
    pthread_rwlock_unlock(&seg->entries_lock);
}

static void sfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    enum sfs_kind kind = sfs_ino_kind(parent);

    if (kind == SFS_ROOT)
        lookup_segment(req, name);
    else if (kind == SFS_SEGDIR)
        lookup_in_segment(req, parent, name);
    else if (kind == SFS_ALLDIR)
        lookup_in_all(req, parent, name);
    else
        fuse_reply_err(req, ENOTDIR);
}

/* Only chunk and record inodes are counted: the root, segment and .all
 * directories and .info files are described by the segment table, which
 * is never freed. */
static void sfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    if (counted(ino))
        node_forget(ino, nlookup);
    fuse_reply_none(req);
}

/* A batch, without the request libfuse would make for each forget. */
static void sfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        if (counted(forgets[i].ino))
            node_forget(forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static int getattr_of(fuse_ino_t ino, struct stat *a, double *timeout)
{
    struct sfs_seg *seg;
    struct sfs_meta m;
    struct stat st;
    size_t len;
    int rc;

    *timeout = SFS_DIR_ATTR_TIMEOUT;
    switch (sfs_ino_kind(ino)) {
    case SFS_ROOT:
        /* The segment directory removed under the mount: an empty,
         * unreadable root rather than an error the kernel cannot place. */
        if (lstat(segtab_dir(), &st) != 0)
            st = (struct stat){.st_uid = getuid(), .st_gid = getgid()};
        dir_attr(a, ino, &st);
        return 0;
    case SFS_SEGDIR:
    case SFS_ALLDIR:
        rc = seg_of(ino, &seg, &st);
        if (rc == 0)
            dir_attr(a, ino, &st);
        return rc;
    case SFS_INFO:
        *timeout = 0;
        rc = seg_of(ino, &seg, &st);
        if (rc == 0)
            rc = info_text(seg, NULL, &len);
        if (rc == 0)
            info_attr(a, ino, &st, len);
        return rc;
    case SFS_CHUNK:
    case SFS_RECORD:
        *timeout = SFS_CHUNK_ATTR_TIMEOUT;
        rc = chunk_meta(ino, &m);
        if (rc == 0)
            chunk_attr(a, ino, &m);
        return rc;
    default:
        return -ENOENT;
    }
}

static void sfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat a;
    double timeout;
    int rc = getattr_of(ino, &a, &timeout);

    (void)fi;
    if (rc != 0)
        fuse_reply_err(req, fs_err(rc));
    else
        fuse_reply_attr(req, &a, timeout);
}

/* ------------------------------------------------------------------ */
/* handles the kernel has not released */

/* The handles open, for sfs_ops_cleanup(): when a signal ends the loop,
 * the kernel may not have released them all. */
struct hlink {
    struct hlink *prev, *next;
    void (*destroy)(struct hlink *);
};

static struct hlink live = {&live, &live, NULL};
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

static void live_add(struct hlink *l, void (*destroy)(struct hlink *))
{
    l->destroy = destroy;
    pthread_mutex_lock(&live_lock);
    l->next = live.next;
    l->prev = &live;
    live.next->prev = l;
    live.next = l;
    pthread_mutex_unlock(&live_lock);
}

static void live_del(struct hlink *l)
{
    pthread_mutex_lock(&live_lock);
    l->prev->next = l->next;
    l->next->prev = l->prev;
    pthread_mutex_unlock(&live_lock);
}

/* No worker runs: each handle's destroy takes it off the list. */
void sfs_ops_cleanup(void)
{
    while (live.next != &live)
        live.next->destroy(live.next);
}

/* ------------------------------------------------------------------ */
/* files: .info and chunks */

/* An open file. A RELEASE may come while the thread that answered the
 * last READ is still returning from the reply: the handle, and the buffer
 * the reply was made from, live until both are done with it. */
struct fh {
    struct hlink link;         /* first: see live_add() */
    atomic_uint refs;          /* the open file, and each READ in progress */
    struct sfs_hold *hold;     /* a chunk's file, kept mapped: data valid */
    const unsigned char *data; /* the chunk, in the hold's mapping */
    size_t size;
    atomic_int broken; /* the mapping faulted: EIO from now on */
    char *text;        /* .info: the snapshot taken at open */
    int fd;            /* the hold's file, to splice from (or -1) */
    uint64_t foff;     /* where data is in it */
};

static void fh_free(struct fh *h)
{
    live_del(&h->link);
    hold_put(h->hold);
    free(h->text);
    free(h);
}

static void fh_destroy(struct hlink *l)
{
    fh_free((struct fh *)(void *)l);
}

static void fh_put(struct fh *h)
{
    /* acq_rel: the last one out sees every other holder's use of h */
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1)
        fh_free(h);
}

/* Chunk @ino of @seg as OPEN may serve it (what the kernel looked up, @m;
 * NULL if unknown), in the segment's current file or, for a named chunk
 * dropped from it, in a file held since its LOOKUP: *@hold is that file,
 * with a reference, and @c the chunk in it, valid until the release. A
 * record of .all is served from the current file whatever its state. */
static int pin_chunk(struct sfs_seg *seg, fuse_ino_t ino, const struct sfs_meta *m,
                     struct sfs_hold **hold, speculo_chunk *c)
{
    uint64_t id = sfs_ino_id(ino);
    unsigned flags = sfs_ino_kind(ino) == SFS_RECORD ? SFS_GET_ANY : SPECULO_GET_SUPERSEDED;
    speculo_reader *r;
    int rc = seg_reader_take(seg, &r);

    if (rc != 0)
        return rc;
    rc = g_fetch_version(r, id, flags, c);
    if (rc == -ENOENT && m != NULL && m->named && flags != SFS_GET_ANY) {
        rc = hold_search(seg, id, hold, c); /* collected since its LOOKUP */
    } else {
        if (rc == 0 && !seg_reads(seg, r))
            rc = -ESTALE;
        if (rc == 0)
            rc = hold_keep(seg, &r, hold);
        if (rc == 0)
            rc = hold_fetch(*hold, id, flags, c);
    }
    seg_reader_give(seg, r, rc);
    return rc;
}

/* Served from a held file (holds.c): its bytes stay mapped until the
 * release. A version replaced since the LOOKUP of its name (in this same
 * open(2): named chunks' names are never cached) still opens; anything else
 * not live, or not the chunk the kernel was told of, gives ESTALE, and the
 * kernel walks the path again (DESIGN-speculofs.md, "Open files keep their
 * bytes"). A record of .all opens while it is in the file, else ENOENT. */
static int open_chunk(fuse_ino_t ino, struct fh *h, struct fuse_file_info *fi)
{
    struct sfs_seg *seg;
    struct sfs_meta m;
    struct stat st;
    speculo_chunk c;
    int known = node_get(ino, &m) == 0;
    int rc = seg_of(ino, &seg, &st);

    if (rc == 0 && seg->bad)
        rc = -EIO;
    if (rc == 0)
        rc = pin_chunk(seg, ino, known ? &m : NULL, &h->hold, &c);
    if (rc == 0 && known && (m.committed_ns != c.committed_ns || m.size != c.size))
        rc = -ESTALE;
    if (rc != 0)
        return rc == -ENOENT && sfs_ino_kind(ino) == SFS_CHUNK ? -ESTALE : rc;
    h->data = c.data;
    h->size = c.size;
    h->fd = hold_file(h->hold, seg->name, &c, &h->foff);
    fi->keep_cache = 1;
    fi->noflush = 1;
    return 0;
}

static void sfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    enum sfs_kind kind = sfs_ino_kind(ino);
    struct sfs_seg *seg;
    struct stat st;
    struct fh *h;
    int rc;

    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        fuse_reply_err(req, EROFS); /* only if the mount was made writable again */
        return;
    }
    if (kind != SFS_INFO && !counted(ino)) {
        fuse_reply_err(req, kind == SFS_BAD ? ENOENT : EISDIR);
        return;
    }
    if ((h = calloc(1, sizeof *h)) == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    atomic_init(&h->refs, 1);
    h->fd = -1;
    live_add(&h->link, fh_destroy);
    if (kind != SFS_INFO) {
        rc = open_chunk(ino, h, fi);
    } else if ((rc = seg_of(ino, &seg, &st)) == 0) {
        rc = info_text(seg, &h->text, &h->size);
        fi->direct_io = 1; /* the size changes between snapshots */
    }
    if (rc != 0) {
        fh_free(h);
        fuse_reply_err(req, fs_err(rc));
        return;
    }
    fi->fh = (uintptr_t)h;
    if (fuse_reply_open(req, fi) != 0)
        fh_free(h);
}

/* A chunk's bytes: spliced from its file when they are many (splice.c),
 * else straight from the mapping, probed under the guard; the kernel
 * copies them, not us. A file cut under us: EIO, from then on. Returns an
 * error for the caller to send, or 0 when replied. */
static int reply_chunk(fuse_req_t req, struct fh *h, off_t off, size_t n)
{
    const char *src = (const char *)h->data + off;
    int rc = 1;

    /* relaxed: only this flag depends on it */
    if (atomic_load_explicit(&h->broken, memory_order_relaxed))
        return EIO;
    if (h->fd >= 0 && n >= SFS_SPLICE_MIN)
        rc = splice_reply(req, h->fd, h->foff + (uint64_t)off, n);
    if (rc == 1 && (rc = g_probe(src, n)) == 0)
        fuse_reply_buf(req, src, n);
    if (rc == 0)
        return 0;
    atomic_store_explicit(&h->broken, 1, memory_order_relaxed);
    return EIO;
}

static void sfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct fh *h = (struct fh *)(uintptr_t)fi->fh;
    size_t n = 0;
    int err = off < 0 ? EINVAL : 0;

    /* relaxed: the caller already holds a reference (the open file) */
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    if (err == 0 && (uint64_t)off < h->size)
        n = h->size - (size_t)off < size ? h->size - (size_t)off : size;
    if (err == 0 && n > 0 && h->text == NULL) {
        err = reply_chunk(req, h, off, n);
        if (err != 0)
            fuse_log(FUSE_LOG_DEBUG, "speculofs: read of %#" PRIx64 ": file cut\n", (uint64_t)ino);
    } else if (err == 0) {
        fuse_reply_buf(req, n > 0 ? h->text + off : h->text, n);
    }
    if (err != 0)
        fuse_reply_err(req, err);
    fh_put(h);
}

static void sfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fh_put((struct fh *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------------ */
/* directories */

struct dh {
    struct hlink link;   /* first: see live_add() */
    struct sfs_seg *seg; /* NULL for the root */
    int all;             /* the segment's .all */
    pthread_mutex_t lock;
    speculo_reader *r; /* a segment's: positioned by each readdir */
    int last_rc;
    char **names; /* the root's segment names, taken at opendir and rewind */
    size_t nnames;
    int served; /* names were listed: offset 0 again is a rewind */
};

static void dh_free(struct dh *d)
{
    live_del(&d->link);
    if (d->seg != NULL)
        seg_reader_give(d->seg, d->r, d->last_rc);
    segtab_free_list(d->names, d->nnames);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static void dh_destroy(struct hlink *l)
{
    dh_free((struct dh *)(void *)l);
}

static void sfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    enum sfs_kind kind = sfs_ino_kind(ino);
    struct dh *d;
    struct stat st;
    int rc;

    if (kind != SFS_ROOT && kind != SFS_SEGDIR && kind != SFS_ALLDIR) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    if ((d = calloc(1, sizeof *d)) == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    pthread_mutex_init(&d->lock, NULL);
    live_add(&d->link, dh_destroy);
    d->all = kind == SFS_ALLDIR;
    rc = kind == SFS_ROOT ? segtab_list(&d->names, &d->nnames) : seg_of(ino, &d->seg, &st);
    if (rc != 0) {
        dh_free(d);
        fuse_reply_err(req, fs_err(rc));
        return;
    }
    fi->fh = (uintptr_t)d;
    if (fuse_reply_open(req, fi) != 0)
        dh_free(d);
}

/* A reply to READDIR or READDIRPLUS being filled. With `plus`, a chunk's
 * entry counts as a lookup, as in the inode table (refs: uncounted if the
 * reply fails); other entries carry no attributes (ino 0: not linked). */
struct listing {
    fuse_req_t req;
    char *buf;
    size_t size, used;
    int plus;
    int followed;     /* chunk names may be cached (seg->follow) */
    struct stat file; /* the segment file: chunks' owner and mode */
    fuse_ino_t *refs;
    size_t nrefs, caprefs;
};

/* Adds one entry; 0 when it did not fit (the buffer is full). @m: the
 * chunk's attributes, NULL for anything else. */
static size_t add_dirent(struct listing *L, const char *name, fuse_ino_t ino, mode_t type,
                         off_t next, const struct sfs_meta *m)
{
    struct fuse_entry_param e = {.attr = {.st_ino = ino, .st_mode = type}};
    size_t room = L->size - L->used;
    size_t len;

    if (!L->plus) {
        len = fuse_add_direntry(L->req, L->buf + L->used, room, name, &e.attr, next);
    } else {
        if (m != NULL)
            chunk_entry(&e, ino, m, L->followed);
        len = fuse_add_direntry_plus(L->req, L->buf + L->used, room, name, &e, next);
    }
    if (len > room)
        return 0;
    if (L->plus && m != NULL) { /* counted before it is kept */
        if (sfs_grow(&L->refs, &L->caprefs, L->nrefs + 1, sizeof *L->refs) != 0 ||
            node_ref(ino, m) != 0)
            return 0;
        L->refs[L->nrefs++] = ino;
    }
    L->used += len;
    return len;
}

/* The root's names are taken whole (at opendir and rewind): offsets are
 * indexes into ".", "..", names[]; one that vanished since is skipped. */
static void readdir_root(struct listing *L, struct dh *d, off_t off)
{
    if (off == 0 && d->served) {
        segtab_free_list(d->names, d->nnames);
        d->names = NULL;
        d->nnames = 0;
        if (segtab_list(&d->names, &d->nnames) != 0)
            return;
    }
    d->served = 1;
    for (off_t k = off; k < 2 + (off_t)d->nnames; k++) {
        const char *name = k == 0 ? "." : k == 1 ? ".." : d->names[k - 2];
        struct sfs_seg *seg = NULL;
        struct stat st;
        if (k >= 2 && segtab_lookup(name, &seg, &st) != 0)
            continue;
        if (!add_dirent(L, name, seg != NULL ? sfs_ino(seg->slot, 0) : FUSE_ROOT_ID, S_IFDIR, k + 1,
                        NULL))
            break;
    }
}

/* Cookies of a segment directory: 1, 2, 3, 4 after ".", "..", ".info" and
 * ".all" (not in a segment that cannot be read), then chunk id + 4:
 * resuming seeks past that id, so chunks that vanish cannot shift the
 * listing. */
#define COOKIE_BASE 4

/* Live chunks as next() returns them; the listing stops where the reader
 * follows the name to another incarnation. */
static void readdir_segment(struct listing *L, struct dh *d, off_t off)
{
    const char *fixed[COOKIE_BASE] = {".", "..", ".info", ".all"};
    const fuse_ino_t inos[COOKIE_BASE] = {sfs_ino(d->seg->slot, 0), FUSE_ROOT_ID,
                                          sfs_ino(d->seg->slot, SFS_INFO_LOW),
                                          sfs_ino(d->seg->slot, SFS_ALL_LOW)};
    char name[SPECULO_CHUNK_NAME_MAX + 1];
    struct sfs_meta m;
    int rc;

    for (off_t k = off; k < COOKIE_BASE; k++)
        if ((k != 3 || !d->seg->bad) &&
            !add_dirent(L, fixed[k], inos[k], k == 2 ? S_IFREG : S_IFDIR, k + 1, NULL))
            return;
    if (d->seg->bad || seg_check(d->seg, &L->file) != 0 ||
        (d->r == NULL && seg_reader_take(d->seg, &d->r) != 0))
        return;
    rc = g_seek(d->r, off < COOKIE_BASE ? 0 : (uint64_t)off - COOKIE_BASE);
    while (rc == 0 && (rc = g_next_meta(d->r, &m, name, sizeof name)) == 0) {
        if (!seg_reads(d->seg, d->r) || m.id == 0 || m.id > SFS_CHUNK_ID_MAX)
            break;
        if (name[0] == '\0')
            continue;
        meta_owner(&m, &L->file);
        if (!add_dirent(L, name, sfs_ino(d->seg->slot, m.id), S_IFREG, (off_t)(m.id + COOKIE_BASE),
                        &m))
            break;
    }
    if (rc != 0 && rc != -EAGAIN)
        fuse_log(FUSE_LOG_DEBUG, "speculofs: %s: listing ends: %s\n", d->seg->name,
                 speculo_strerror(rc));
    d->last_rc = rc == -EAGAIN ? 0 : rc;
    if (rc == SFS_FAULT) {
        seg_reader_give(d->seg, d->r, rc);
        d->r = NULL;
    }
}

/* Cookies of .all: 1, 2 after "." and "..", then id + 2: resuming walks on
 * after that id, which collections do not move. */
#define ALL_COOKIE_BASE 2

/* Every record in the file, one walk step (O(log n)) each; READDIRPLUS
 * entries are counted lookups, with names cached 0 s. */
static void readdir_all(struct listing *L, struct dh *d, off_t off)
{
    const fuse_ino_t inos[ALL_COOKIE_BASE] = {sfs_ino(d->seg->slot, SFS_ALL_LOW),
                                              sfs_ino(d->seg->slot, 0)};
    uint64_t id = off < ALL_COOKIE_BASE ? 0 : (uint64_t)off - ALL_COOKIE_BASE;
    char name[SFS_IDNAME_LEN + 1];
    struct speculo_record rec;
    struct sfs_meta m;
    int rc;

    for (off_t k = off; k < ALL_COOKIE_BASE; k++)
        if (!add_dirent(L, k == 0 ? "." : "..", inos[k], S_IFDIR, k + 1, NULL))
            return;
    if (seg_check(d->seg, &L->file) != 0 || (d->r == NULL && seg_reader_take(d->seg, &d->r) != 0))
        return;
    while ((rc = g_record(d->r, id, 1, &rec)) == 0) {
        if (!seg_reads(d->seg, d->r) || rec.chunk.id <= id || rec.chunk.id > SFS_CHUNK_ID_MAX)
            break;
        id = rec.chunk.id;
        m = sfs_meta_of(&rec.chunk, rec.replaces);
        meta_owner(&m, &L->file);
        sfs_idname(name, id);
        if (!add_dirent(L, name, sfs_ino(d->seg->slot, SFS_ALL_BIT | id), S_IFREG,
                        (off_t)(id + ALL_COOKIE_BASE), &m))
            break;
    }
    d->last_rc = rc == -ENOENT ? 0 : rc;
    if (rc == SFS_FAULT) {
        seg_reader_give(d->seg, d->r, rc);
        d->r = NULL;
    }
}

/* READDIRPLUS of a segment gives names as LOOKUP does (entries_lock held
 * from the listing to the reply). */
static void do_readdir(fuse_req_t req, struct dh *d, size_t size, off_t off, int plus)
{
    struct listing L = {.req = req, .size = size, .plus = plus};
    struct sfs_seg *seg = d->all ? NULL : d->seg; /* whose chunk names may be cached */

    if (off < 0 || (L.buf = malloc(size)) == NULL) {
        fuse_reply_err(req, off < 0 ? EINVAL : ENOMEM);
        return;
    }
    if (seg != NULL && plus) {
        entries_hold(seg, 1);
        L.followed = seg->follow == SFS_FOLLOW_ON;
    }
    pthread_mutex_lock(&d->lock);
    if (d->all)
        readdir_all(&L, d, off);
    else if (seg == NULL)
        readdir_root(&L, d, off);
    else
        readdir_segment(&L, d, off);
    pthread_mutex_unlock(&d->lock);
    if (fuse_reply_buf(req, L.buf, L.used) != 0)
        for (size_t i = 0; i < L.nrefs; i++)
            node_forget(L.refs[i], 1);
    if (seg != NULL && plus)
        pthread_rwlock_unlock(&seg->entries_lock);
    free(L.refs);
    free(L.buf);
}

static void sfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
    (void)ino;
    do_readdir(req, (struct dh *)(uintptr_t)fi->fh, size, off, 0);
}

static void sfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                            struct fuse_file_info *fi)
{
    (void)ino;
    do_readdir(req, (struct dh *)(uintptr_t)fi->fh, size, off, 1);
}

static void sfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    dh_free((struct dh *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* ------------------------------------------------------------------ */
/* extended attributes: decimal text (but a record's state), absent when
 * there is nothing to say */

/* The last, the state, is of records of .all only. */
static const char *const xattr_names[] = {
    "user.speculo.id",
    "user.speculo.expires",
    "user.speculo.replaces",
    "user.speculo.state",
};
#define NXATTR (sizeof xattr_names / sizeof xattr_names[0])

/* The state of record @ino now, in the words of `speculo ls --all`; -1
 * once it is no longer in the segment's file. Asked of the segment at
 * each call: the kernel caches no extended attribute. */
static int record_state(fuse_ino_t ino, char *buf, size_t size)
{
    struct speculo_record rec;
    struct sfs_seg *seg;
    struct sfs_meta m;
    struct stat st;

    if (seg_of(ino, &seg, &st) != 0 || fetch_record(seg, sfs_ino_id(ino), &m, &rec) != 0)
        return -1;
    switch (rec.state) {
    case SPECULO_STATE_LIVE:
        return snprintf(buf, size, "live");
    case SPECULO_STATE_EXPIRED:
        return snprintf(buf, size, "expired");
    case SPECULO_STATE_REPLACED:
        return snprintf(buf, size, "obsolete>%" PRIu64, rec.obsoleted_by);
    default:
        return snprintf(buf, size, "obsolete");
    }
}

/* The value of attribute @k of @ino, or -1 when it has none. */
static int xattr_value(fuse_ino_t ino, const struct sfs_meta *m, size_t k, char *buf, size_t size)
{
    if (k == 0)
        return snprintf(buf, size, "%" PRIu64, m->id);
    if (k == 1)
        return m->expires_ns == 0 ? -1 : snprintf(buf, size, "%" PRId64, m->expires_ns);
    if (k == 3)
        return sfs_ino_kind(ino) == SFS_RECORD ? record_state(ino, buf, size) : -1;
    return m->replaces == 0 ? -1 : snprintf(buf, size, "%" PRIu64, m->replaces);
}

static void reply_xattr_data(fuse_req_t req, const char *data, size_t len, size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, data, len);
}

/* Only the user namespace is ours: any other is EOPNOTSUPP, as from a
 * kernel filesystem without its handler, which `ls -l` takes as "no
 * labels, no ACLs here" and stops asking (two requests, not two a file). */
static void sfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    struct sfs_meta m;
    char val[32];
    int rc;

    if (strncmp(name, "user.", 5) != 0) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    if (!counted(ino)) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    if ((rc = chunk_meta(ino, &m)) != 0) {
        fuse_reply_err(req, fs_err(rc));
        return;
    }
    for (size_t k = 0; k < NXATTR; k++) {
        int n = strcmp(name, xattr_names[k]) == 0 ? xattr_value(ino, &m, k, val, sizeof val) : -1;
        if (n >= 0) {
            reply_xattr_data(req, val, (size_t)n, size);
            return;
        }
    }
    fuse_reply_err(req, ENODATA);
}

static void sfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct sfs_meta m;
    char list[128], val[32];
    size_t len = 0;

    if (counted(ino)) {
        if (chunk_meta(ino, &m) != 0) {
            fuse_reply_err(req, ENOENT);
            return;
        }
        for (size_t k = 0; k < NXATTR; k++) {
            if (xattr_value(ino, &m, k, val, sizeof val) < 0)
                continue;
            memcpy(list + len, xattr_names[k], strlen(xattr_names[k]) + 1);
            len += strlen(xattr_names[k]) + 1;
        }
    }
    reply_xattr_data(req, list, len, size);
}

/* ------------------------------------------------------------------ */

static void sfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct statvfs sv = {.f_bsize = 4096,
                         .f_frsize = 4096,
                         .f_files = nodes_count(),
                         .f_namemax = SPECULO_CHUNK_NAME_MAX,
                         .f_flag = ST_RDONLY};

    (void)ino;
    fuse_reply_statfs(req, &sv);
}

/* A chunk inode's pages never go stale, so the kernel need not compare
 * mtimes to drop them. */
static void sfs_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    /* READ replies spliced from the segment file (splice.c), never moved:
     * moving would take the page out of the segment. */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    conn->want &= ~FUSE_CAP_SPLICE_MOVE;
    if (conn->max_write > SFS_READ_MAX)
        conn->max_write = SFS_READ_MAX;  /* and so max_pages: READ sizes */
    conn->max_readahead = SFS_READAHEAD; /* the kernel keeps the least */
}

const struct fuse_lowlevel_ops sfs_ops = {
    .init = sfs_init,
    .lookup = sfs_lookup,
    .forget = sfs_forget,
    .forget_multi = sfs_forget_multi,
    .getattr = sfs_getattr,
    .open = sfs_open,
    .read = sfs_read,
    .release = sfs_release,
    .opendir = sfs_opendir,
    .readdir = sfs_readdir,
    .readdirplus = sfs_readdirplus,
    .releasedir = sfs_releasedir,
    .statfs = sfs_statfs,
    .getxattr = sfs_getxattr,
    .listxattr = sfs_listxattr,
};
