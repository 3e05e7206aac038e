/*
 * The reader. It maps a segment file read-only and walks its records by
 * their commit words. It holds one mapping at a time: when the garbage
 * collector switches the segment, the reader maps the new file at its next
 * call and drops the old one then, so a chunk it returned stays valid until
 * that call, as the API promises.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "reader_sfs.h"

struct speculo_reader {
    char segment[SPECULO_SEGMENT_NAME_MAX + 1];
    struct seg_map map;
    uint64_t pos;                       /* offset of the next record to look at */
    uint64_t last_id;                   /* id of the last chunk returned (or sought past) */
    uint64_t scan_id;                   /* id of the record just before pos; 0 at the start */
    struct speculo_segment_ident ident; /* of the file mapped, taken when mapped */
    bool gone;                          /* the segment was removed */
    bool moved;                         /* mapped a file that does not follow ours, or found the
                              * segment gone, since the last speculo_reader_watch() report */
    uint64_t obs_seen;                  /* the file's obsolete count at that report (or 0) */
    uint64_t obs_pending;               /* obsoletions in files left since that report */
    struct seg_header *whdr;            /* writable map of the header page, for waiting */
    bool wait_fallback;                 /* no write access: wait by sleeping */
    char name_buf[SPECULO_CHUNK_NAME_MAX + 1]; /* the returned chunk's name */
};

static struct seg_header *r_header(const speculo_reader *r)
{
    return map_header(&r->map);
}

/* The count of obsolete records the writer published for this file. */
static uint64_t obsolete_count(const speculo_reader *r)
{
    /* observes: the count, stored with release after the marks it counts */
    return atomic_load_explicit(&r_header(r)->obsolete_count, memory_order_acquire);
}

/* What identifies the file just mapped; kept so that a later change of
 * these bytes in the file (a hostile writer) cannot make it waver. */
static void take_ident(speculo_reader *r)
{
    const struct seg_header *h = r_header(r);
    r->ident.uid = h->segment_uid;
    r->ident.created_ns = h->created_ns;
    r->ident.generation = h->generation;
}

static void drop_wait_header(speculo_reader *r)
{
    if (r->whdr)
        munmap(r->whdr, SEG_HEADER_SIZE);
    r->whdr = NULL;
}

/* Position after `after`: at the first record whose id is greater. The id
 * table gives it in O(log n); records committed after the table's count
 * was read are walked. */
static int position_after(speculo_reader *r, uint64_t after)
{
    const struct seg_header *h = r_header(r);
    /* observes: the id table entries the writer published */
    uint64_t n = atomic_load_explicit(&((struct seg_header *)h)->nrecords, memory_order_acquire);
    int64_t i = table_lower_bound(&r->map, n, after == UINT64_MAX ? UINT64_MAX : after + 1);
    if (i < 0)
        return (int)i;
    const uint64_t *table = seg_table(&r->map);
    uint64_t pos = r->map.lay.records_off, scan = 0;
    uint64_t last = after == UINT64_MAX ? r->last_id : after;
    struct rec_view v;
    if (i > 0) { /* the record before the position */
        if (rec_check(r->map.base, &r->map.lay, table[i - 1], &v) != 1)
            return -EBADMSG;
        pos = v.off + v.len;
        scan = v.id;
    }
    if ((uint64_t)i < n && table[i] != pos)
        return -EBADMSG; /* the table must list the records back to back */
    for (;;) {
        int rc = rec_check(r->map.base, &r->map.lay, pos, &v);
        if (rc < 0)
            return rc;
        if (rc == 0 || v.id > after)
            break;
        if (v.id <= scan)
            return -EBADMSG;
        last = scan = v.id;
        pos += v.len;
    }
    r->pos = pos;
    r->last_id = last;
    r->scan_id = scan;
    return 0;
}

/*
 * Obsolete marks are counted per file, and a collector's new file starts
 * its count at 0. When @m is the very file ours was superseded by (same
 * segment, the generation named by the mark), the obsoletions since the
 * last watch report are exactly: what our file counted since (final once
 * superseded: the writer moved on), plus all that the new file counts.
 * Returns the first part, or UINT64_MAX when @m is not that file (a
 * generation skipped, a removal, another segment): a move to report.
 */
