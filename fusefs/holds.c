/*
 * Segment files held mapped for the opens to come.
 *
 * Between the LOOKUP and the OPEN of a named chunk, the writer may replace
 * the version and the collector switch to a file without it. So the file a
 * LOOKUP read a named chunk from is held for a while, and an OPEN that does
 * not find its chunk in the current file looks in the held ones, newest
 * first (SPECULO_GET_SUPERSEDED). A hold is a pinned reader: it stays on
 * its file. Every OPEN takes a reference to the file it serves from (held
 * too), which keeps its bytes mapped until the RELEASE; opens of one file
 * share that mapping. The lists (sfs_seg.holds, oldest first) are under
 * the segment table's lock; only a current incarnation holds files.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sfs.h"

struct sfs_hold {
    atomic_uint refs;            /* the segment's list, and each open file */
    pthread_mutex_t reader_lock; /* one call at a time on r (it fills buffers) */
    speculo_reader *r;           /* pinned: one file */
    struct speculo_segment_ident file;
    int64_t superseded_ns; /* monotonic; when a newer file was held, or 0 */
    atomic_int broken;     /* the file was truncated under the mapping */
    /* Under reader_lock: the file opened for spliced reads (hold_file()),
     * where the mapping starts, and whether that was tried. */
    int fd;
    uintptr_t base;
    int fd_tried;
};

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
    pthread_mutex_init(&h->reader_lock, NULL);
    h->fd = -1;
    h->r = r;
    speculo_reader_pin(r);
    speculo_reader_ident(r, &h->file);
    return h;
}

static struct sfs_hold *hold_get(struct sfs_hold *h)
{
    /* relaxed: the caller already holds a reference (or the list's lock) */
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
    if (h->fd >= 0)
        close(h->fd);
    pthread_mutex_destroy(&h->reader_lock);
    free(h);
}

static int broken(const struct sfs_hold *h)
{
    /* observes: a fault seen by hold_fetch() (nothing else depends on it) */
    return atomic_load_explicit(&h->broken, memory_order_relaxed);
}

/* Locked. Entry @i leaves the list; its reference goes to @out. */
static void list_remove(struct sfs_seg *seg, unsigned i, struct sfs_hold **out)
{
    *out = seg->holds[i];
    for (unsigned k = i + 1; k < seg->nholds; k++)
        seg->holds[k - 1] = seg->holds[k];
    seg->nholds--;
}

/* Locked. Keep what the bounds allow, from the newest back: the newest
 * file; an older one for SFS_HOLD_NS after it was superseded; and beyond
 * the two newest kept, older ones only while their sizes add up to
 * SFS_HOLD_BYTES. A file whose mapping faulted goes. The references let go
 * are added to @out; returns how many. */
static unsigned list_expire(struct sfs_seg *seg, int64_t now, struct sfs_hold **out)
{
    unsigned n = 0, kept = 0;
    uint64_t bytes = 0; /* of the files kept beyond the two newest */

    for (unsigned i = seg->nholds; i-- > 0;) {
        struct sfs_hold *h = seg->holds[i];
        int keep = !broken(h) && (h->superseded_ns == 0 || now - h->superseded_ns <= SFS_HOLD_NS) &&
                   (kept < 2 || bytes + h->file.capacity <= SFS_HOLD_BYTES);
        if (!keep) {
            list_remove(seg, i, &out[n++]);
            continue;
        }
        if (kept++ >= 2)
            bytes += h->file.capacity;
    }
    return n;
}

/* Locked. The held file @r maps, or NULL. Comparing (device, inode) is
 * sound as both readers map the file, whose inode cannot be reused. */
static struct sfs_hold *list_find(const struct sfs_seg *seg, const speculo_reader *r)
{
    struct speculo_segment_ident f;

    speculo_reader_ident(r, &f);
    for (unsigned i = seg->nholds; i-- > 0;)
        if (seg->holds[i]->file.dev == f.dev && seg->holds[i]->file.ino == f.ino &&
            !broken(seg->holds[i]))
            return seg->holds[i];
    return NULL;
}

/*
 * Make sure the file *@r (a reader of @seg) maps is held, and return that
 * hold with a reference for the caller (@out NULL: none wanted). A file not
 * held yet is held by *@r itself, which the caller then no longer has
 * (*@r = NULL): one reader taken from the pool per file of the segment.
 * -ENOENT once the incarnation is not current.
 */
int hold_keep(struct sfs_seg *seg, speculo_reader **r, struct sfs_hold **out)
{
    struct sfs_hold *gone[SFS_HOLD_MAX + 1];
    struct sfs_hold *h = NULL;
    unsigned ngone = 0;
    int64_t now = mono_ns();
    int rc = 0;

    segtab_lock();
    if (seg->state != SEG_CURRENT) {
        rc = -ENOENT;
    } else if ((h = list_find(seg, *r)) == NULL) {
        h = hold_new(*r);
        if (h == NULL) {
            rc = -ENOMEM;
        } else {       /* the newest held file; the oldest goes if the list is full */
            *r = NULL; /* the hold's now */
            if (seg->nholds == SFS_HOLD_MAX)
                list_remove(seg, 0, &gone[ngone++]);
            if (seg->nholds > 0)
                seg->holds[seg->nholds - 1]->superseded_ns = now;
            seg->holds[seg->nholds++] = h;
        }
    }
    if (h != NULL) {
        if (out != NULL)
            *out = hold_get(h);
        ngone += list_expire(seg, now, gone + ngone);
    }
    segtab_unlock();
    for (unsigned i = 0; i < ngone; i++)
        hold_put(gone[i]);
    return rc;
}

