/*
 * speculofs internals: the pieces shared by main.c, ops.c, segtab.c,
 * nodes.c and guard.c. See docs/DESIGN-speculofs.md for the picture.
 */
#ifndef SFS_H
#define SFS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "speculo.h"

/*
 * Inode numbers are computed, not allocated, so that the same (segment,
 * chunk id) always gets the same number, across a GC switch and across a
 * FORGET, and a number is never given to anything else:
 *
 *   ino = slot << SFS_ID_BITS | low
 *
 * slot: 0 for the root (ino 1 = FUSE_ROOT_ID), else the segment incarnation
 * (see segtab.c); low: 0 the segment directory, 1..SFS_CHUNK_ID_MAX a chunk
 * id, SFS_INFO_LOW the segment's .info file.
 */
#define SFS_ID_BITS 44
#define SFS_ID_MASK ((UINT64_C(1) << SFS_ID_BITS) - 1)
#define SFS_INFO_LOW SFS_ID_MASK
#define SFS_CHUNK_ID_MAX (SFS_ID_MASK - 1)
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

/* What guard_call() returns when the guarded code touched a mapping whose
 * file was truncated under it (SIGBUS). */
#define SFS_FAULT (-EFAULT)

/*
 * Kernel cache timeouts, in seconds (see DESIGN-speculofs.md, "Caching and
 * invalidation").
 *
 * Entries (names) are cached only where the server can take them back:
 * - an unnamed chunk's name (its padded id) for SFS_ENTRY_TIMEOUT, never
 *   past its expiry less SFS_EXPIRY_MARGIN_NS (the kernel's own timeout
 *   ends it), and only while a watcher follows its segment (notify.c), which
 *   invalidates it when the chunk is obsoleted;
 * - a segment directory's name in the root for SFS_ENTRY_TIMEOUT, while
 *   inotify watches the segment directory (removal, re-creation);
 * - a named chunk's name: 0. An update binds the name to another inode the
 *   moment the commit returns, and no notification can be that fast.
 * No negative entry is ever cached: a chunk appears the moment it is
 * committed. Attributes may be cached: a chunk inode's never change (the
 * owner and mode taken from the segment file are pushed when they do), and
 * a directory's timeout only spares a GETATTR per permission check.
 */
#define SFS_ENTRY_TIMEOUT 60.0
#define SFS_EXPIRY_MARGIN_NS (INT64_C(100) * 1000000)
#define SFS_CHUNK_ATTR_TIMEOUT 3600.0
#define SFS_DIR_ATTR_TIMEOUT 1.0

enum sfs_kind { SFS_ROOT, SFS_SEGDIR, SFS_INFO, SFS_CHUNK, SFS_BAD };

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

/* ---- guard.c: survive SIGBUS from a mapping truncated under us -------- */

int guard_install(void);
int guard_call(int (*fn)(void *), void *arg);
/* Library calls made under the guard; SFS_FAULT when the mapping faulted. */
int g_reader_open(const char *segment, speculo_reader **out);
void g_reader_close(speculo_reader *r);
int g_fetch_name(speculo_reader *r, const char *name, speculo_chunk *c, uint64_t *replaces);
int g_fetch_id(speculo_reader *r, uint64_t id, speculo_chunk *c, uint64_t *replaces);
/* speculo_reader_get_version(): SPECULO_GET_* @flags; -ESTALE for a
 * record in the file but not live. */
int g_fetch_version(speculo_reader *r, uint64_t id, unsigned flags, speculo_chunk *c);
int g_seek(speculo_reader *r, uint64_t after_id);
struct sfs_meta;
int g_next_meta(speculo_reader *r, struct sfs_meta *m, char *name, size_t size);
int g_watch(speculo_reader *r, int timeout_ms, struct speculo_watch *ev);
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
struct sfs_hold;

/*
 * One incarnation of a segment: a name plus the segment's random uid and
 * creation time, which the garbage collector keeps. A segment removed and
 * created again under the same name is a new incarnation with a new slot
 * (so new inode numbers, so no stale kernel page cache). Structures are
 * never freed while mounted: handles and inode numbers refer to them by
 * slot. Fields below `hand` are under the segment table's lock.
 */
