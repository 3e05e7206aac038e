/*
 * The segment file format (internal). See docs/DESIGN.md for the picture.
 *
 *   0            4096                                               capacity
 *   +------------+-------------+-------------+--------------------------+
 *   | header     | name index  | id table    | records ...  | zeroes    |
 *   +------------+-------------+-------------+--------------------------+
 *
 * Everything a reader reads from the file is untrusted: it is checked
 * against the mapping before use (see speculo__seg_check_header(), speculo__rec_check()).
 */
#ifndef SPECULO_FORMAT_H
#define SPECULO_FORMAT_H

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "speculo.h"

#define SEG_MAGIC "SPECULO\x1a"
#define SEG_HEADER_SIZE 4096u
#define SEG_PAGE 4096u
#define REC_ALIGN 64u /* records start on a cache line */
#define REC_HEADER_SIZE 64u
#define PAYLOAD_ALIGN 16u             /* >= alignof(max_align_t) */
#define NAME_RESERVE 256u             /* room kept for a name not yet known at alloc */
#define OBSOLETE_EXPLICIT UINT64_MAX  /* obsoleted_by: speculo_writer_obsolete() */
#define SUPERSEDED_REMOVED UINT64_MAX /* superseded: the segment was removed */
#define WAIT_ARMING 1u                /* wait_armed: a reader is making its barrier */
#define WAIT_ARMED 2u                 /* wait_armed: made; every commit checks waiters */

/* Owner token: pid in the low 22 bits (PID_MAX_LIMIT is 2^22), the process
 * start time (clock ticks since boot) above, so that a reused pid differs. */
#define OWNER_PID_BITS 22
#define OWNER_PID_MASK ((UINT64_C(1) << OWNER_PID_BITS) - 1)

/*
 * The file header, page 0. The first cache line is written once, when the
 * file is made, and never changes. The other lines group fields by who
 * writes them, so that a reader polling records does not share a line the
 * writer dirties on every commit.
 */
struct seg_header {
    /* line 0: immutable layout */
    char magic[8];
    uint32_t version;
    uint32_t header_size;
    uint64_t capacity;    /* file size */
    uint64_t generation;  /* 1 for a new segment, +1 per GC switch */
    uint64_t index_off;   /* name index: index_slots x struct name_slot */
    uint64_t index_slots; /* a power of two */
    uint64_t table_off;   /* id table: table_slots x uint64_t offsets */
    uint64_t table_slots;
    /* line 1: immutable identity */
    alignas(64) uint64_t records_off;
    uint64_t segment_uid;   /* random, kept across GC: tells a re-created segment */
    int64_t created_ns;     /* creation of generation 1 */
    uint64_t base_capacity; /* capacity asked for at creation */
    uint64_t hash_seed;
    uint64_t min_next_id; /* ids below were used by earlier generations */
    uint64_t reserved1[2];
    /* line 2: writer role and switch; rarely written */
    alignas(64) _Atomic uint64_t owner; /* owner token of the writer; 0 = none */
    /* generation of the file that replaced this one, SUPERSEDED_REMOVED
     * when the segment was removed; 0 while this file is current */
    _Atomic uint64_t superseded;
    uint64_t reserved2[6];
    /* line 3: writer's running totals, published by each commit that
     * changes them (nrecords last, released: get_id() bounds the id table
     * by it); a polling reader reads it only once every 256 records
     * (committed_end, a prefetch hint: reader.c) */
    alignas(64) _Atomic uint64_t nrecords; /* committed records in this file */
    _Atomic uint64_t committed_end;        /* end offset of the last committed record */
    _Atomic uint64_t last_id;              /* id of the last committed record */
    _Atomic int64_t last_commit_ns;
    _Atomic uint64_t dead_bytes; /* bytes of obsoleted records */
    _Atomic uint64_t names_used; /* occupied name index slots */
    _Atomic uint64_t obsolete_count;
    uint64_t reserved3;
    /* line 4: waiting. Readers write `waiters`, the writer reads it at every
     * commit: no waiter means the line stays clean in the writer's cache. */
    alignas(64) _Atomic uint32_t wake_seq; /* futex word, +1 per wake */
    _Atomic uint32_t waiters;              /* readers blocked in wait */
    /* WAIT_ARMED once a reader has waited on this file (see wait.c): from
     * then on commits look at `waiters` with a read-modify-write */
    _Atomic uint32_t wait_armed;
};

/*
 * A record: header, payload, then the name (NUL-terminated) so that the
 * payload's place is known at alloc time, before the name is.
 */
struct rec_header {
    /* record length in bytes, a multiple of REC_ALIGN; 0 until committed.
     * The writer stores it last, with release: it publishes the record. */
    _Atomic uint64_t commit;
    uint64_t id;
    uint64_t size; /* payload bytes */
    int64_t committed_ns;
    int64_t expires_ns; /* 0 = never */
    uint64_t replaces;  /* id this chunk obsoleted at commit; 0 = none */
    /* id of the chunk that obsoleted this one, OBSOLETE_EXPLICIT, or 0 */
    _Atomic uint64_t obsoleted_by;
    uint32_t name_len;  /* 0 = unnamed */
    uint32_t name_hash; /* low bits of the name's hash, for quick compares */
};