static uint64_t obsoleted_before_switch(const speculo_reader *r, const struct seg_map *m)
{
    const struct seg_header *nh = map_header(m);
    /* observes: the mark, stored with release after the file's last count */
    uint64_t by = atomic_load_explicit(&r_header(r)->superseded, memory_order_acquire);
    uint64_t count = obsolete_count(r);
    if (r->gone || by == 0 || by == SUPERSEDED_REMOVED || nh->generation != by ||
        nh->segment_uid != r->ident.uid || count < r->obs_seen)
        return UINT64_MAX;
    return count - r->obs_seen;
}

/*
 * Look at the name again. 1: switched to a new file (positioned after the
 * last id returned, or at the start of a re-created segment); 0: the name
 * still holds our file; -ENOENT: the segment is gone (we keep our mapping).
 */
static int reader_switch(speculo_reader *r)
{
    int dirfd, fd;
    struct stat st;
    int rc = ns_open_dir(false, &dirfd);
    if (rc < 0)
        return rc;
    rc = ns_open_segment(dirfd, r->segment, false, &fd, &st);
    close(dirfd);
    if (rc == -ENOENT && !r->gone)
        r->gone = r->moved = true;
    if (rc < 0)
        return rc;
    if (st.st_dev == r->map.dev && st.st_ino == r->map.ino) {
        close(fd);
        r->gone = false;
        return 0;
    }
    struct seg_map m;
    rc = ns_map_fd(fd, &st, false, &m);
    close(fd);
    if (rc < 0)
        return rc;
    drop_wait_header(r);
    r->wait_fallback = false;
    uint64_t left = obsoleted_before_switch(r, &m);
    ns_unmap(&r->map);
    r->map = m;
    if (left != UINT64_MAX) {
        r->obs_pending += left;
        r->obs_seen = 0; /* a collector's file counts from 0 */
    } else {
        r->moved = true; /* what was obsoleted meanwhile is reported as the move */
        r->obs_seen = obsolete_count(r);
    }
    r->gone = false;
    uint64_t old_uid = r->ident.uid;
    take_ident(r);
    if (r->ident.uid != old_uid) /* a re-created segment, not a switched one */
        r->last_id = 0;
    rc = position_after(r, r->last_id);
    return rc < 0 ? rc : 1;
}

/* Before a lookup: move to the newest file if the segment was switched. */
static int reader_refresh(speculo_reader *r)
{
    /* observes: the collector's mark, set before it renames the new file */
    if (!r->gone && !atomic_load_explicit(&r_header(r)->superseded, memory_order_acquire))
        return 0;
    int rc = reader_switch(r);
    return rc == 1 ? 0 : rc;
}

int speculo_reader_open(const char *segment, speculo_reader **out)
{
    if (!out)
        return -EINVAL;
    int rc = speculo_segment_name_check(segment);
    if (rc < 0)
        return rc;
    speculo_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    memcpy(r->segment, segment, strlen(segment) + 1); /* fits: name checked */
    rc = ns_map_segment(segment, false, &r->map);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->pos = r->map.lay.records_off;
    r->obs_seen = obsolete_count(r);
    take_ident(r);
    *out = r;
    return 0;
}

void speculo_reader_close(speculo_reader *r)
{
    if (!r)
        return;
    drop_wait_header(r);
    ns_unmap(&r->map);
    free(r);
}

/* Fill the caller's chunk from a checked record. The name is copied into
 * the reader and checked again there: the pointer handed out must stay a
 * valid, terminated name even if another process rewrites the file. */
static int fill_chunk(speculo_reader *r, const struct rec_view *v, speculo_chunk *c)
{
    const char *name = NULL;
    if (v->name) {
        memcpy(r->name_buf, v->name, v->name_len);
        r->name_buf[v->name_len] = '\0';
        if (strlen(r->name_buf) != v->name_len || speculo_chunk_name_check(r->name_buf) < 0)
            return -EBADMSG;
        name = r->name_buf;
    }
    c->id = v->id;
    c->name = name;
    c->data = (const uint8_t *)v->h + REC_HEADER_SIZE;
    c->size = v->size;
    c->committed_ns = v->committed_ns;
    c->expires_ns = v->expires_ns;
    return 0;
}

