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

#include "reader.h"

/* What identifies the file just mapped; kept so that a later change of
 * these bytes in the file (a hostile writer) cannot make it waver. */
static void take_ident(speculo_reader *r)
{
    const struct seg_header *h = r_header(r);
    r->ident.uid = h->segment_uid;
    r->ident.created_ns = h->created_ns;
    r->ident.generation = h->generation;
    r->ident.capacity = r->map.size;
    r->ident.dev = r->map.dev;
    r->ident.ino = r->map.ino;
}

/* A mapping shared between a reader and the references handed out by
 * speculo_reader_hold(): made at the first hold, unmapped by whichever
 * lets go last. */
struct speculo_mapping {
    _Atomic unsigned refs;
    void *base;
    size_t size;
};

void speculo_mapping_release(speculo_mapping *m)
{
    /* observes: every other holder's use of the bytes, before we unmap */
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        munmap(m->base, m->size);
        free(m);
    }
}

int speculo_reader_hold(speculo_reader *r, speculo_mapping **out)
{
    if (!r || !out)
        return -EINVAL;
    if (!r->held) {
        speculo_mapping *m = malloc(sizeof *m);
        if (!m)
            return -ENOMEM;
        atomic_init(&m->refs, 1); /* the reader's */
        m->base = r->map.base;
        m->size = r->map.size;
        r->held = m;
    }
    /* the caller holds the reader's reference meanwhile: relaxed */
    atomic_fetch_add_explicit(&r->held->refs, 1, memory_order_relaxed);
    *out = r->held;
    return 0;
}

/* The reader lets go of the file it maps (a switch, its close). */
static void drop_map(speculo_reader *r)
{
    if (r->held) {
        speculo_mapping_release(r->held);
        r->held = NULL;
        r->map.base = NULL;
        r->map.size = 0;
    } else {
        speculo__ns_unmap(&r->map);
    }
}

/* Position after `after`: at the first record whose id is greater. The id
 * table gives it in O(log n); records committed after the table's count
 * was read are walked. */
