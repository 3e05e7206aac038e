/*
 * When a record is live. Every decision to show a chunk or not, to copy it
 * at a collection or not, and every count of live, expired and obsolete
 * chunks, asks here. (speculo__rec_live() itself is inline, in
 * internal.h: it is on every reader's path.)
 *
 *   live      no obsolete mark, and no expiry or one still to come
 *   obsolete  marked: by the id of the chunk that replaced it (a named
 *             update, or `replaces`), or OBSOLETE_EXPLICIT
 *   expired   unmarked, its expiry passed
 *
 * One exception, for lookups: a version that an update of its own name
 * obsoleted a moment ago (speculo__rec_was_latest()).
 */
#include <string.h>

#include "internal.h"

enum rec_state speculo__rec_state(const struct rec_view *v, int64_t now, uint64_t *by)
{
    /* observes: a mark stored by the writer */
    uint64_t mark =
        atomic_load_explicit(&((struct rec_header *)v->h)->obsoleted_by, memory_order_relaxed);
    if (by)
        *by = mark;
    if (mark)
        return REC_OBSOLETE;
    return v->expires_ns && v->expires_ns <= now ? REC_EXPIRED : REC_LIVE;
}

/*
 * A lookup found `v` (in the name index, or by an id it got from an
 * earlier lookup) but obsolete. The writer publishes a new version in the
 * index before it marks the old one obsolete, so a lookup that loaded the
 * slot just before the first store and the mark just after the second
 * finds an obsolete record while a live version exists. When the chunk
 * that obsoleted `v` is a version of the same name, `v` was the latest
 * live version at the instant the slot was loaded: it is the answer (its
 * bytes never change). Obsoleted otherwise, or expired: no answer. All it
 * looks at comes from the file @m and is checked.
 */
bool speculo__rec_was_latest(const struct seg_map *m, const struct rec_view *v, const char *name,
                             size_t len)
{
    /* observes: the mark, stored after the newer version was published */
    uint64_t by =
        atomic_load_explicit(&((struct rec_header *)v->h)->obsoleted_by, memory_order_acquire);
    if (by == 0 || by == OBSOLETE_EXPLICIT || by <= v->id)
        return false;
    if (v->expires_ns && v->expires_ns <= speculo__clock_wall_ns())
        return false;
    struct rec_view s;
    return speculo__find_id(m, by, &s) == 0 && s.name && s.name_len == len &&
           memcmp(s.name, name, len) == 0;
}
