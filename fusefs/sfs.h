/* speculofs internals: what the files of fusefs/ share. The picture is in
 * docs/DESIGN-speculofs.md. */
#ifndef SFS_H
#define SFS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "speculo.h"

/* Inode numbers are computed: ino = slot << SFS_ID_BITS | low. slot: 0 for
 * the root (FUSE_ROOT_ID), else a segment incarnation (segtab.c); low: 0
 * its directory, a chunk id, SFS_ALL_BIT | id the record of chunk id in
 * .all, SFS_ALL_LOW the .all directory, or SFS_INFO_LOW its .info file. A
 * dead record and the live chunk of one id are two inodes: OPEN gets only
 * the inode, and serves a dead record only from .all. */
#define SFS_ID_BITS 44
#define SFS_ID_MASK ((UINT64_C(1) << SFS_ID_BITS) - 1)
#define SFS_INFO_LOW SFS_ID_MASK
#define SFS_ALL_LOW (SFS_ID_MASK - 1)
#define SFS_ALL_BIT (UINT64_C(1) << (SFS_ID_BITS - 1))
#define SFS_CHUNK_ID_MAX (SFS_ALL_BIT - 3) /* SFS_ALL_BIT | id below SFS_ALL_LOW */
#define SFS_SLOT_MAX ((UINT64_C(1) << (64 - SFS_ID_BITS)) - 1)

/* An unnamed chunk shows as its id in 20 digits, so `ls` order is commit order. */
#define SFS_IDNAME_LEN 20

/* The name of unnamed chunk @id into @buf (SFS_IDNAME_LEN + 1 bytes). By
 * hand: a listing makes one per entry, and snprintf() showed in perf. */
static inline void sfs_idname(char *buf, uint64_t id)
{
    for (int i = SFS_IDNAME_LEN - 1; i >= 0; i--) {
        buf[i] = (char)('0' + id % 10);
        id /= 10;
    }
    buf[SFS_IDNAME_LEN] = '\0';
}

/* What a guarded call (guard.c) returns when it touched a mapping whose
 * file was cut under it (SIGBUS). */
#define SFS_FAULT (-EFAULT)

/* Kernel cache timeouts, in seconds. A name is cached only where the server
 * can take it back (DESIGN-speculofs.md, "Caching and invalidation"): an
 * unnamed chunk's while a notifier follows its segment, never past its
 * expiry less SFS_EXPIRY_MARGIN_NS; a segment's while inotify watches the
 * segment directory; a named chunk's never (an update rebinds the name the
 * moment the commit returns), nor a name that does not exist. */
#define SFS_ENTRY_TIMEOUT 60.0
#define SFS_EXPIRY_MARGIN_NS (INT64_C(100) * 1000000)
#define SFS_CHUNK_ATTR_TIMEOUT 3600.0
#define SFS_DIR_ATTR_TIMEOUT 1.0

/* SFS_ALLDIR: a segment's .all; SFS_RECORD: a record in it, live or dead. */
enum sfs_kind { SFS_ROOT, SFS_SEGDIR, SFS_INFO, SFS_CHUNK, SFS_ALLDIR, SFS_RECORD, SFS_BAD };

static inline fuse_ino_t sfs_ino(uint64_t slot, uint64_t low)
{
    return (fuse_ino_t)(slot << SFS_ID_BITS | low);
}
static inline uint64_t sfs_ino_slot(fuse_ino_t ino)
{
    return (uint64_t)ino >> SFS_ID_BITS;
}
static inline uint64_t sfs_ino_low(fuse_ino_t ino)
{
    return (uint64_t)ino & SFS_ID_MASK;
}
/* The chunk id of a chunk's or a record's inode. */
static inline uint64_t sfs_ino_id(fuse_ino_t ino)
{
    return (uint64_t)ino & (SFS_ALL_BIT - 1);
}
enum sfs_kind sfs_ino_kind(fuse_ino_t ino);

/* @want (0444 or 0555) less what @file_mode denies: a class that may not
 * read the segment file gets nothing. */
static inline mode_t sfs_allowed(mode_t file_mode, mode_t want)
{
    mode_t m = 0;

    if (file_mode & S_IRUSR)
        m |= want & 0700;
    if (file_mode & S_IRGRP)
        m |= want & 0070;
    if (file_mode & S_IROTH)
        m |= want & 0007;
    return m;
}