/* A name index slot. `off` is published with release after `hash` is set;
 * a slot, once taken, belongs to its name for the file's lifetime. */
struct name_slot {
    uint64_t hash;
    _Atomic uint64_t off; /* offset of the newest record of the name; 0 = empty */
};

_Static_assert(sizeof(struct rec_header) == REC_HEADER_SIZE, "record header size");
_Static_assert(sizeof(struct seg_header) <= SEG_HEADER_SIZE, "segment header size");
_Static_assert(sizeof(struct name_slot) == 16, "name slot size");

/* Where the regions of a file of the given sizes go. */
struct seg_layout {
    uint64_t capacity, index_off, index_slots, table_off, table_slots, records_off;
};

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Record length for a payload of `size` bytes and a name of `name_len`. */
static inline uint64_t rec_length(uint64_t size, uint32_t name_len)
{
    uint64_t n = REC_HEADER_SIZE + align_up(size, PAYLOAD_ALIGN);
    if (name_len)
        n += (uint64_t)name_len + 1;
    return align_up(n, REC_ALIGN);
}

uint64_t speculo__name_hash(uint64_t seed, const char *name, size_t len);
void speculo__seg_plan_layout(uint64_t capacity_hint, uint64_t min_data, uint64_t min_records,
                              uint64_t min_names, struct seg_layout *out);
void speculo__seg_init_header(struct seg_header *h, const struct seg_layout *l, uint64_t generation,
                              uint64_t segment_uid, int64_t created_ns, uint64_t base_capacity,
                              uint64_t hash_seed);
int speculo__seg_check_header(const void *map, uint64_t map_size);
/* The same, giving the layout checked: see struct seg_map. */
int speculo__seg_check_layout(const void *map, uint64_t map_size, struct seg_layout *out);

/* A record checked against the mapping: the committed length fits, its
 * fields are consistent, its name lies inside it, NUL-terminated. The
 * fields are a snapshot taken once, then checked: another process changing
 * the file meanwhile cannot make a checked value unchecked. The name's
 * characters are checked where a name is handed out or trusted (a reader
 * copies and checks it, a takeover checks it): a lookup compares it with
 * the valid name it looks for, and needs no more. */
struct rec_view {
    const struct rec_header *h;
    uint64_t off, len;
    const char *name; /* NULL when unnamed; in the mapping */
    uint64_t id, size, replaces;
    int64_t committed_ns, expires_ns;
    uint32_t name_len;
};

/*
 * The record at @off, a record boundary inside the record area of a
 * mapping of @cap bytes (the records' start, or the end of a record
 * checked before). 1 committed and valid, 0 not committed yet, -EBADMSG
 * corrupt. Acquires the commit word: the record's contents are visible
 * after it returns 1. Inline: it is every reader's path (next() polls it).
 */
static inline int speculo__rec_view_at(const void *map, uint64_t cap, uint64_t off,
                                       struct rec_view *v)
{
    if (cap - off < REC_HEADER_SIZE)
        return 0; /* the record area is full: nothing more can come here */
    struct rec_header *r = (struct rec_header *)((uintptr_t)map + off);
    /* observes: the writer's release store that publishes the record */
    uint64_t len = atomic_load_explicit(&r->commit, memory_order_acquire);
    if (len == 0)
        return 0;
    /* volatile: each field is read once, here, whatever the compiler does
     * with the values afterwards */
    const volatile struct rec_header *f = r;
    uint64_t id = f->id, size = f->size;
    uint32_t name_len = f->name_len;
    if (len % REC_ALIGN || len > cap - off || id == 0 || size > len ||
        name_len > SPECULO_CHUNK_NAME_MAX || rec_length(size, name_len) != len)
        return -EBADMSG;
    const char *name = NULL;
    if (name_len) { /* inside the record: its length counts the name and a NUL */
        name = (const char *)r + REC_HEADER_SIZE + align_up(size, PAYLOAD_ALIGN);
        if (((const volatile char *)name)[name_len] != '\0')
            return -EBADMSG;
    }
    v->h = r;
    v->off = off;
    v->len = len;
    v->name = name;
    v->id = id;
    v->size = size;
    v->replaces = f->replaces;
    v->committed_ns = f->committed_ns;
    v->expires_ns = f->expires_ns;
    v->name_len = name_len;
    return 1;
}

/* The same at an offset read from the file (the id table, a name slot),
 * checked first: inside the record area, on a record boundary. */
int speculo__rec_check(const void *map, const struct seg_layout *l, uint64_t off,
                       struct rec_view *v);

#endif