struct sfs_seg {
    uint64_t slot;
    char *name;
    uint64_t uid;       /* identity of a readable segment: uid and */
    int64_t created_ns; /* creation time, kept by the collector */
    int bad;            /* unreadable when found: only .info is shown */
    /*
     * Held shared from the check that a chunk is live to the reply that
     * lets the kernel cache its name (LOOKUP, READDIRPLUS), exclusively by
     * the watcher while it decides what to invalidate: so an obsoletion is
     * either seen by the check or finds the name in the inode table.
     */
    pthread_rwlock_t hand;
    _Atomic int follow; /* notify.c: enum sfs_follow */
    int dead;           /* removed, or replaced by another incarnation */
    dev_t dev;          /* the file last seen to hold this incarnation */
    ino_t ino;
    struct stat st;          /* its stat, when verified */
    int verified;            /* st is current: no inotify event since */
    int handed;              /* the kernel may cache the root's entry for it */
    int reaped;              /* dead, and its cached names taken back */
    speculo_reader *pool[8]; /* idle readers, for lookups and attributes */
    unsigned npool;
    /* holds.c, under its lock: files held for opens, oldest first */
    struct sfs_hold *holds[SFS_HOLD_MAX];
    unsigned nholds;
    int holds_off; /* `dead` as the holds' lock sees it: none may be added */
};

/* Whether a watcher follows a segment's obsoletions (notify.c). */
enum sfs_follow { SFS_FOLLOW_NONE, SFS_FOLLOW_ACTIVE, SFS_FOLLOW_OFF };

int segtab_init(const char *dir);
void segtab_fini(void);
const char *segtab_dir(void);
int segtab_stat_dir(struct stat *st);
struct sfs_seg *segtab_get(uint64_t slot);
int segtab_lookup(const char *name, struct sfs_seg **out, struct stat *st);
int seg_check(struct sfs_seg *seg, struct stat *st);
int seg_same(const struct sfs_seg *seg, const struct speculo_segment_ident *id);
void seg_unverify(struct sfs_seg *seg);
int seg_reader_take(struct sfs_seg *seg, speculo_reader **out);
void seg_reader_give(struct sfs_seg *seg, speculo_reader *r, int rc);
int segtab_list(char ***names, size_t *count);
void segtab_free_list(char **names, size_t count);
/* The root's entries: held shared from segtab_lookup() to the reply of a
 * LOOKUP in the root, exclusively while notify.c collects the dead. */
void segtab_root_hand(int exclusive);
void segtab_root_unhand(void);
void seg_handed(struct sfs_seg *seg);
/* For notify.c: a change under @name seen by inotify (NULL: anything may
 * have changed); segtab_recheck() then looks at the file again. */
void segtab_changed(const char *name);
int segtab_recheck(const char *name, struct sfs_seg **attr_changed);
void segtab_verify_enable(int on);
size_t segtab_take_dead(struct sfs_seg ***out);
int segtab_current(char ***names, size_t *count);

/* ---- holds.c: segment files kept mapped for opens to come ------------- */

int hold_keep(struct sfs_seg *seg, speculo_reader **r, struct sfs_hold **out);
int hold_fetch(struct sfs_hold *h, uint64_t id, speculo_chunk *c);
int hold_search(struct sfs_seg *seg, uint64_t id, struct sfs_hold **out, speculo_chunk *c);
struct sfs_hold *hold_get(struct sfs_hold *h);
void hold_put(struct sfs_hold *h);
void holds_release(struct sfs_seg *seg);
void holds_enable(struct sfs_seg *seg);
unsigned holds_count(const struct sfs_seg *seg);

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

/*
 * The only file that calls libfuse's notify functions (and makes threads):
 * an in-process test may link a stub of it. notify_follow() makes sure a
 * watcher follows the obsoletions of @seg from now on: 0 when one does
 * (a name of the segment may then be cached), else -1. notify_root_ok():
 * 1 while inotify watches the segment directory (a segment directory's
 * name may be cached).
 */
int notify_start(struct fuse_session *se);
int notify_stop(void);
int notify_follow(struct sfs_seg *seg);
int notify_root_ok(void);

/* ---- ops.c -------------------------------------------------------------- */

extern const struct fuse_lowlevel_ops sfs_ops;
/* Free the handles the kernel did not release (after the loop ended). */
void sfs_ops_cleanup(void);
extern int sfs_debug;

#endif /* SFS_H */