/* Room for @need elements of @esize bytes in the growable array *@arr of
 * capacity *@cap. 0, or -ENOMEM with the array unchanged. */
static inline int sfs_grow(void *arr, size_t *cap, size_t need, size_t esize)
{
    void **p = arr;
    size_t n = *cap ? *cap : 64;
    void *np;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    np = realloc(*p, n * esize);
    if (np == NULL)
        return -ENOMEM;
    *p = np;
    *cap = n;
    return 0;
}

/* ---- guard.c: survive SIGBUS from a mapping truncated under us -------- */

int guard_install(void);
/* Library calls made under the guard (SFS_FAULT when the mapping faulted),
 * in the segment directory of segtab_dir(). */
int g_reader_open(const char *segment, speculo_reader **out);
void g_reader_close(speculo_reader *r);
int g_fetch(speculo_reader *r, const char *name, uint64_t id, speculo_chunk *c, uint64_t *replaces);
/* @flags: the library's, or SFS_GET_ANY: the record whatever its state. */
#define SFS_GET_ANY (1u << 31)
int g_fetch_version(speculo_reader *r, uint64_t id, unsigned flags, speculo_chunk *c);
int g_record(speculo_reader *r, uint64_t id, int walk, struct speculo_record *rec);
int g_seek(speculo_reader *r, uint64_t after_id);
struct sfs_meta;
int g_next_meta(speculo_reader *r, struct sfs_meta *m, char *name, size_t size);
int g_watch(speculo_reader *r, struct speculo_watch *ev);
int g_wait(struct speculo_wait_item *items, size_t n, speculo_wakeup *wk);
int g_info(speculo_reader *r, struct speculo_segment_info *info);
int g_describe(const char *segment, char *buf, size_t size);
int g_probe(const void *p, size_t len);

/* ---- segtab.c: segments, their incarnations and reader pools ---------- */

/* Bounds on the files of a segment held for opens (holds.c): how many,
 * how long after a newer one was held, how many bytes of older ones
 * beside the latest superseded one. */
#define SFS_HOLD_MAX 16
#define SFS_HOLD_NS (INT64_C(1000) * 1000000)
#define SFS_HOLD_BYTES (UINT64_C(64) << 20)
#define SFS_POOL_MAX 8
struct sfs_hold;

/* The life of an incarnation: current, then dead when its file is
 * removed or replaced by another incarnation's, then reaped once what
 * the kernel may cache of it was taken back (notify.c). A file missing for
 * a moment (a rename back) makes a dead or reaped one current again. */
enum sfs_seg_state { SEG_CURRENT, SEG_DEAD, SEG_REAPED };

/* Whether the kernel may cache the incarnation's chunk names: only while
 * a notifier follows its obsoletions (notify.c). Off is for good. */
enum sfs_follow { SFS_FOLLOW_NONE, SFS_FOLLOW_ON, SFS_FOLLOW_OFF };

/* One incarnation of a segment (segtab.c). Never freed while mounted:
 * handles and inode numbers refer to it by slot. */
struct sfs_seg {
    /* Fixed when the incarnation is found. */
    uint64_t slot;
    char *name;
    int bad;      /* not readable as a segment: only .info is shown */
    uint64_t uid; /* a readable one's identity */
    int64_t created_ns;
    /* Under the segment table's lock (segtab_lock()). */
    enum sfs_seg_state state;
    struct stat st; /* the file last seen to hold it */
    int verified;   /* st is still right: no inotify event about the name since */
    speculo_reader *pool[SFS_POOL_MAX]; /* idle readers, for lookups and attributes */
    unsigned npool;
    struct sfs_hold *holds[SFS_HOLD_MAX]; /* holds.c: files held for opens, oldest first */
    unsigned nholds;
    /* The kernel's entries of its chunks: held shared from the check that
     * a chunk is live to the reply that gives the kernel its name, and
     * exclusively by notify.c to take the list of names the kernel holds,
     * or to change `follow`, which it guards. */
    pthread_rwlock_t entries_lock;
    enum sfs_follow follow;
};

