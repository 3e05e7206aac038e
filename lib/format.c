/*
 * The segment format: layout planning, header checks, record checks and
 * the name hash. Every check here treats the file as hostile.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

/* FNV-1a over the name, seeded, with a final mix so that the low bits used
 * for the slot and the bits kept in the record both depend on every byte. */
uint64_t speculo__name_hash(uint64_t seed, const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h ? h : 1;
}

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/*
 * Plan a file of about `capacity_hint` bytes whose record area holds at
 * least `min_data` bytes, whose id table holds `min_records` entries and
 * whose name index holds `min_names` names at a load of at most 1/4 (the
 * writer collects at 1/2). Index and table scale with the file so that a
 * segment of small chunks does not fill its table long before its data.
 */
void speculo__seg_plan_layout(uint64_t capacity_hint, uint64_t min_data, uint64_t min_records,
                              uint64_t min_names, struct seg_layout *out)
{
    uint64_t index_slots = pow2_at_least(4 * (min_names + 1));
    if (index_slots < capacity_hint / 4096)
        index_slots = pow2_at_least(capacity_hint / 4096);
    if (index_slots < 256)
        index_slots = 256;

    uint64_t table_slots = capacity_hint / 128;
    if (table_slots < 2 * (min_records + 1))
        table_slots = 2 * (min_records + 1);
    table_slots = align_up(table_slots, SEG_PAGE / sizeof(uint64_t));

    out->index_off = SEG_HEADER_SIZE;
    out->index_slots = index_slots;
    out->table_off = align_up(out->index_off + index_slots * sizeof(struct name_slot), SEG_PAGE);
    out->table_slots = table_slots;
    out->records_off = align_up(out->table_off + table_slots * sizeof(uint64_t), SEG_PAGE);

    uint64_t cap = align_up(capacity_hint, SEG_PAGE);
    uint64_t least = align_up(out->records_off + min_data + REC_ALIGN, SEG_PAGE);
    out->capacity = cap > least ? cap : least;
}

void speculo__seg_init_header(struct seg_header *h, const struct seg_layout *l, uint64_t generation,
                              uint64_t segment_uid, int64_t created_ns, uint64_t base_capacity,
                              uint64_t hash_seed)
{
    memcpy(h->magic, SEG_MAGIC, sizeof h->magic);
    h->version = SPECULO_FORMAT_VERSION;
    h->header_size = SEG_HEADER_SIZE;
    h->capacity = l->capacity;
    h->generation = generation;
    h->index_off = l->index_off;
    h->index_slots = l->index_slots;
    h->table_off = l->table_off;
    h->table_slots = l->table_slots;
    h->records_off = l->records_off;
    h->segment_uid = segment_uid;
    h->created_ns = created_ns;
    h->base_capacity = base_capacity;
    h->hash_seed = hash_seed;
    /* The file is fresh and not yet visible under its name: no reader can
     * see these, the rename that publishes the file orders them. */
    atomic_store_explicit(&h->committed_end, l->records_off, memory_order_relaxed);
}

/* Check the immutable part of a header against the mapping's size, and
 * give the layout it describes: a copy, checked once read, which the
 * caller uses from then on (the file itself may change under it). After
 * this, the regions lie inside the mapping and do not overlap. */
int speculo__seg_check_layout(const void *map, uint64_t map_size, struct seg_layout *out)
{
    const struct seg_header *h = map;
    if (map_size < SEG_HEADER_SIZE || memcmp(h->magic, SEG_MAGIC, sizeof h->magic) != 0)
        return -EBADMSG;
    if (h->version != SPECULO_FORMAT_VERSION)
        return -EPROTO;
    struct seg_layout l = {h->capacity,  h->index_off,   h->index_slots,
                           h->table_off, h->table_slots, h->records_off};
    if (h->header_size != SEG_HEADER_SIZE || l.capacity != map_size)
        return -EBADMSG;
    uint64_t slots = l.index_slots;
    if (l.index_off != SEG_HEADER_SIZE || slots == 0 || (slots & (slots - 1)) != 0 ||
        slots > map_size / sizeof(struct name_slot))
        return -EBADMSG;
    if (l.table_off % SEG_PAGE || l.table_off < l.index_off + slots * sizeof(struct name_slot) ||
        l.table_off > map_size || l.table_slots > (map_size - l.table_off) / sizeof(uint64_t))
        return -EBADMSG;
    if (l.records_off % REC_ALIGN || l.records_off > map_size ||
        l.records_off < l.table_off + l.table_slots * sizeof(uint64_t))
        return -EBADMSG;
    *out = l;
    return 0;
}