/* Chunk @id as g_fetch_version() with @flags finds it in the held file
 * @h, without following the segment's name. A hold whose mapping faulted
 * is broken: SFS_FAULT, as from any guarded call. */
int hold_fetch(struct sfs_hold *h, uint64_t id, unsigned flags, speculo_chunk *c)
{
    int rc;

    pthread_mutex_lock(&h->reader_lock);
    rc = g_fetch_version(h->r, id, flags, c);
    pthread_mutex_unlock(&h->reader_lock);
    if (rc == SFS_FAULT) /* publishes: drop it at the next look at the list */
        atomic_store_explicit(&h->broken, 1, memory_order_relaxed);
    return rc;
}

static int same_file(int stat_rc, const struct stat *st, const struct sfs_hold *h)
{
    return stat_rc == 0 && S_ISREG(st->st_mode) && st->st_dev == h->file.dev &&
           st->st_ino == h->file.ino;
}

/* Locked (reader_lock). Open the file @h maps, by the name of @segment
 * (the same file: device and inode, looked at before opening, so that no
 * FIFO or device put there is opened, and after), and learn where the
 * mapping starts from record @id: the page its payload lies in, less its
 * offset. */
static void open_file(struct sfs_hold *h, const char *segment, uint64_t id)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct speculo_record rec;
    char path[PATH_MAX];
    struct stat st;
    uintptr_t base, data;
    int fd;

    h->fd_tried = 1;
    if (g_record(h->r, id, 0, &rec) != 0 ||
        snprintf(path, sizeof path, "%s/%s", segtab_dir(), segment) >= (int)sizeof path)
        return;
    data = (uintptr_t)rec.chunk.data;
    base = (data - (uintptr_t)rec.offset) & ~(page - 1);
    if (data - base < rec.offset || data - base - rec.offset >= rec.length)
        return;
    if (!same_file(lstat(path, &st), &st, h))
        return; /* the name holds a newer file by now */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return;
    if (!same_file(fstat(fd, &st), &st, h) || fcntl(fd, F_SETFL, 0) != 0) {
        close(fd);
        return;
    }
    h->fd = fd;
    h->base = base;
}

/*
 * The file @h maps, open for spliced reads (ops.c), and the offset of
 * chunk @c (returned from @h) in it; -1 when the file cannot be had (the
 * name @segment holds another by now, no descriptor is left): the chunk is
 * then read from the mapping. Opened at the first call, closed with the
 * hold.
 */
int hold_file(struct sfs_hold *h, const char *segment, const speculo_chunk *c, uint64_t *off)
{
    uintptr_t p = (uintptr_t)c->data, base;
    int fd;

    pthread_mutex_lock(&h->reader_lock);
    if (!h->fd_tried)
        open_file(h, segment, c->id);
    fd = h->fd;
    base = h->base;
    pthread_mutex_unlock(&h->reader_lock);
    if (fd < 0 || p < base || p - base > h->file.capacity ||
        c->size > h->file.capacity - (p - base))
        return -1;
    *off = p - base;
    return fd;
}

/* Chunk @id in the files of @seg held, newest first: the first file that
 * has the record decides, since any later change to it would be there (a
 * file older than that one may show it live where it was obsoleted since).
 * On success *@out is that hold, with a reference for the caller. */
int hold_search(struct sfs_seg *seg, uint64_t id, struct sfs_hold **out, speculo_chunk *c)
{
    struct sfs_hold *v[SFS_HOLD_MAX];
    unsigned n = 0;
    int rc = -ENOENT;

    segtab_lock();
    for (unsigned i = seg->nholds; i-- > 0;)
        v[n++] = hold_get(seg->holds[i]);
    segtab_unlock();
    *out = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (rc == -ENOENT && (rc = hold_fetch(v[i], id, SPECULO_GET_SUPERSEDED, c)) == 0)
            *out = v[i];
        else
            hold_put(v[i]);
    }
    return rc;
}

/* Locked. The incarnation is no longer current, or the filesystem ends:
 * its files are held no longer, but by the open files. */
void holds_drop(struct sfs_seg *seg)
{
    for (unsigned i = 0; i < seg->nholds; i++)
        hold_put(seg->holds[i]);
    seg->nholds = 0;
}

/* How many files @seg holds (for tests). */
unsigned holds_count(struct sfs_seg *seg)
{
    unsigned n;

    segtab_lock();
    n = seg->nholds;
    segtab_unlock();
    return n;
}
