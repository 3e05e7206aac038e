/*
 * Segment files held mapped for the opens to come.
 *
 * An open(2) of a named chunk is a LOOKUP, then an OPEN of the inode it
 * returned. In between, the writer may replace the version and the
 * collector may switch the segment to a file without it: the version the
 * LOOKUP gave is then in no file a new reader could map. So the file a
 * LOOKUP read a named chunk from is kept mapped (held) for a while, and an
 * OPEN that does not find its chunk in the segment's current file looks in
 * the held ones, newest first, as it would have in the current file at the
 * time of the LOOKUP (speculo_reader_get_version() with SPECULO_GET_SUPERSEDED).
 *
 * A hold is a pinned reader (speculo_reader_pin()), so it stays on its
 * file; an open file takes a reference, which keeps the bytes it reads
 * from mapped until its RELEASE. Every OPEN pins its file this way (the
 * current one, found by a pooled reader), so that opens share mappings
 * instead of mapping the segment once each.
 *
 * What a segment keeps held is bounded. The newest file stays held. An
 * older one is let go SFS_HOLD_NS after a newer one was held, or sooner
 * when more than SFS_HOLD_MAX files are held, or when the older files but
 * the latest of them add up to more than SFS_HOLD_BYTES: memory of old
 * segment files (the collector unlinked them) comes back within a second,
 * and a segment collected many times a second keeps a few. Expiry is
 * looked at whenever the segment's holds are, so an idle segment keeps
 * its last files mapped, as its pooled readers do.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "sfs.h"

struct sfs_hold {
    atomic_uint refs;     /* the segment's list, and each open file */
    pthread_mutex_t lock; /* one call at a time on r (it fills buffers) */
    speculo_reader *r; /* pinned: one file */
    struct speculo_segment_ident file;
    int64_t superseded_ns; /* monotonic; when a newer file was held, or 0 */
    atomic_int broken;     /* the file was truncated under the mapping */
};

/* The lists of held files, in sfs_seg; after the segment table's lock. */
static pthread_mutex_t holds_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct sfs_hold *hold_new(speculo_reader *r)
{
    struct sfs_hold *h = calloc(1, sizeof *h);

    if (h == NULL)
        return NULL;
    atomic_init(&h->refs, 1);
    pthread_mutex_init(&h->lock, NULL);
    h->r = r;
    speculo_reader_pin(r);
    speculo_reader_ident(r, &h->file);
    return h;
}

struct sfs_hold *hold_get(struct sfs_hold *h)
{
    /* relaxed: the caller already holds a reference (or the list lock) */
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    return h;
}