int speculo_reader_next(speculo_reader *r, speculo_chunk *chunk)
{
    if (!r || !chunk)
        return -EINVAL;
    /* Once the segment was switched, the new file is the truth: it holds
     * every chunk that was live then, and obsolete marks made since, which
     * the rest of the old file would not show. A removed segment has
     * nothing more to give. */
    int rc = reader_refresh(r);
    if (rc < 0)
        return rc;
    int64_t now = 0;
    for (;;) {
        struct rec_view v;
        rc = rec_check(r->map.base, &r->map.lay, r->pos, &v);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            /* nothing committed here yet: did the segment move on since? */
            if (!atomic_load_explicit(&r_header(r)->superseded, memory_order_acquire))
                return -EAGAIN;
            rc = reader_switch(r);
            if (rc == 1)
                continue;
            return rc == 0 ? -EAGAIN : rc;
        }
        if (v.id <= r->scan_id)
            return -EBADMSG; /* ids must increase along the file */
        r->scan_id = v.id;
        r->pos += v.len;
        if (v.id <= r->last_id || !rec_live(&v, &now))
            continue; /* sought past, expired or obsolete */
        r->last_id = v.id;
        return fill_chunk(r, &v, chunk);
    }
}

/* The committed record with this id, live or not: 0, -ENOENT, -EBADMSG.
 * A binary search of the id table, then the record after the last one
 * counted (committed after the count was published). */
static int find_id(const speculo_reader *r, uint64_t id, struct rec_view *v)
{
    const struct seg_header *h = r_header(r);
    /* observes: the id table entries the writer published */
    uint64_t n = atomic_load_explicit(&((struct seg_header *)h)->nrecords, memory_order_acquire);
    int64_t i = table_lower_bound(&r->map, n, id);
    if (i < 0)
        return (int)i;
    if ((uint64_t)i < n) {
        if (rec_check(r->map.base, &r->map.lay, seg_table(&r->map)[i], v) != 1)
            return -EBADMSG;
    } else {
        /* maybe committed after the count was published: it is then right
         * after the last counted record (or first in the file) */
        uint64_t pos = r->map.lay.records_off;
        if (n > 0) {
            if (rec_check(r->map.base, &r->map.lay, seg_table(&r->map)[n - 1], v) != 1)
                return -EBADMSG;
            pos = v->off + v->len;
        }
        int rc = rec_check(r->map.base, &r->map.lay, pos, v);
        if (rc != 1)
            return rc < 0 ? rc : -ENOENT;
    }
    return v->id == id ? 0 : -ENOENT;
}

/*
 * get() found `v` in the index but obsolete. The writer publishes a new
 * version in the index before it marks the old one obsolete, so a lookup
 * that loaded the slot just before the first store and the mark just after
 * the second finds an obsolete record while a live version exists. When
 * the chunk that obsoleted `v` is a version of the same name, `v` was the
 * latest live version at the instant the slot was loaded: it is the answer
 * (its bytes never change). Obsoleted otherwise, or expired: no answer.
 * get_id() asks the same of a version speculofs looked up a moment ago.
 */
static bool was_latest(const speculo_reader *r, const struct rec_view *v, const char *name,
                       size_t len)
{
    /* observes: the mark, stored after the newer version was published */
    uint64_t by =
        atomic_load_explicit(&((struct rec_header *)v->h)->obsoleted_by, memory_order_acquire);
    if (by == 0 || by == OBSOLETE_EXPLICIT || by <= v->id)
        return false;
    if (v->expires_ns && v->expires_ns <= clock_wall_ns())
        return false;
    struct rec_view s;
    return find_id(r, by, &s) == 0 && s.name && s.name_len == len && memcmp(s.name, name, len) == 0;
}

int speculo_reader_get(speculo_reader *r, const char *name, speculo_chunk *chunk)
{
    if (!r || !chunk)
        return -EINVAL;
    int rc = speculo_chunk_name_check(name);
    if (rc < 0)
        return rc;
    if ((rc = reader_refresh(r)) < 0)
        return rc;
    size_t len = strlen(name);
    struct rec_view v;
    rc = index_lookup(&r->map, name, len, name_hash(r_header(r)->hash_seed, name, len), &v);
    if (rc < 0)
        return rc;
    int64_t now = 0;
    if (!rec_live(&v, &now) && !was_latest(r, &v, name, len))
        return -ENOENT;
    return fill_chunk(r, &v, chunk);
}

/* The chunk @id if live: 0, or -ENOENT with *@dead telling whether the
 * record is in the file but not live. With READER_SUPERSEDED, a version
 * is also taken when was_latest() says so: it checks the mark, the expiry
 * and the replacement's name, all from the file, so all checked. */
static int get_id(speculo_reader *r, uint64_t id, speculo_chunk *chunk, unsigned flags, bool *dead)
{
    *dead = false;
    if (!r || !chunk)
        return -EINVAL;
    if (!(flags & READER_HERE)) {
        int rc = reader_refresh(r);
        if (rc < 0)
            return rc;
    }
    struct rec_view v;
    int rc = find_id(r, id, &v);
    if (rc < 0)
        return rc;
    int64_t now = 0;
    if (!rec_live(&v, &now) &&
        !((flags & READER_SUPERSEDED) && v.name != NULL && was_latest(r, &v, v.name, v.name_len))) {
        *dead = true;
        return -ENOENT;
    }
    return fill_chunk(r, &v, chunk);
}