int segtab_init(const char *dir);
void segtab_fini(void);
const char *segtab_dir(void);
void segtab_lock(void);
void segtab_unlock(void);
struct sfs_seg *segtab_get(uint64_t slot);
int segtab_lookup(const char *name, struct sfs_seg **out, struct stat *st);
int seg_check(struct sfs_seg *seg, struct stat *st);
int seg_reads(struct sfs_seg *seg, const speculo_reader *r);
int seg_reader_take(struct sfs_seg *seg, speculo_reader **out);
void seg_reader_give(struct sfs_seg *seg, speculo_reader *r, int rc);
int segtab_list(char ***names, size_t *count);
void segtab_free_list(char **names, size_t count);
/* For notify.c: a change under @name seen by inotify (NULL: anything may
 * have changed); segtab_recheck() then looks at the file again. */
void segtab_changed(const char *name);
int segtab_recheck(const char *name, struct sfs_seg **attr_changed);
void segtab_verify_enable(int on);
size_t segtab_take_dead(struct sfs_seg ***out);

/* ---- holds.c: segment files kept mapped for opens to come ------------- */

int hold_keep(struct sfs_seg *seg, speculo_reader **r, struct sfs_hold **out);
int hold_fetch(struct sfs_hold *h, uint64_t id, unsigned flags, speculo_chunk *c);
int hold_search(struct sfs_seg *seg, uint64_t id, struct sfs_hold **out, speculo_chunk *c);
int hold_file(struct sfs_hold *h, const char *segment, const speculo_chunk *c, uint64_t *off);
void hold_put(struct sfs_hold *h);
void holds_drop(struct sfs_seg *seg);
unsigned holds_count(struct sfs_seg *seg);

/* ---- nodes.c: the chunk inodes the kernel knows (lookup counts) ------- */

/* What a chunk inode's attributes and xattrs are made of: immutable for a
 * chunk, except the owner and mode taken from the segment file. */
struct sfs_meta {
    uint64_t id;
    int named;
    uint64_t size;
    uint64_t replaces;
    int64_t committed_ns;
    int64_t expires_ns;
    uid_t uid;
    gid_t gid;
    mode_t mode;
};

/* What chunk @c's attributes are made of (the owner and mode: to add). */
static inline struct sfs_meta sfs_meta_of(const speculo_chunk *c, uint64_t replaces)
{
    return (struct sfs_meta){.id = c->id,
                             .named = c->name != NULL,
                             .size = c->size,
                             .replaces = replaces,
                             .committed_ns = c->committed_ns,
                             .expires_ns = c->expires_ns};
}

int nodes_init(void);
void nodes_fini(void);
int node_ref(fuse_ino_t ino, const struct sfs_meta *meta);
int node_get(fuse_ino_t ino, struct sfs_meta *meta);
void node_forget(fuse_ino_t ino, uint64_t nlookup);
size_t nodes_count(void);
/* The unnamed chunks of @slot the kernel holds (their ids, malloc'd);
 * SIZE_MAX when out of memory. */
size_t nodes_unnamed(uint64_t slot, uint64_t **ids);
/* Every chunk inode of @slot the kernel holds (malloc'd), after giving
 * them the owner and mode of @file. */
size_t nodes_set_owner(uint64_t slot, const struct stat *file, fuse_ino_t **inos);

/* ---- notify.c: telling the kernel what it cached is gone --------------- */

/* notify_follow(): have a notifier follow @seg's obsoletions (then
 * seg->follow is on). notify_root_ok(): 1 while inotify watches the
 * segment directory (a segment directory's name may be cached). */
int notify_start(struct fuse_session *se);
int notify_stop(void);
void notify_follow(struct sfs_seg *seg);
int notify_root_ok(void);

/* ---- splice.c: READ replies spliced from a segment file ---------------- */

/* The largest READ the kernel sends (max_pages): a reply spliced through
 * a pipe must fit one, and unprivileged pipes stop at 1 MiB. */
#define SFS_PAGE 4096u
#define SFS_READ_MAX (512u * 1024)
/* The readahead window asked for (main.c, sfs_init()): two such READs. */
#define SFS_READAHEAD (2 * SFS_READ_MAX)
/* Smaller replies come from the mapping: libfuse copies those anyway. */
#define SFS_SPLICE_MIN (2 * SFS_PAGE)
int splice_reply(fuse_req_t req, int fd, uint64_t off, size_t n);

/* ---- ops.c -------------------------------------------------------------- */

extern const struct fuse_lowlevel_ops sfs_ops;
/* Free the handles the kernel did not release (after the loop ended). */
void sfs_ops_cleanup(void);

#endif /* SFS_H */