void hold_put(struct sfs_hold *h)
{
    if (h == NULL)
        return;
    /* acq_rel: the last one out sees every other holder's calls on r */
    if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
        return;
    g_reader_close(h->r);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Locked. Remove entry @i of @seg's list; its reference goes to *@out
 * (put after unlocking: the last put unmaps the file). */
static void list_remove(struct sfs_seg *seg, unsigned i, struct sfs_hold **out)
{
    *out = seg->holds[i];
    for (unsigned k = i + 1; k < seg->nholds; k++)
        seg->holds[k - 1] = seg->holds[k];
    seg->nholds--;
}

/* Locked. Should the held file @i (not the newest) be let go? @newer is
 * the size of the files kept between it and the latest superseded one.
 * (The bound on their number is list_push()'s.) */
static int expired(const struct sfs_seg *seg, unsigned i, int64_t now, uint64_t newer)
{
    const struct sfs_hold *h = seg->holds[i];

    /* observes: a fault seen by hold_fetch() (only this flag depends on it) */
    if (atomic_load_explicit(&h->broken, memory_order_relaxed))
        return 1;
    if (now - h->superseded_ns > SFS_HOLD_NS)
        return 1;
    return i + 2 < seg->nholds && newer + h->file.capacity > SFS_HOLD_BYTES;
}

/* Locked. Let go of the held files expired() says, newest first so that
 * the bounds keep the newer ones; the newest file stays (unless broken).
 * The references dropped go to @out; returns how many. */
static unsigned list_expire(struct sfs_seg *seg, int64_t now, struct sfs_hold **out)
{
    unsigned n = 0;
    uint64_t kept = 0;

    if (seg->nholds == 0)
        return 0;
    for (unsigned i = seg->nholds - 1; i-- > 0;) {
        if (expired(seg, i, now, kept))
            list_remove(seg, i, &out[n++]);
        else if (i + 2 < seg->nholds)
            kept += seg->holds[i]->file.capacity;
    }
    /* observes: as in expired() */
    if (atomic_load_explicit(&seg->holds[seg->nholds - 1]->broken, memory_order_relaxed))
        list_remove(seg, seg->nholds - 1, &out[n++]);
    return n;
}

static void put_all(struct sfs_hold **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        hold_put(v[i]);
}

/* Locked. The held file @r maps, or NULL. */
static struct sfs_hold *list_find(const struct sfs_seg *seg, const speculo_reader *r)
{
    struct speculo_segment_ident f;

    speculo_reader_ident(r, &f);
    for (unsigned i = seg->nholds; i-- > 0;)
        if (seg->holds[i]->file.dev == f.dev && seg->holds[i]->file.ino == f.ino)
            return seg->holds[i];
    return NULL;
}

/* Locked. @h becomes the newest held file; the oldest goes to *@out when
 * the list is full (returns 1), else 0. */
static unsigned list_push(struct sfs_seg *seg, struct sfs_hold *h, int64_t now,
                          struct sfs_hold **out)
{
    unsigned n = 0;

    if (seg->nholds == SFS_HOLD_MAX)
        list_remove(seg, 0, &out[n++]);
    if (seg->nholds > 0)
        seg->holds[seg->nholds - 1]->superseded_ns = now;
    seg->holds[seg->nholds++] = h;
    return n;
}

/*
 * Make sure the file *@r (a reader of @seg) maps is held, and return that
 * hold with a reference for the caller (@out NULL: none wanted). A file not
 * held yet is held by *@r itself, which the caller then no longer has
 * (*@r = NULL): one reader taken from the pool per file of the segment.
 * Comparing (device, inode) is sound as both readers map the file, which
 * therefore cannot have been freed and its inode number reused.
 * -ENOENT once the segment is dead (holds_release()).
 */
int hold_keep(struct sfs_seg *seg, speculo_reader **r, struct sfs_hold **out)
{
    struct sfs_hold *gone[SFS_HOLD_MAX]; /* each held file goes once */
    struct sfs_hold *h = NULL;
    unsigned ngone = 0;
    int64_t now = mono_ns();
    int rc = 0;

    pthread_mutex_lock(&holds_lock);
    if (seg->holds_off) {
        rc = -ENOENT;
    } else {
        ngone = list_expire(seg, now, gone);
        h = list_find(seg, *r);
    }
    if (rc == 0 && h == NULL) {
        h = hold_new(*r);
        if (h == NULL) {
            rc = -ENOMEM;
        } else {
            *r = NULL;
            ngone += list_push(seg, h, now, gone + ngone);
            ngone += list_expire(seg, now, gone + ngone);
        }
    }
    if (h != NULL && out != NULL)
        *out = hold_get(h);
    pthread_mutex_unlock(&holds_lock);
    put_all(gone, ngone);
    return rc;
}

/* Chunk @id (or a superseded version) in the held file @h, without
 * following the segment's name. A hold whose mapping faulted is broken:
 * SFS_FAULT, as from any guarded call. */
int hold_fetch(struct sfs_hold *h, uint64_t id, speculo_chunk *c)
{
    int rc;

    pthread_mutex_lock(&h->lock);
    rc = g_fetch_version(h->r, id, SPECULO_GET_SUPERSEDED, c);
    pthread_mutex_unlock(&h->lock);
    if (rc == SFS_FAULT) /* publishes: drop it at the next look at the list */
        atomic_store_explicit(&h->broken, 1, memory_order_relaxed);
    return rc;
}

/* Locked. A reference to each held file of @seg, newest first. */
static unsigned list_copy(const struct sfs_seg *seg, struct sfs_hold **v)
{
    unsigned n = 0;

    for (unsigned i = seg->nholds; i-- > 0;)
        v[n++] = hold_get(seg->holds[i]);
    return n;
}

/*
 * Chunk @id in the files of @seg held, newest first: the first file that
 * has the record decides, since any later change to it would be there (a
 * file older than that one may show it live where it was obsoleted since).
 * On success *@out is that hold, with a reference for the caller.
 */
int hold_search(struct sfs_seg *seg, uint64_t id, struct sfs_hold **out, speculo_chunk *c)
{
    struct sfs_hold *v[SFS_HOLD_MAX];
    unsigned n;
    int rc = -ENOENT;

    pthread_mutex_lock(&holds_lock);
    n = list_copy(seg, v);
    pthread_mutex_unlock(&holds_lock);
    *out = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (*out == NULL && rc == -ENOENT) {
            rc = hold_fetch(v[i], id, c);
            if (rc == 0) {
                *out = v[i];
                continue;
            }
        }
        hold_put(v[i]);
    }
    return rc;
}

/* The segment is dead (or the filesystem ends): its files are held no
 * longer, except by the files still open, and none will be until
 * holds_enable(). May be called with the segment table's lock held. */
void holds_release(struct sfs_seg *seg)
{
    struct sfs_hold *v[SFS_HOLD_MAX];
    unsigned n;

    pthread_mutex_lock(&holds_lock);
    seg->holds_off = 1;
    n = seg->nholds;
    for (unsigned i = 0; i < n; i++)
        v[i] = seg->holds[i];
    seg->nholds = 0;
    pthread_mutex_unlock(&holds_lock);
    put_all(v, n);
}

/* The segment is current (again): its files may be held. */
void holds_enable(struct sfs_seg *seg)
{
    pthread_mutex_lock(&holds_lock);
    seg->holds_off = 0;
    pthread_mutex_unlock(&holds_lock);
}

/* How many files @seg holds (for tests and the debug log). */
unsigned holds_count(const struct sfs_seg *seg)
{
    unsigned n;

    pthread_mutex_lock(&holds_lock);
    n = seg->nholds;
    pthread_mutex_unlock(&holds_lock);
    return n;
}
