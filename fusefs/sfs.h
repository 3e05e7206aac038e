/*
 * speculofs internals: the pieces shared by main.c, ops.c, segtab.c,
 * nodes.c and guard.c. See docs/DESIGN-speculofs.md for the picture.
 */
#ifndef SFS_H
#define SFS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
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

/* What guard_call() returns when the guarded code touched a mapping whose
 * file was truncated under it (SIGBUS). */
#define SFS_FAULT (-EFAULT)

/* Kernel cache timeouts, in seconds (see DESIGN-speculofs.md). Entry
 * timeouts are always 0: every path walk asks, so a name is never cached
 * past its truth. Attributes may be cached: a chunk inode's never change,
 * and a directory's are refreshed by the LOOKUP of every path walk anyway
 * (the timeout only spares a GETATTR for the permission check of each
 * walk, and bounds what fstat() on an open directory may show). */
#define SFS_CHUNK_ATTR_TIMEOUT 3600.0
#define SFS_DIR_ATTR_TIMEOUT 1.0

enum sfs_kind { SFS_ROOT, SFS_SEGDIR, SFS_INFO, SFS_CHUNK, SFS_BAD };

static inline fuse_ino_t sfs_ino(uint64_t slot, uint64_t low)
{
    return (fuse_ino_t)(slot << SFS_ID_BITS | low);
}
static inline uint64_t sfs_ino_slot(fuse_ino_t ino) { return (uint64_t)ino >> SFS_ID_BITS; }
static inline uint64_t sfs_ino_low(fuse_ino_t ino) { return (uint64_t)ino & SFS_ID_MASK; }
enum sfs_kind sfs_ino_kind(fuse_ino_t ino);

/* ---- guard.c: survive SIGBUS from a mapping truncated under us -------- */

int guard_install(void);
int guard_call(int (*fn)(void *), void *arg);
/* Library calls made under the guard; SFS_FAULT when the mapping faulted. */
int g_reader_open(const char *segment, speculo_reader **out);
void g_reader_close(speculo_reader *r);
int g_fetch_name(speculo_reader *r, const char *name, speculo_chunk *c, uint64_t *replaces);
int g_fetch_id(speculo_reader *r, uint64_t id, speculo_chunk *c, uint64_t *replaces);
int g_seek(speculo_reader *r, uint64_t after_id);
int g_next_entry(speculo_reader *r, uint64_t *id, char *name, size_t size);
int g_info(speculo_reader *r, struct speculo_segment_info *info);
int g_describe(const char *segment, char *buf, size_t size);
int g_probe(const void *p, size_t len);

/* ---- segtab.c: segments, their incarnations and reader pools ---------- */

/*
 * One incarnation of a segment: a name plus its creation time, which the
 * garbage collector keeps. A segment removed and created again under the
 * same name is a new incarnation with a new slot (so new inode numbers, so
 * no stale kernel page cache). Structures are never freed while mounted:
 * handles and inode numbers refer to them by slot.
 */
struct sfs_seg {
    uint64_t slot;
    char *name;
    int64_t created_ns; /* identity of a readable segment */
    int bad;            /* unreadable when found: only .info is shown */
    int dead;           /* removed, or replaced by another incarnation */
    dev_t dev;          /* the file last seen to hold this incarnation */
    ino_t ino;
    speculo_reader *pool[8]; /* idle readers, for lookups and attributes */
    unsigned npool;
};

int segtab_init(const char *dir);
void segtab_fini(void);
const char *segtab_dir(void);
int segtab_stat_dir(struct stat *st);
struct sfs_seg *segtab_get(uint64_t slot);
int segtab_lookup(const char *name, struct sfs_seg **out, struct stat *st);
int seg_check(struct sfs_seg *seg, struct stat *st);
int seg_reader_take(struct sfs_seg *seg, speculo_reader **out);
void seg_reader_give(struct sfs_seg *seg, speculo_reader *r, int rc);
int segtab_list(char ***names, size_t *count);
void segtab_free_list(char **names, size_t count);

/* ---- nodes.c: the chunk inodes the kernel knows (lookup counts) ------- */

/* What a chunk inode's attributes and xattrs are made of: immutable for a
 * chunk, except the owner and mode taken from the segment file. */
struct sfs_meta {
    uint64_t id;
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

/* ---- ops.c -------------------------------------------------------------- */

extern const struct fuse_lowlevel_ops sfs_ops;
/* Free the handles the kernel did not release (after the loop ended). */
void sfs_ops_cleanup(void);
extern int sfs_debug;

#endif /* SFS_H */
