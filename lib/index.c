/*
 * The name index: open addressing with linear probing, in the segment.
 * Only the writer inserts; a slot, once taken, keeps its name for the life
 * of the file and only its record offset moves forward to newer versions.
 * So a reader needs no lock: it acquires a slot's offset, and everything
 * the writer wrote before publishing that offset is visible.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* Does the committed record at `off` carry exactly this name? */
static int slot_matches(const struct seg_map *m, uint64_t off, const char *name, size_t len,
                        struct rec_view *v)
{
    int rc = speculo__rec_check(m->base, &m->lay, off, v);
    if (rc != 1)
        return -EBADMSG; /* a published slot always names a committed record */
    return v->name && v->name_len == len && memcmp(v->name, name, len) == 0;
}

/* Find the newest record of `name`. Probing stops at an empty slot, and in
 * a hostile file after visiting every slot once. */
int speculo__index_lookup(const struct seg_map *m, const char *name, size_t len, uint64_t hash,
                          struct rec_view *v)
{
    struct name_slot *slots = seg_index(m);
    uint64_t mask = m->lay.index_slots - 1;
    for (uint64_t i = 0, s = hash & mask; i <= mask; i++, s = (s + 1) & mask) {
        /* observes: the writer's release store publishing slot and record */
        uint64_t off = atomic_load_explicit(&slots[s].off, memory_order_acquire);
        if (off == 0)
            return -ENOENT;
        if (slots[s].hash != hash)
            continue;
        int rc = slot_matches(m, off, name, len, v);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    return -ENOENT;
}

/*
 * Writer side: the slot that holds `name`, or the empty slot where it goes.
 * `prev` receives the record it points to (prev->h NULL when the slot is
 * empty). -ENOSPC when the table has no room (the writer keeps the load
 * under 1/2, so this only happens in a corrupted file).
 */
int speculo__index_slot_for(const struct seg_map *m, const char *name, size_t len, uint64_t hash,
                            struct name_slot **slot, struct rec_view *prev)
{
    struct name_slot *slots = seg_index(m);
    uint64_t mask = m->lay.index_slots - 1;
    prev->h = NULL;
    for (uint64_t i = 0, s = hash & mask; i <= mask; i++, s = (s + 1) & mask) {
        /* observes: only this writer stores offsets; relaxed reads its own */
        uint64_t off = atomic_load_explicit(&slots[s].off, memory_order_relaxed);
        if (off == 0) {
            *slot = &slots[s];
            return 0;
        }
        if (slots[s].hash != hash)
            continue;
        int rc = slot_matches(m, off, name, len, prev);
        if (rc == 1) {
            *slot = &slots[s];
            return 0;
        }
        prev->h = NULL;
    }
    return -ENOSPC;
}