int speculo__seg_check_header(const void *map, uint64_t map_size)
{
    struct seg_layout l;
    return speculo__seg_check_layout(map, map_size, &l);
}

/* Names inside a record must be valid chunk names too: speculofs shows them
 * as file names, so a '/' or a control character must never get through. */
static bool name_ok(const char *name, uint32_t len)
{
    if (len > SPECULO_CHUNK_NAME_MAX || name[len] != '\0' || strlen(name) != len)
        return false;
    return speculo_chunk_name_check(name) == 0;
}

int speculo__rec_check(const void *map, const struct seg_layout *l, uint64_t off,
                       struct rec_view *v)
{
    uint64_t cap = l->capacity;
    if (off < l->records_off || off % REC_ALIGN || off > cap)
        return -EBADMSG;
    if (cap - off < REC_HEADER_SIZE)
        return 0; /* the record area is full: nothing more can come here */
    const struct rec_header *r = (const struct rec_header *)((const uint8_t *)map + off);
    /* observes: the writer's release store that publishes the record */
    uint64_t len = atomic_load_explicit(&((struct rec_header *)r)->commit, memory_order_acquire);
    if (len == 0)
        return 0;
    struct rec_header f; /* snapshot of the plain fields, checked below */
    memcpy((char *)&f + sizeof f.commit, (const char *)r + sizeof f.commit,
           sizeof f - sizeof f.commit);
    if (len % REC_ALIGN || len > cap - off || f.id == 0 || f.size > len ||
        f.name_len > SPECULO_CHUNK_NAME_MAX || rec_length(f.size, f.name_len) != len)
        return -EBADMSG;
    const char *name = NULL;
    if (f.name_len) {
        name = (const char *)r + REC_HEADER_SIZE + align_up(f.size, PAYLOAD_ALIGN);
        if (!name_ok(name, f.name_len))
            return -EBADMSG;
    }
    v->h = r;
    v->off = off;
    v->len = len;
    v->name = name;
    v->id = f.id;
    v->size = f.size;
    v->replaces = f.replaces;
    v->committed_ns = f.committed_ns;
    v->expires_ns = f.expires_ns;
    v->name_len = f.name_len;
    return 1;
}

int64_t speculo__table_lower_bound(const struct seg_map *m, uint64_t n, uint64_t id)
{
    const uint64_t *table = seg_table(m);
    if (n > m->lay.table_slots)
        return -EBADMSG;
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        struct rec_view v;
        if (speculo__rec_check(m->base, &m->lay, table[mid], &v) != 1)
            return -EBADMSG;
        if (v.id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int64_t)lo;
}

/* The committed record with this id, live or not: 0, -ENOENT, -EBADMSG.
 * A binary search of the id table, then the record after the last one
 * counted (committed after the count was published). */
int speculo__find_id(const struct seg_map *m, uint64_t id, struct rec_view *v)
{
    const struct seg_header *h = map_header(m);
    /* observes: the id table entries the writer published */
    uint64_t n = atomic_load_explicit(&((struct seg_header *)h)->nrecords, memory_order_acquire);
    int64_t i = speculo__table_lower_bound(m, n, id);
    if (i < 0)
        return (int)i;
    if ((uint64_t)i < n) {
        if (speculo__rec_check(m->base, &m->lay, seg_table(m)[i], v) != 1)
            return -EBADMSG;
    } else {
        /* maybe committed after the count was published: it is then right
         * after the last counted record (or first in the file) */
        uint64_t pos = m->lay.records_off;
        if (n > 0) {
            if (speculo__rec_check(m->base, &m->lay, seg_table(m)[n - 1], v) != 1)
                return -EBADMSG;
            pos = v->off + v->len;
        }
        int rc = speculo__rec_check(m->base, &m->lay, pos, v);
        if (rc != 1)
            return rc < 0 ? rc : -ENOENT;
    }
    return v->id == id ? 0 : -ENOENT;
}
