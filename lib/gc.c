/*
 * The garbage collector. It copies the live records, in commit order and
 * unchanged (ids, names, times), into a new file under a temporary name,
 * then switches it in:
 *
 *   1. mark the old file superseded (release), so that readers who find
 *      nothing new at their position know to look at the name again;
 *   2. rename the new file over the old name (atomic in the directory);
 *   3. wake the readers blocked on the old file.
 *
 * Readers keep their mapping of the old file until their next call, so a
 * chunk they hold stays valid. A reader that sees the mark before the
 * rename finds the same file under the name and tries again later; if the
 * writer dies between 1 and 2, the next writer clears the mark.
 *
 * The cost is one header read per record in the file plus a copy of the
 * live bytes: dead payloads are never touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "writer.h"

struct live_totals {
    uint64_t bytes, records, names;
};

static void count_live(const speculo_writer *w, struct live_totals *t)
{
    const uint64_t *table = seg_table(&w->map);
    int64_t now = 0;
    memset(t, 0, sizeof *t);
    for (uint64_t i = 0; i < w->nrecords; i++) {
        struct rec_view v;
        if (speculo__rec_check(w->map.base, &w->map.lay, table[i], &v) != 1 ||
            !speculo__rec_live(&v, &now))
            continue;
        t->bytes += v.len;
        t->records++;
        t->names += v.name != NULL;
    }
}

/* Copy the live records into `m`, in order; returns the new tail. */
static uint64_t copy_live(speculo_writer *w, struct seg_map *m, struct live_totals *t)
{
    struct seg_header *nh = map_header(m);
    const uint64_t *table = seg_table(&w->map);
    uint64_t *ntable = seg_table(m);
    uint64_t tail = nh->records_off, n = 0, names = 0;
    int64_t now = 0;
    for (uint64_t i = 0; i < w->nrecords; i++) {
        struct rec_view v;
        if (speculo__rec_check(w->map.base, &w->map.lay, table[i], &v) != 1 ||
            !speculo__rec_live(&v, &now))
            continue;
        memcpy(m->base + tail, v.h, v.len);
        ntable[n++] = tail;
        if (v.name) {
            struct name_slot *slot;
            struct rec_view prev;
            uint64_t hash = speculo__name_hash(nh->hash_seed, v.name, v.name_len);
            if (speculo__index_slot_for(m, v.name, v.name_len, hash, &slot, &prev) == 0) {
                if (!prev.h) {
                    slot->hash = hash;
                    names++;
                }
                /* the file is not visible yet: the rename orders this */
                atomic_store_explicit(&slot->off, tail, memory_order_relaxed);
            }
        }
        tail += v.len;
    }
    t->records = n;
    t->names = names;
    return tail;
}

int speculo__writer_collect(speculo_writer *w, uint64_t need)
{
    if (w->forked)
        return -EBUSY;
    struct seg_header *oh = w_header(w);
    struct live_totals t;
    count_live(w, &t);
    uint64_t res_len = w->reserved ? rec_length(w->res_size, NAME_RESERVE - 1) : 0;
    uint64_t want = t.bytes + need + res_len + REC_ALIGN;
    uint64_t hint = 2 * want > w->base_capacity ? 2 * want : w->base_capacity;
    struct seg_layout l;
    /* Room for 2 x want in the record area itself, not just in the file:
     * with many names the index alone can take most of `hint`, and a file
     * whose records fit only what is live now is collected again at the
     * next alloc, and the next (O(n^2) copying). */
    speculo__seg_plan_layout(hint, 2 * want, t.records + 1, t.names + 1, &l);

    /* The new file takes the mode, owner and group the segment file has
     * now: a chmod or chgrp by its owner survives the switch. */
    struct stat st;
    if (fstat(w->fd, &st) < 0)
        return -errno;
    struct new_file f = {
        .capacity = l.capacity,
        .mode = st.st_mode & 0644,
        .uid = st.st_uid,
        .gid = st.st_gid,
    };
    /* allocate what the copy and the pending reservation will touch, and
     * some room ahead, so that neither they nor the next commits fault */
    f.allocate = align_up(l.records_off + want + ((uint64_t)256 << 10), SEG_PAGE);
    if (f.allocate > l.capacity)
        f.allocate = l.capacity;
    int dirfd;
    int rc = speculo__dir_open(&w->dir, true, &dirfd);
    if (rc < 0)
        return rc;
    struct seg_map m;
    rc = speculo__file_make(w, dirfd, "gc", &f, &m);
    if (rc < 0) {
        close(dirfd);
        return rc;
    }
    uint64_t generation = oh->generation + 1;
    m.lay = l;
    speculo__seg_init_header(map_header(&m), &l, generation, oh->segment_uid, oh->created_ns,
                             w->base_capacity, oh->hash_seed);
    struct seg_header *nh = map_header(&m);
    nh->min_next_id = w->next_id; /* ids are never reused, even if we die now */
    atomic_store_explicit(&nh->owner, w->token, memory_order_relaxed);
    /* informational: carried over */
    atomic_store_explicit(&nh->last_commit_ns,
                          atomic_load_explicit(&oh->last_commit_ns, memory_order_relaxed),
                          memory_order_relaxed);
    uint64_t tail = copy_live(w, &m, &t);
    if (w->reserved)
        memcpy(m.base + tail + REC_HEADER_SIZE, w->map.base + w->tail + REC_HEADER_SIZE,
               w->res_size);

    /* Complete before anyone can open it: a reader that follows the name
     * finds every copied record by id (nrecords bounds its id table). */
    struct seg_totals nt = {.committed_end = tail,
                            .last_id = w->next_id - 1,
                            .names_used = t.names,
                            .nrecords = t.records};
    speculo__header_publish_totals(nh, &nt);
    /* publishes: "look at the name again" to readers of the old file */
    atomic_store_explicit(&oh->superseded, generation, memory_order_release);
    rc = speculo__file_link(w, dirfd, &f, true);
    if (rc < 0) {
        atomic_store_explicit(&oh->superseded, 0, memory_order_release);
        speculo__file_abandon(w, dirfd, &f, &m);
        close(dirfd);
        return rc;
    }
    close(dirfd);
    speculo__wake_waiters(oh);
    speculo__role_switch(w); /* the old file's lock goes with its descriptor */
    speculo__ns_unmap(&w->map);
    w->map = m;
    w->tail = tail;
    w->nrecords = t.records;
    w->names_used = t.names;
    w->dead_bytes = 0;
    w->obsolete_count = 0;
    w->faulted_end = f.allocate;
    speculo__writer_publish_totals(w);
    return 0;
}

int speculo_writer_gc(speculo_writer *w)
{
    if (!w)
        return -EINVAL;
    return speculo__writer_collect(w, 0);
}