static int position_after(speculo_reader *r, uint64_t after)
{
    const struct seg_header *h = r_header(r);
    /* observes: the id table entries the writer published */
    uint64_t n = atomic_load_explicit(&((struct seg_header *)h)->nrecords, memory_order_acquire);
    int64_t i =
        speculo__table_lower_bound(&r->map, n, after == UINT64_MAX ? UINT64_MAX : after + 1);
    if (i < 0)
        return (int)i;
    const uint64_t *table = seg_table(&r->map);
    uint64_t pos = r->map.lay.records_off, scan = 0;
    uint64_t last = after == UINT64_MAX ? r->last_id : after;
    struct rec_view v;
    if (i > 0) { /* the record before the position */
        if (speculo__rec_check(r->map.base, &r->map.lay, table[i - 1], &v) != 1)
            return -EBADMSG;
        pos = v.off + v.len;
        scan = v.id;
    }
    if ((uint64_t)i < n && table[i] != pos)
        return -EBADMSG; /* the table must list the records back to back */
    for (;;) {
        int rc = speculo__rec_check(r->map.base, &r->map.lay, pos, &v);
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
    r->ahead_end = 0;
    r->ahead_check = 0;
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
    uint64_t count = r_obsolete_count(r);
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
int speculo__reader_switch(speculo_reader *r)
{
    int dirfd, fd;
    struct stat st;
    int rc = speculo__dir_open(&r->dir, false, &dirfd);
    if (rc < 0)
        return rc;
    rc = speculo__ns_open_segment(dirfd, r->segment, false, &fd, &st);
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
    rc = speculo__ns_map_fd(fd, &st, false, &m);
    close(fd);
    if (rc < 0)
        return rc;
    speculo__reader_drop_wait(r);
    uint64_t left = obsoleted_before_switch(r, &m);
    drop_map(r);
    r->map = m;
    r->get_slot = NULL;
    if (left != UINT64_MAX) {
        r->obs_pending += left;
        r->obs_seen = 0; /* a collector's file counts from 0 */
    } else {
        r->moved = true; /* what was obsoleted meanwhile is reported as the move */
        r->obs_seen = r_obsolete_count(r);
    }
    r->gone = false;
    uint64_t old_uid = r->ident.uid;
    take_ident(r);
    if (r->ident.uid != old_uid) /* a re-created segment, not a switched one */
        r->last_id = 0;
    rc = position_after(r, r->last_id);
    return rc < 0 ? rc : 1;
}

int speculo__reader_refresh_switch(speculo_reader *r)
{
    int rc = speculo__reader_switch(r);
    return rc == 1 ? 0 : rc;
}

int speculo_reader_open_at(const char *dir, const char *segment, unsigned flags,
                           speculo_reader **out)
{
    if (!out || (flags & ~SPECULO_READER_PINNED))
        return -EINVAL;
    int rc = speculo_segment_name_check(segment);
    if (rc < 0)
        return rc;
    speculo_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    memcpy(r->segment, segment, strlen(segment) + 1); /* fits: name checked */
    r->flags = flags;
    rc = speculo__dir_get(dir, &r->dir);
    if (rc == 0)
        rc = speculo__ns_map_segment(&r->dir, segment, false, &r->map);
    if (rc < 0) {
        speculo__dir_put(&r->dir);
        free(r);
        return rc;
    }
    r->pos = r->map.lay.records_off;
    r->obs_seen = r_obsolete_count(r);
    take_ident(r);
    *out = r;
    return 0;
}

int speculo_reader_pin(speculo_reader *r)
{
    if (!r)
        return -EINVAL;
    r->flags |= SPECULO_READER_PINNED;
    return 0;
}

int speculo_reader_open(const char *segment, speculo_reader **out)
{
    return speculo_reader_open_at(NULL, segment, 0, out);
}

void speculo_reader_close(speculo_reader *r)
{
    if (!r)
        return;
    speculo__reader_drop_wait(r);
    drop_map(r);
    speculo__dir_put(&r->dir);
    free(r);
}

/* The name of a checked record, copied into the reader and checked there:
 * the pointer handed out must stay a valid, terminated name even if
 * another process rewrites the file. NULL when it is not a valid name. */
const char *speculo__copy_name(speculo_reader *r, const struct rec_view *v)
{
    memcpy(r->name_buf, v->name, v->name_len);
    r->name_buf[v->name_len] = '\0';
    return speculo__chunk_name_valid(r->name_buf, v->name_len) ? r->name_buf : NULL;
}

/*
 * A reader far behind the writer reads faster when it prefetches each
 * record's payload line: the lines it touches are then consecutive, and the
 * hardware prefetcher runs ahead of it (a walk over 64-byte chunks took half
 * the time). Near the tail that same prefetcher would run into the lines the
 * writer is about to fill, and each commit would have to take one more line
 * back from the reader. So the payload is prefetched only up to AHEAD_MARGIN
 * before the end of the records as last seen in the header, which is looked
 * at once every AHEAD_EVERY records past that point (its line is the
 * writer's, rewritten at every commit). The end read is only a hint: a
 * prefetch never faults.
 */
#define AHEAD_MARGIN ((uint64_t)64 << 10)
#define AHEAD_EVERY 256u

static inline void prefetch_payload(speculo_reader *r, const uint8_t *rec)
{
    if (r->pos < r->ahead_end) {
        __builtin_prefetch(rec + REC_HEADER_SIZE);
        return;
    }
    if (r->ahead_check--)
        return;
    r->ahead_check = AHEAD_EVERY;
    /* observes: where the records end, as a hint */
    uint64_t end = atomic_load_explicit(&r_header(r)->committed_end, memory_order_relaxed);
    if (end > r->pos && end - r->pos > AHEAD_MARGIN)
        r->ahead_end = end - AHEAD_MARGIN;
}

/* The next live chunk at or after the reader's position, or -EAGAIN. */
static __attribute__((noinline)) int next_chunk(speculo_reader *r, speculo_chunk *chunk)
{
    int64_t now = 0;
    for (;;) {
        struct rec_view v;
        prefetch_payload(r, r->map.base + r->pos);
        int rc = speculo__rec_view_at(r->map.base, r->map.lay.capacity, r->pos, &v);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            /* nothing committed here yet: did the segment move on since? */
            if ((r->flags & SPECULO_READER_PINNED) || !r_superseded(r))
                return -EAGAIN;
            rc = speculo__reader_switch(r);
            if (rc == 1)
                continue;
            return rc == 0 ? -EAGAIN : rc;
        }
        if (v.id <= r->scan_id)
            return -EBADMSG; /* ids must increase along the file */
        r->scan_id = v.id;
        r->pos += v.len;
        if (v.id <= r->last_id || !speculo__rec_live(&v, &now))
            continue; /* sought past, expired or obsolete */
        r->last_id = v.id;
        return speculo__fill_chunk(r, &v, chunk);
    }
}

/*
 * The first question is the one a busy-polling reader asks over and over:
 * is the file still current, and is a commit word set at the position? It
 * is answered in a few instructions; the record is then checked in full.
 */
int speculo_reader_next(speculo_reader *r, speculo_chunk *chunk)
{
    if (!r || !chunk)
        return -EINVAL;
    if (!(r->flags & SPECULO_READER_PINNED) && (r->gone || r_superseded(r))) {
        /* Once the segment was switched, the new file is the truth: it
         * holds every chunk that was live then, and obsolete marks made
         * since, which the rest of the old file would not show. A removed
         * segment has nothing more to give. */
        int rc = speculo__reader_refresh_switch(r);
        return rc < 0 ? rc : next_chunk(r, chunk);
    }
    if (r->map.lay.capacity - r->pos >= REC_HEADER_SIZE) {
        const struct rec_header *rec = (const struct rec_header *)(r->map.base + r->pos);
        /* observes: a commit at our position (next_chunk() acquires it) */
        if (atomic_load_explicit(&((struct rec_header *)rec)->commit, memory_order_relaxed))
            return next_chunk(r, chunk);
    }
    return -EAGAIN;
}

/* The newest record of a valid @name: through the slot found for it last
 * time, else by a lookup, whose slot is kept for next time. */
static int find_name(speculo_reader *r, const char *name, size_t len, bool again,
                     struct rec_view *v)
{
    if (again && r->get_slot) {
        int rc = speculo__index_at(&r->map, r->get_slot, name, len, v);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    uint64_t hash = speculo__name_hash(r_header(r)->hash_seed, name, len);
    struct name_slot *slot = NULL;
    int rc = speculo__index_lookup(&r->map, name, len, hash, v, &slot);
    if (rc == 0) {
        /* memmove: the name may be the one a get() handed out, get_name */
        memmove(r->get_name, name, len + 1);
        r->get_len = len;
        r->get_slot = slot;
    }
    return rc;
}

int speculo_reader_get(speculo_reader *r, const char *name, speculo_chunk *chunk)
{
    if (!r || !chunk || !name)
        return -EINVAL;
    /* the name of the last get() was checked then */
    bool again = r->get_slot && strcmp(name, r->get_name) == 0;
    ssize_t n = again ? (ssize_t)r->get_len : speculo__chunk_name_len(name);
    if (n < 0)
        return (int)n;
    int rc = speculo__reader_refresh(r); /* a switch forgets the slot */
    if (rc < 0)
        return rc;
    size_t len = (size_t)n;
    struct rec_view v, newer;
    rc = find_name(r, name, len, again, &v);
    if (rc < 0)
        return rc;
    int64_t now = 0;
    if (!speculo__rec_live(&v, &now)) {
        /* Marked since we read the slot: an update moves the slot to the
         * new version before it marks the old one, so the slot most likely
         * holds the new version now, the answer. Else: was ours the
         * latest when we read the slot? */
        if (find_name(r, name, len, true, &newer) == 0 && speculo__rec_live(&newer, &now))
            v = newer;
        else if (!speculo__rec_was_latest(&r->map, &v, name, len))
            return -ENOENT;
    }
    /* the record's name was compared byte for byte with the one asked for,
     * of which get_name is the checked copy */
    speculo__chunk_set(chunk, &v, r->get_name);
    return 0;
}

/* The chunk @id if live: 0, or -ENOENT with *@dead telling whether the
 * record is in the file but not live. With SPECULO_GET_SUPERSEDED, a
 * version is also taken when speculo__rec_was_latest() says so. */
static int get_id(speculo_reader *r, uint64_t id, speculo_chunk *chunk, unsigned flags, bool *dead)
{
    *dead = false;
    if (!r || !chunk)
        return -EINVAL;
    int rc = speculo__reader_refresh(r);
    if (rc < 0)
        return rc;
    struct rec_view v;
    rc = speculo__find_id(&r->map, id, &v);
    if (rc < 0)
        return rc;
    int64_t now = 0;
    if (!speculo__rec_live(&v, &now) &&
        !((flags & SPECULO_GET_SUPERSEDED) && v.name != NULL &&
          speculo__rec_was_latest(&r->map, &v, v.name, v.name_len))) {
        *dead = true;
        return -ENOENT;
    }
    return speculo__fill_chunk(r, &v, chunk);
}

int speculo_reader_get_id(speculo_reader *r, uint64_t id, speculo_chunk *chunk)
{
    bool dead;
    return get_id(r, id, chunk, 0, &dead);
}

int speculo_reader_get_version(speculo_reader *r, uint64_t id, unsigned flags, speculo_chunk *chunk)
{
    if (flags & ~SPECULO_GET_SUPERSEDED)
        return -EINVAL;
    bool dead;
    int rc = get_id(r, id, chunk, flags, &dead);
    return dead ? -ESTALE : rc;
}

int speculo_reader_seek(speculo_reader *r, uint64_t after_id)
{
    if (!r)
        return -EINVAL;
    int rc = speculo__reader_refresh(r);
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
    int64_t now = speculo__clock_wall_ns(), prev_ns = 0;
    for (;;) {
        struct rec_view v;
        int rc = speculo__rec_check(r->map.base, &r->map.lay, pos, &v);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        if (v.id <= prev)
            return -EBADMSG;
        prev = v.id;
        prev_ns = v.committed_ns;
        if (!info->first_id)
            info->first_id = v.id;
        switch (speculo__rec_state(&v, now, NULL)) {
        case REC_OBSOLETE:
            info->obsolete_chunks++;
            break;
        case REC_EXPIRED:
            info->expired_chunks++;
            break;
        case REC_LIVE:
            info->live_chunks++;
            info->named_chunks += v.name != NULL;
            break;
        }
        pos += v.len;
    }
    info->bytes_used = pos - r->map.lay.records_off;
    if (prev > info->last_id) { /* committed since the writer last published its totals */
        info->last_id = prev;
        info->last_commit_ns = prev_ns;
    }
    return 0;
}

/* Does a live process hold the writer role of the segment? Its lock says
 * (see role.c), on the file the name holds now. */
static bool writer_alive(const speculo_reader *r)
{
    int dirfd;
    if (speculo__dir_open(&r->dir, false, &dirfd) < 0)
        return false;
    int rc = speculo__role_held_at(dirfd, r->segment);
    close(dirfd);
    return rc == 1;
}

int speculo_reader_info(speculo_reader *r, struct speculo_segment_info *info)
{
    if (!r || !info)
        return -EINVAL;
    int rc = speculo__reader_refresh(r);
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
