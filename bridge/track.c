/*
 * The forwarder's tracker (track.h): vectors sorted by id and by sequence
 * (both only grow at the end in practice: chunks are read in id order,
 * messages stored in sequence order), an expiry heap, a name map, and a
 * compaction that drops what is dead and out of the stream.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "track.h"

void tk_init(struct tracker *t, uint64_t uid, tk_delete_fn del, void *arg)
{
    memset(t, 0, sizeof *t);
    t->uid = uid;
    t->del = del;
    t->del_arg = arg;
}

void tk_free(struct tracker *t)
{
    for (size_t i = 0; i < t->nm; i++)
        br_ids_free(&t->m[i].ids);
    for (size_t i = 0; i < t->no; i++)
        br_ids_free(&t->o[i].ids);
    for (size_t i = 0; i < t->names_cap; i++)
        free(t->names[i].name);
    free(t->due);
    free(t->c);
    free(t->m);
    free(t->o);
    free(t->h);
    free(t->names);
    memset(t, 0, sizeof *t);
}

/* ---- lookups ---------------------------------------------------------------- */

/* Index of the first chunk with an id >= id. */
static size_t chunk_lower(const struct tracker *t, uint64_t id)
{
    size_t lo = 0, hi = t->nc;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->c[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct tk_chunk *chunk_find(struct tracker *t, uint64_t id)
{
    size_t i = chunk_lower(t, id);
    return i < t->nc && t->c[i].id == id ? &t->c[i] : NULL;
}

static size_t msg_lower(const struct tracker *t, uint64_t seq)
{
    size_t lo = 0, hi = t->nm;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->m[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Add a chunk (or find it): ids come in increasing order but for
 * duplicates, so insertion in the middle is rare. */
static struct tk_chunk *chunk_add(struct tracker *t, uint64_t id, bool *added)
{
    *added = false;
    size_t i = t->nc && t->c[t->nc - 1].id < id ? t->nc : chunk_lower(t, id);
    if (i < t->nc && t->c[i].id == id)
        return &t->c[i];
    if (br_grow((void **)&t->c, &t->capc, t->nc + 1, sizeof *t->c) < 0)
        return NULL;
    memmove(&t->c[i + 1], &t->c[i], (t->nc - i) * sizeof *t->c);
    t->nc++;
    t->c[i] = (struct tk_chunk){.id = id};
    *added = true;
    return &t->c[i];
}

/* ---- the expiry heap -------------------------------------------------------- */

static int heap_push(struct tracker *t, int64_t at, uint64_t id)
{
    if (br_grow((void **)&t->h, &t->caph, t->nh + 1, sizeof *t->h) < 0)
        return -ENOMEM;
    size_t i = t->nh++;
    while (i > 0 && t->h[(i - 1) / 2].at > at) {
        t->h[i] = t->h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->h[i] = (struct tk_heap_item){at, id};
    return 0;
}

static void heap_pop(struct tracker *t)
{
    struct tk_heap_item last = t->h[--t->nh];
    size_t i = 0;
    for (;;) {
        size_t k = 2 * i + 1;
        if (k >= t->nh)
            break;
        if (k + 1 < t->nh && t->h[k + 1].at < t->h[k].at)
            k++;
        if (t->h[k].at >= last.at)
            break;
        t->h[i] = t->h[k];
        i = k;
    }
    if (t->nh)
        t->h[i] = last;
}

/* ---- names ---------------------------------------------------------------------- */

static size_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static struct tk_name *name_slot(struct tracker *t, const char *name)
{
    size_t i = name_hash(name) & (t->names_cap - 1);
    while (t->names[i].name && strcmp(t->names[i].name, name) != 0)
        i = (i + 1) & (t->names_cap - 1);
    return &t->names[i];
}

static int names_grow(struct tracker *t)
{
    struct tracker old = *t;
    size_t cap = t->names_cap ? t->names_cap * 2 : 64;
    t->names = calloc(cap, sizeof *t->names);
    if (!t->names) {
        t->names = old.names;
        return -ENOMEM;
    }
    t->names_cap = cap;
    for (size_t i = 0; i < old.names_cap; i++)
        if (old.names[i].name)
            *name_slot(t, old.names[i].name) = old.names[i];
    free(old.names);
    return 0;
}

/* The id of the version of `name` we forwarded last (0: none); record id
 * as the new one. */
static int name_swap(struct tracker *t, const char *name, uint64_t id, uint64_t *prev)
{
    if ((t->names_used + 1) * 2 > t->names_cap && names_grow(t) < 0)
        return -ENOMEM;
    struct tk_name *s = name_slot(t, name);
    *prev = 0;
    if (s->name) {
        *prev = s->id;
    } else {
        s->name = strdup(name);
        if (!s->name)
            return -ENOMEM;
        t->names_used++;
    }
    s->id = id;
    return 0;
}

/* ---- deaths and deletions ------------------------------------------------------------ */

static void msg_delete(struct tracker *t, struct tk_msg *m)
{
    if (m->gone)
        return;
    m->gone = true;
    t->dropped_m++;
    t->recheck = true;
    for (size_t r = 0; r < m->ids.n; r++) {
        size_t i = chunk_lower(t, m->ids.r[r].lo);
        for (; i < t->nc && t->c[i].id <= m->ids.r[r].hi; i++)
            if (t->c[i].nmsgs)
                t->c[i].nmsgs--;
    }
    t->del(m->seq, t->del_arg);
}

static void msg_lose_one(struct tracker *t, struct tk_msg *m)
{
    if (m->gone || m->live == 0)
        return;
    if (--m->live == 0)
        msg_delete(t, m);
}

/* The messages holding chunk c: its first, the parts that follow it, and
 * (when multi) any later one whose ids contain it. */
static void for_each_holder(struct tracker *t, const struct tk_chunk *c,
                            void (*fn)(struct tracker *, struct tk_msg *))
{
    if (!c->seq)
        return;
    size_t i = msg_lower(t, c->seq);
    uint64_t id = c->id;
    for (; i < t->nm && t->m[i].seq == c->seq; i++)
        fn(t, &t->m[i]);
    /* parts: consecutive single-id messages of the same chunk */
    for (;
         i < t->nm && t->m[i].ids.n == 1 && t->m[i].ids.r[0].lo == id && t->m[i].ids.r[0].hi == id;
         i++)
        fn(t, &t->m[i]);
    if (c->multi)
        for (; i < t->nm; i++)
            if (br_ids_contains(&t->m[i].ids, id))
                fn(t, &t->m[i]);
}

void tk_kill(struct tracker *t, uint64_t id)
{
    struct tk_chunk *c = chunk_find(t, id);
    if (!c || !c->live)
        return;
    c->live = false;
    t->live--;
    t->dropped_c++;
    for_each_holder(t, c, msg_lose_one);
}

static int due(struct tracker *t, struct tk_chunk *c)
{
    if (c->noticed)
        return 0;
    if (br_grow((void **)&t->due, &t->capdue, t->ndue + 1, sizeof *t->due) < 0)
        return -ENOMEM;
    t->due[t->ndue++] = c->id;
    c->noticed = true;
    c->notify = false;
    return 0;
}

/* Killed by another chunk's `replaces`: a notice if its message stays. */
static int kill_replaced(struct tracker *t, uint64_t id)
{
    struct tk_chunk *c = chunk_find(t, id);
    if (!c || !c->live)
        return 0;
    tk_kill(t, id);
    c = chunk_find(t, id);
    if (c->nmsgs)
        return due(t, c);
    if (c->transit)
        c->notify = true;
    return 0;
}

size_t tk_take_due(struct tracker *t, uint64_t **ids)
{
    size_t n = t->ndue;
    *ids = t->due;
    t->due = NULL;
    t->ndue = t->capdue = 0;
    for (size_t a = 1; a < n; a++) /* nearly sorted: insertion sort */
        for (size_t b = a; b > 0 && (*ids)[b - 1] > (*ids)[b]; b--) {
            uint64_t x = (*ids)[b];
            (*ids)[b] = (*ids)[b - 1];
            (*ids)[b - 1] = x;
        }
    return n;
}

/* ---- what the forwarder reports ------------------------------------------------------- */

int tk_read(struct tracker *t, uint64_t id, int64_t expires_ns, const char *name, uint64_t replaces)
{
    bool added;
    struct tk_chunk *c = chunk_add(t, id, &added);
    if (!c)
        return -ENOMEM;
    if (added) {
        c->live = true;
        t->live++;
    }
    c->transit = true;
    c->expires_ns = expires_ns;
    if (expires_ns && heap_push(t, expires_ns, id) < 0)
        return -ENOMEM;
    uint64_t prev = 0;
    if (name && name_swap(t, name, id, &prev) < 0)
        return -ENOMEM;
    if (prev && prev != id)
        tk_kill(t, prev);
    return replaces ? kill_replaced(t, replaces) : 0;
}

static int add_msg(struct tracker *t, uint64_t seq, const struct br_ids *ids, bool found,
                   int64_t expires)
{
    if (br_grow((void **)&t->m, &t->capm, t->nm + 1, sizeof *t->m) < 0)
        return -ENOMEM;
    size_t at = t->nm && t->m[t->nm - 1].seq > seq ? msg_lower(t, seq) : t->nm;
    if (at < t->nm && t->m[at].seq == seq)
        return 0; /* known */
    struct tk_msg m = {.seq = seq};
    br_ids_init(&m.ids);
    for (size_t r = 0; r < ids->n; r++)
        for (uint64_t id = ids->r[r].lo;; id++) {
            if (br_ids_add(&m.ids, id) < 0) {
                br_ids_free(&m.ids);
                return -ENOMEM;
            }
            if (id == ids->r[r].hi)
                break;
        }
    bool previous_is_part = false;
    if (at > 0 && ids->count == 1) {
        const struct tk_msg *p = &t->m[at - 1];
        previous_is_part = p->ids.count == 1 && p->ids.r[0].lo == ids->r[0].lo;
    }
    for (size_t r = 0; r < ids->n; r++)
        for (uint64_t id = ids->r[r].lo;; id++) {
            bool added;
            struct tk_chunk *c = chunk_add(t, id, &added);
            if (!c) {
                br_ids_free(&m.ids);
                return -ENOMEM;
            }
            if (added && found) {
                c->live = true;
                c->expires_ns = expires;
                t->live++;
                if (expires && heap_push(t, expires, id) < 0) {
                    br_ids_free(&m.ids);
                    return -ENOMEM;
                }
            }
            if (!c->seq)
                c->seq = seq;
            else if (!previous_is_part || at < t->nm)
                c->multi = true; /* a copy: for_each_holder() searches */
            c->transit = false;
            c->nmsgs++;
            m.live += c->live;
            if (id > t->max_id)
                t->max_id = id;
            if (id == ids->r[r].hi)
                break;
        }
    memmove(&t->m[at + 1], &t->m[at], (t->nm - at) * sizeof *t->m);
    t->m[at] = m;
    t->nm++;
    if (m.live == 0) {
        msg_delete(t, &t->m[at]);
        return 0;
    }
    /* it stays: the chunks in it killed by a `replaces` meanwhile need a notice */
    for (size_t r = 0; r < ids->n; r++) {
        size_t i = chunk_lower(t, ids->r[r].lo);
        for (; i < t->nc && t->c[i].id <= ids->r[r].hi; i++)
            if (t->c[i].notify && due(t, &t->c[i]) < 0)
                return -ENOMEM;
    }
    return 0;
}

int tk_stored(struct tracker *t, uint64_t seq, const struct br_ids *ids)
{
    return add_msg(t, seq, ids, false, 0);
}

int tk_found(struct tracker *t, uint64_t seq, const struct br_ids *ids, int64_t expires)
{
    return add_msg(t, seq, ids, true, expires);
}

int tk_notice_stored(struct tracker *t, uint64_t seq, const struct br_ids *ids)
{
    if (br_grow((void **)&t->o, &t->capo, t->no + 1, sizeof *t->o) < 0)
        return -ENOMEM;
    struct tk_notice n = {.seq = seq};
    br_ids_init(&n.ids);
    for (size_t r = 0; r < ids->n; r++)
        for (uint64_t id = ids->r[r].lo;; id++) {
            if (br_ids_add(&n.ids, id) < 0) {
                br_ids_free(&n.ids);
                return -ENOMEM;
            }
            if (id == ids->r[r].hi)
                break;
        }
    t->o[t->no++] = n;
    t->recheck = true;
    for (size_t r = 0; r < ids->n; r++) {
        size_t i = chunk_lower(t, ids->r[r].lo);
        for (; i < t->nc && t->c[i].id <= ids->r[r].hi; i++)
            t->c[i].noticed = true;
    }
    return 0;
}

int64_t tk_expire(struct tracker *t, int64_t now)
{
    while (t->nh && t->h[0].at <= now) {
        struct tk_heap_item it = t->h[0];
        heap_pop(t);
        struct tk_chunk *c = chunk_find(t, it.id);
        if (c && c->live && c->expires_ns == it.at)
            tk_kill(t, it.id);
    }
    return t->nh ? t->h[0].at : 0;
}

int tk_check(struct tracker *t, uint64_t last_read, int64_t now, tk_state_fn fn, void *arg)
{
    for (size_t i = 0; i < t->nc; i++) {
        struct tk_chunk *c = &t->c[i];
        if (!c->live)
            continue;
        uint64_t by = 0;
        int64_t expires = c->expires_ns;
        enum tk_state st = fn(c->id, &by, &expires, arg);
        bool tell = true;
        switch (st) {
        case TK_LIVE:
            if (expires != c->expires_ns) { /* found in a frame: now known exactly */
                c->expires_ns = expires;
                if (expires && heap_push(t, expires, c->id) < 0)
                    return -ENOMEM;
            }
            continue;
        case TK_UNKNOWN:
            continue;
        case TK_EXPIRED:
            tell = false;
            break;
        case TK_REPLACED:
            if (by > last_read) {
                uint64_t by2;
                int64_t e2;
                if (fn(by, &by2, &e2, arg) == TK_LIVE)
                    continue; /* forwarding `by` will tell */
            }
            break;
        case TK_OBSOLETE:
            break;
        case TK_GONE:
            tell = !(c->expires_ns && c->expires_ns <= now);
            break;
        }
        tk_kill(t, c->id); /* moves nothing: c stays valid */
        if (tell && due(t, c) < 0)
            return -ENOMEM;
    }
    return 0;
}

void tk_delete_all(struct tracker *t)
{
    for (size_t i = 0; i < t->nm; i++)
        msg_delete(t, &t->m[i]);
    for (size_t i = 0; i < t->no; i++)
        if (!t->o[i].gone) {
            t->o[i].gone = true;
            t->del(t->o[i].seq, t->del_arg);
        }
}

/* ---- upkeep ---------------------------------------------------------------------------------- */

/* Is any chunk of these ids still held by a message of ours? */
static bool still_held(struct tracker *t, const struct br_ids *ids)
{
    for (size_t r = 0; r < ids->n; r++) {
        size_t i = chunk_lower(t, ids->r[r].lo);
        for (; i < t->nc && t->c[i].id <= ids->r[r].hi; i++)
            if (t->c[i].nmsgs || t->c[i].transit)
                return true;
    }
    return false;
}

static void compact(struct tracker *t)
{
    size_t k = 0;
    for (size_t i = 0; i < t->nc; i++)
        if (t->c[i].live || t->c[i].nmsgs || t->c[i].transit)
            t->c[k++] = t->c[i];
    t->nc = k;
    t->dropped_c = 0;
    k = 0;
    for (size_t i = 0; i < t->nm; i++) {
        if (t->m[i].gone)
            br_ids_free(&t->m[i].ids);
        else
            t->m[k++] = t->m[i];
    }
    t->nm = k;
    t->dropped_m = 0;
    k = 0;
    for (size_t i = 0; i < t->no; i++) {
        if (t->o[i].gone)
            br_ids_free(&t->o[i].ids);
        else
            t->o[k++] = t->o[i];
    }
    t->no = k;
}

void tk_maintain(struct tracker *t)
{
    for (size_t i = 0; t->recheck && i < t->no; i++) {
        struct tk_notice *n = &t->o[i];
        if (!n->gone && !still_held(t, &n->ids)) {
            n->gone = true;
            t->del(n->seq, t->del_arg);
        }
    }
    t->recheck = false;
    if (t->dropped_c + t->dropped_m > 1024 &&
        (t->dropped_c * 2 > t->nc || t->dropped_m * 2 > t->nm))
        compact(t);
}