int speculo_reader_get_id(speculo_reader *r, uint64_t id, speculo_chunk *chunk)
{
    bool dead;
    return get_id(r, id, chunk, 0, &dead);
}

int reader_get_version(speculo_reader *r, uint64_t id, unsigned flags, speculo_chunk *chunk)
{
    bool dead;
    int rc = get_id(r, id, chunk, flags, &dead);
    return dead ? -ESTALE : rc;
}

void reader_file(const speculo_reader *r, struct reader_file_id *f)
{
    f->dev = r->map.dev;
    f->ino = r->map.ino;
    f->size = r->map.size;
}

int speculo_reader_seek(speculo_reader *r, uint64_t after_id)
{
    if (!r)
        return -EINVAL;
    int rc = reader_refresh(r);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    return position_after(r, after_id);
}

uint64_t speculo_chunk_replaces(const speculo_chunk *chunk)
{
    if (!chunk || !chunk->data)
        return 0;
    const struct rec_header *h =
        (const struct rec_header *)((const uint8_t *)chunk->data - REC_HEADER_SIZE);
    return h->replaces;
}

/* ------------------------------------------------------------------ */
/* Waiting.                                                            */

/* Is a record committed at our position (or has the segment moved on)?
 * With `watch`, also: did the reader move, or was a chunk obsoleted since
 * the last speculo_reader_watch() report? */
static bool reader_pending(const speculo_reader *r, bool watch)
{
    const struct seg_header *h = r_header(r);
    if (watch && (r->moved || r->obs_pending || obsolete_count(r) != r->obs_seen))
        return true;
    if (r->pos <= r->map.size - REC_HEADER_SIZE) {
        const struct rec_header *rec = (const struct rec_header *)(r->map.base + r->pos);
        /* observes: a commit at our position */
        if (atomic_load_explicit(&((struct rec_header *)rec)->commit, memory_order_acquire))
            return true;
    }
    /* observes: a switch or removal */
    return atomic_load_explicit(&((struct seg_header *)h)->superseded, memory_order_acquire) != 0;
}

/* Map the header page writable so that we can count ourselves as a waiter.
 * Without write access to the file we wait by sleeping instead. */
static void map_wait_header(speculo_reader *r)
{
    if (r->whdr || r->wait_fallback)
        return;
    int dirfd, fd;
    struct stat st;
    r->wait_fallback = true;
    if (ns_open_dir(false, &dirfd) < 0)
        return;
    int rc = ns_open_segment(dirfd, r->segment, true, &fd, &st);
    close(dirfd);
    if (rc < 0)
        return;
    if (st.st_dev == r->map.dev && st.st_ino == r->map.ino) {
        void *p = mmap(NULL, SEG_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            r->whdr = p;
            r->wait_fallback = false;
        }
    }
    close(fd);
}

static int64_t remaining_ns(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - clock_mono_ns();
    return left > 0 ? left : 0;
}

static int sleep_slice(int64_t left)
{
    int64_t ns = left < 0 || left > 1000000 ? 1000000 : left;
    struct timespec ts = {0, ns};
    return nanosleep(&ts, NULL) < 0 ? -EINTR : 0;
}

/* One futex sleep, registered as a waiter (see wait.c for the protocol). */
static int futex_sleep(speculo_reader *r, int64_t left, bool watch)
{
    struct seg_header *w = r->whdr;
    /* publishes: we wait; acquires the commits of writers that looked
     * before us (see wait.c) */
    atomic_fetch_add_explicit(&w->waiters, 1, memory_order_acq_rel);
    /* observes: the wake generation before we check for news */
    uint32_t seq = atomic_load_explicit(&w->wake_seq, memory_order_acquire);
    int rc = 0;
    if (!reader_pending(r, watch))
        rc = futex_wait_shared(&w->wake_seq, seq, left);
    /* publishes: we no longer wait */
    atomic_fetch_sub_explicit(&w->waiters, 1, memory_order_relaxed);
    return rc;
}

/* The loop of speculo_reader_wait() and speculo_reader_watch(): 0 when
 * there is news (reader_pending()), -ETIMEDOUT, -EINTR. */
static int wait_news(speculo_reader *r, int timeout_ms, bool watch)
{
    int64_t deadline = timeout_ms < 0 ? -1 : clock_mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        if (r->gone || atomic_load_explicit(&r_header(r)->superseded, memory_order_acquire)) {
            int rc = reader_switch(r);
            if (rc != 0)
                return 0; /* switched, removed or unreadable: next() says which */
            /* marked but not yet renamed: the switch is microseconds away */
        } else if (reader_pending(r, watch)) {
            return 0;
        } else {
            map_wait_header(r);
        }
        int64_t left = remaining_ns(deadline);
        if (left == 0)
            return reader_pending(r, watch) ? 0 : -ETIMEDOUT;
        int rc;
        if (r->whdr && !atomic_load_explicit(&r_header(r)->superseded, memory_order_acquire))
            rc = futex_sleep(r, left, watch);
        else
            rc = sleep_slice(left);
        if (rc == -EINTR)
            return -EINTR;
    }
}

int speculo_reader_wait(speculo_reader *r, int timeout_ms)
{
    if (!r)
        return -EINVAL;
    return wait_news(r, timeout_ms, false);
}

int speculo_reader_watch(speculo_reader *r, int timeout_ms, struct speculo_watch *ev)
{
    if (!r || !ev)
        return -EINVAL;
    int rc = wait_news(r, timeout_ms, true);
    if (rc < 0)
        return rc;
    uint64_t count = obsolete_count(r);
    struct speculo_watch w = {0};
    if (count < r->obs_seen)
        r->moved = true; /* counts only grow within a file: something rewrote it */
    else
        w.obsoleted = r->obs_pending + (count - r->obs_seen);
    w.moved = r->moved;
    r->obs_seen = count;
    r->obs_pending = 0;
    r->moved = false;
    *ev = w;
    return 0;
}

int speculo_reader_ident(const speculo_reader *r, struct speculo_segment_ident *id)
{
    if (!r || !id)
        return -EINVAL;
    *id = r->ident;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Information.                                                        */

static int count_records(const speculo_reader *r, struct speculo_segment_info *info)
{
    uint64_t pos = r->map.lay.records_off, prev = 0;
    int64_t now = clock_wall_ns();
    for (;;) {
        struct rec_view v;
        int rc = rec_check(r->map.base, &r->map.lay, pos, &v);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        if (v.id <= prev)
            return -EBADMSG;
        prev = v.id;
        if (!info->first_id)
            info->first_id = v.id;
        if (atomic_load_explicit(&((struct rec_header *)v.h)->obsoleted_by, memory_order_relaxed))
            info->obsolete_chunks++;
        else if (v.expires_ns && v.expires_ns <= now)
            info->expired_chunks++;
        else {
            info->live_chunks++;
            info->named_chunks += v.name != NULL;
        }
        pos += v.len;
    }
    info->bytes_used = pos - r->map.lay.records_off;
    if (prev > info->last_id)
        info->last_id = prev;
    return 0;
}

/* Does a live process hold the writer role of the segment? Its lock says
 * (see role.c), on the file the name holds now. */
static bool writer_alive(const speculo_reader *r)
{
    int dirfd;
    if (ns_open_dir(false, &dirfd) < 0)
        return false;
    int rc = speculo__role_held_at(dirfd, r->segment);
    close(dirfd);
    return rc == 1;
}

int speculo_reader_info(speculo_reader *r, struct speculo_segment_info *info)
{
    if (!r || !info)
        return -EINVAL;
    int rc = reader_refresh(r);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    struct seg_header *h = r_header(r);
    struct speculo_segment_info s = {0};
    s.format_version = h->version;
    s.generation = h->generation;
    s.capacity = r->map.lay.capacity;
    s.data_capacity = r->map.lay.capacity - r->map.lay.records_off;
    /* informational counters: relaxed, a snapshot */
    s.dead_bytes = atomic_load_explicit(&h->dead_bytes, memory_order_relaxed);
    s.last_id = atomic_load_explicit(&h->last_id, memory_order_relaxed);
    s.last_commit_ns = atomic_load_explicit(&h->last_commit_ns, memory_order_relaxed);
    s.created_ns = h->created_ns;
    /* informational: who holds the role, as the writer wrote it */
    uint64_t owner = atomic_load_explicit(&h->owner, memory_order_relaxed);
    s.writer_pid = owner ? owner_pid(owner) : 0;
    s.writer_alive = writer_alive(r);
    if ((rc = count_records(r, &s)) < 0)
        return rc;
    *info = s;
    return 0;
}
