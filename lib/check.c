/*
 * speculo_segment_check(): verify a whole segment file and say where it
 * is wrong. The verdicts are the reader's and the writer's own checks
 * (speculo__seg_check_layout(), speculo__rec_check(), what recover()
 * refuses); this file only explains them, field by field, and adds the
 * consistency rules that no single lookup looks at: the id table against
 * the records, the name index against the names, the header's totals.
 * Nothing here is on a hot path.
 *
 * A live writer may commit while the file is checked, and a writer killed
 * in the middle of a commit leaves its last record published but not yet
 * indexed or counted: neither is a problem. What is tolerated, and why:
 *   - records after the walk ends (committed since): index slots and
 *     obsolete marks may point at them;
 *   - the last record walked may be missing from the index, and the
 *     header's totals may lag one commit behind it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define CHECK_ATTEMPTS 8                    /* collections racing the check */
#define POPULATE_STEP ((uint64_t)256 << 10) /* records made readable at a time */
#define NAME_SHOWN 200                      /* bytes of a name in a message */

/* A record walked, in commit order. */
struct rec_ent {
    uint64_t off, id;
};

/* A name, from an index slot or a record, sortable by (hash, bytes). */
struct name_ent {
    uint64_t hash; /* speculo__name_hash() of the name, this file's seed */
    const char *name;
    uint32_t len;
    uint64_t id;  /* the record */
    uint64_t pos; /* slot number, or index in the walk */
};

struct chk {
    const uint8_t *base;
    uint64_t size;
    struct seg_layout lay;
    const struct seg_header *h;
    struct speculo_check_report *rep;
    speculo_collision_fn fn;
    void *arg;
    int64_t now;
    uint64_t ready_from, ready_to; /* the records' range made readable */
    bool no_populate;              /* a kernel without MADV_POPULATE_READ */
    struct rec_ent *recs;
    uint64_t nrecs, cap_recs;
    uint64_t tail; /* where the walk ended */
    uint64_t nrecords_before;
    uint64_t *slots; /* the index's slot offsets, read once after the walk */
    int dirfd;       /* where the file was found, and under what name */
    const char *segment;
    const struct stat *st;
};

/* ---- reporting ------------------------------------------------------ */

/* Record the first problem; returns 1, "stop here". */
__attribute__((format(printf, 3, 4))) static int problem(struct chk *c, uint64_t off,
                                                         const char *fmt, ...)
{
    struct speculo_check_report *rep = c->rep;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->problem, sizeof rep->problem, fmt, ap);
    va_end(ap);
    rep->status = -EBADMSG;
    rep->offset = off;
    return 1;
}

/* A name or other bytes of the file, fit for a one-line message: bytes
 * outside printable ASCII as \xHH, a backslash and a quote escaped, cut at
 * NAME_SHOWN bytes. */
static const char *shown(char *buf, size_t size, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && i < NAME_SHOWN && n + 5 < size; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b < 0x20 || b > 0x7e || b == '\\' || b == '\'')
            n += (size_t)snprintf(buf + n, size - n, "\\x%02x", b);
        else
            buf[n++] = (char)b;
    }
    if (len > NAME_SHOWN && n + 4 < size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- reading the file safely ----------------------------------------- */

/*
 * Make [from, to) readable before reading it: on a full tmpfs a load from
 * a page never allocated raises SIGBUS, and populating reports it instead
 * (as the reader does for the pages it looks at first).
 */
static int populate(struct chk *c, uint64_t from, uint64_t to)
{
    if (c->no_populate || to <= from)
        return 0;
    uint64_t end = align_up(c->size, SEG_PAGE);
    from &= ~(uint64_t)(SEG_PAGE - 1);
    to = align_up(to, SEG_PAGE) < end ? align_up(to, SEG_PAGE) : end;
    if (to <= from)
        return 0;
    if (madvise((void *)(c->base + from), to - from, MADV_POPULATE_READ) < 0) {
        if (errno == EINVAL) { /* a kernel without it (before 5.14) */
            c->no_populate = true;
            return 0;
        }
        return errno == EFAULT ? -ENOSPC : -ENOMEM;
    }
    return 0;
}

/* Make [from, to) readable. The records are read in order: their range
 * grows a step ahead at a time, in one call. */
static int readable(struct chk *c, uint64_t from, uint64_t to)
{
    if (from >= c->ready_from && to <= c->ready_to)
        return 0;
    if (from < c->ready_from || from > c->ready_to)
        return populate(c, from, to);
    uint64_t upto = to - c->ready_to < POPULATE_STEP ? c->ready_to + POPULATE_STEP : to;
    if (upto > c->size)
        upto = c->size;
    int rc = populate(c, c->ready_to, upto);
    if (rc == 0)
        c->ready_to = upto;
    return rc;
}

/* Make the record at @off readable, all of it, before its name is read
 * (its length is only a bound here: speculo__rec_check() checks it). */
static int readable_record(struct chk *c, uint64_t off)
{
    int rc = readable(c, off, off + REC_HEADER_SIZE);
    if (rc < 0 || c->lay.capacity - off < REC_HEADER_SIZE)
        return rc;
    const struct rec_header *r = (const struct rec_header *)(c->base + off);
    /* observes: nothing (speculo__rec_check() acquires it): a bound only */
    uint64_t len = atomic_load_explicit(&((struct rec_header *)r)->commit, memory_order_relaxed);
    return readable(c, off, len <= c->lay.capacity - off ? off + len : c->lay.capacity);
}

/* ---- the header ------------------------------------------------------ */

#define FIELD(f) ((uint64_t)offsetof(struct seg_header, f))

/*
 * Why speculo__seg_check_layout() refused the header: its rules, in its
 * order, each with its message. A rule added there and not here shows as
 * the last message, which the fuzzer treats as a failure.
 */
static int explain_layout(struct chk *c)
{
    const struct seg_header *h = c->h;
    uint64_t size = c->size, slots = h->index_slots;
    if (memcmp(h->magic, SEG_MAGIC, sizeof h->magic) != 0)
        return problem(c, 0, "header: no segment magic (\"SPECULO\\x1a\"): not a segment file");
    if (h->version != SPECULO_FORMAT_VERSION) {
        problem(c, FIELD(version), "header: format version %u; this library reads version %d",
                h->version, SPECULO_FORMAT_VERSION);
        c->rep->status = -EPROTO;
        return 1;
    }
    if (h->header_size != SEG_HEADER_SIZE)
        return problem(c, FIELD(header_size), "header: header size %u, expected %u", h->header_size,
                       SEG_HEADER_SIZE);
    if (h->capacity != size)
        return problem(c, FIELD(capacity),
                       "header: capacity %llu bytes, but the file has %llu (cut or extended)",
                       (unsigned long long)h->capacity, (unsigned long long)size);
    if (h->index_off != SEG_HEADER_SIZE)
        return problem(c, FIELD(index_off), "header: name index at offset %llu, expected %u",
                       (unsigned long long)h->index_off, SEG_HEADER_SIZE);
    if (slots == 0 || (slots & (slots - 1)) != 0)
        return problem(c, FIELD(index_slots),
                       "header: name index of %llu slots, not a power of two",
                       (unsigned long long)slots);
    if (slots > size / sizeof(struct name_slot))
        return problem(c, FIELD(index_slots),
                       "header: name index of %llu slots does not fit in the file",
                       (unsigned long long)slots);
    uint64_t index_end = h->index_off + slots * sizeof(struct name_slot);
    if (h->table_off % SEG_PAGE)
        return problem(c, FIELD(table_off), "header: id table at offset %llu, not on a page",
                       (unsigned long long)h->table_off);
    if (h->table_off < index_end)
        return problem(c, FIELD(table_off),
                       "header: id table at offset %llu, inside the name index (which ends at "
                       "%llu)",
                       (unsigned long long)h->table_off, (unsigned long long)index_end);
    if (h->table_off > size)
        return problem(c, FIELD(table_off), "header: id table at offset %llu, past the end",
                       (unsigned long long)h->table_off);
    if (h->table_slots > (size - h->table_off) / sizeof(uint64_t))
        return problem(c, FIELD(table_slots),
                       "header: id table of %llu slots runs past the end of the file",
                       (unsigned long long)h->table_slots);
    uint64_t table_end = h->table_off + h->table_slots * sizeof(uint64_t);
    if (h->records_off % REC_ALIGN)
        return problem(c, FIELD(records_off), "header: records start at %llu, not on %u bytes",
                       (unsigned long long)h->records_off, REC_ALIGN);
    if (h->records_off > size)
        return problem(c, FIELD(records_off), "header: records start at %llu, past the end",
                       (unsigned long long)h->records_off);
    if (h->records_off < table_end)
        return problem(c, FIELD(records_off),
                       "header: records start at %llu, inside the id table (which ends at %llu)",
                       (unsigned long long)h->records_off, (unsigned long long)table_end);
    return problem(c, 0, "header: the layout is refused by the reader's check");
}

/* What a writer never writes in the header's other fields. */
static int check_header_fields(struct chk *c)
{
    const struct seg_header *h = c->h;
    c->rep->generation = h->generation;
    if (h->base_capacity > c->size)
        return problem(c, FIELD(base_capacity),
                       "header: base capacity %llu is larger than the file (%llu bytes): a "
                       "collection never makes a file smaller than it",
                       (unsigned long long)h->base_capacity, (unsigned long long)c->size);
    if (h->min_next_id >= UINT64_MAX / 2)
        return problem(c, FIELD(min_next_id),
                       "header: next id %llu: ids from 2^63 - 1 on are refused (they would wrap)",
                       (unsigned long long)h->min_next_id);
    /* observes: the mark of a switch or a removal */
    uint64_t sup =
        atomic_load_explicit(&((struct seg_header *)h)->superseded, memory_order_acquire);
    if (sup != 0 && sup != SUPERSEDED_REMOVED && sup != h->generation + 1)
        return problem(c, FIELD(superseded),
                       "header: superseded by generation %llu, but this file is generation "
                       "%llu (a collection marks the next one)",
                       (unsigned long long)sup, (unsigned long long)h->generation);
    c->rep->superseded = sup != 0;
    /* observes: the id table entries the writer published (read before
     * the walk: every record counted then is committed) */
    c->nrecords_before =
        atomic_load_explicit(&((struct seg_header *)h)->nrecords, memory_order_acquire);
    if (c->nrecords_before > c->lay.table_slots)
        return problem(
            c, FIELD(nrecords), "header: %llu records counted, more than the id table's %llu slots",
            (unsigned long long)c->nrecords_before, (unsigned long long)c->lay.table_slots);
    return 0;
}

/* ---- records --------------------------------------------------------- */

/*
 * Why speculo__rec_check() refused the record at @off: its rules, in its
 * order, each with its message (the last one when none applies).
 */
static int explain_record(struct chk *c, uint64_t off)
{
    const struct rec_header *r = (const struct rec_header *)(c->base + off);
    uint64_t cap = c->lay.capacity;
    if (off < c->lay.records_off || off % REC_ALIGN || off > cap)
        return problem(c, off, "not where a record can start");
    /* observes: the commit word (the record's fields are read after it) */
    uint64_t len = atomic_load_explicit(&((struct rec_header *)r)->commit, memory_order_acquire);
    struct rec_header f;
    memcpy((char *)&f + sizeof f.commit, (const char *)r + sizeof f.commit,
           sizeof f - sizeof f.commit);
    char id[48];
    snprintf(id, sizeof id, "record id %llu", (unsigned long long)f.id);
    if (len % REC_ALIGN)
        return problem(c, off, "%s: length %llu is not a multiple of %u", id,
                       (unsigned long long)len, REC_ALIGN);
    if (len > cap - off)
        return problem(c, off, "%s: length %llu runs past the end of the file (%llu bytes left)",
                       id, (unsigned long long)len, (unsigned long long)(cap - off));
    if (f.id == 0)
        return problem(c, off, "record with id 0 (ids start at 1)");
    if (f.size > len)
        return problem(c, off, "%s: payload size %llu does not fit in its %llu-byte record", id,
                       (unsigned long long)f.size, (unsigned long long)len);
    if (f.name_len > SPECULO_CHUNK_NAME_MAX)
        return problem(c, off, "%s: name length %u is over %d", id, f.name_len,
                       SPECULO_CHUNK_NAME_MAX);
    if (rec_length(f.size, f.name_len) != len)
        return problem(c, off,
                       "%s: length %llu, but a payload of %llu bytes and a name of %u take %llu",
                       id, (unsigned long long)len, (unsigned long long)f.size, f.name_len,
                       (unsigned long long)rec_length(f.size, f.name_len));
    const char *name = (const char *)r + REC_HEADER_SIZE + align_up(f.size, PAYLOAD_ALIGN);
    char buf[4 * NAME_SHOWN + 8];
    if (f.name_len == 0) /* unnamed: nothing more to check */
        return problem(c, off, "%s: refused by the reader's record check", id);
    if (name[f.name_len] != '\0' || strnlen(name, f.name_len) != f.name_len)
        return problem(c, off, "%s: its name is not %u bytes and a NUL (\"%s\")", id, f.name_len,
                       shown(buf, sizeof buf, name, strnlen(name, f.name_len)));
    if (speculo_chunk_name_check(name) < 0)
        return problem(c, off, "%s: name '%s' is not a valid chunk name", id,
                       shown(buf, sizeof buf, name, f.name_len));
    return problem(c, off, "%s: refused by the reader's record check", id);
}

static int push_record(struct chk *c, const struct rec_view *v)
{
    if (c->nrecs == c->cap_recs) {
        uint64_t cap = c->cap_recs ? 2 * c->cap_recs : 256;
        struct rec_ent *p = realloc(c->recs, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        c->recs = p;
        c->cap_recs = cap;
    }
    c->recs[c->nrecs++] = (struct rec_ent){v->off, v->id};
    return 0;
}

static void count_state(struct chk *c, const struct rec_view *v, enum rec_state st, uint64_t by)
{
    struct speculo_check_report *rep = c->rep;
    rep->records++;
    rep->bytes_used += v->len;
    if (!rep->first_id)
        rep->first_id = v->id;
    rep->last_id = v->id;
    if (st == REC_LIVE) {
        rep->live_records++;
        rep->live_bytes += v->len;
        return;
    }
    rep->dead_bytes += v->len;
    if (st == REC_EXPIRED)
        rep->expired_records++;
    else if (by == OBSOLETE_EXPLICIT)
        rep->obsolete_records++;
    else
        rep->replaced_records++;
}

/* What the reader accepts in a record but a writer refuses at a takeover,
 * or never writes: an obsolete mark names a newer chunk. (What is only
 * history, such as `replaces`, is not checked: a collection copies it.) */
static int check_record_fields(struct chk *c, const struct rec_view *v, uint64_t prev_id,
                               uint64_t by)
{
    uint64_t off = v->off, id = v->id;
    if (id <= prev_id)
        return problem(c, off, "record id %llu: not greater than the id before it (%llu)",
                       (unsigned long long)id, (unsigned long long)prev_id);
    if (id >= UINT64_MAX / 2)
        return problem(c, off,
                       "record id %llu: ids from 2^63 - 1 on are refused by a writer taking over",
                       (unsigned long long)id);
    if (c->nrecs >= c->lay.table_slots)
        return problem(c, off, "record id %llu: one more record than the id table's %llu slots",
                       (unsigned long long)id, (unsigned long long)c->lay.table_slots);
    if (by != 0 && by != OBSOLETE_EXPLICIT && by <= id)
        return problem(c, off, "record id %llu: obsoleted by id %llu, which is not newer",
                       (unsigned long long)id, (unsigned long long)by);
    return 0;
}

/* Walk the committed records from the start, as readers and a writer
 * taking over do. */
static int walk_records(struct chk *c)
{
    uint64_t pos = c->lay.records_off, prev = 0;
    c->ready_from = c->ready_to = pos & ~(uint64_t)(SEG_PAGE - 1);
    for (;;) {
        int rc = readable_record(c, pos);
        if (rc < 0)
            return rc;
        struct rec_view v;
        rc = speculo__rec_check(c->base, &c->lay, pos, &v);
        if (rc < 0)
            return explain_record(c, pos);
        if (rc == 0)
            break;
        uint64_t by;
        enum rec_state st = speculo__rec_state(&v, c->now, &by);
        if (check_record_fields(c, &v, prev, by))
            return 1;
        if ((rc = push_record(c, &v)) < 0)
            return rc;
        count_state(c, &v, st, by);
        prev = v.id;
        pos += v.len;
    }
    c->tail = pos;
    c->rep->free_bytes = c->lay.capacity - pos;
    return 0;
}

/* Is a record at this offset (@by_id false) or of this id among those
 * walked? Both increase along the walk. */
static bool walked(const struct chk *c, uint64_t key, bool by_id)
{
    uint64_t lo = 0, hi = c->nrecs;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if ((by_id ? c->recs[mid].id : c->recs[mid].off) < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->nrecs && (by_id ? c->recs[lo].id : c->recs[lo].off) == key;
}

static uint64_t last_walked_id(const struct chk *c)
{
    return c->nrecs ? c->recs[c->nrecs - 1].id : 0;
}

/* Obsolete marks name a chunk of this file that obsoleted the record. */
static int check_marks(struct chk *c)
{
    uint64_t last = last_walked_id(c);
    for (uint64_t i = 0; i < c->nrecs; i++) {
        const struct rec_header *r = (const struct rec_header *)(c->base + c->recs[i].off);
        /* observes: a mark stored by the writer */
        uint64_t by =
            atomic_load_explicit(&((struct rec_header *)r)->obsoleted_by, memory_order_relaxed);
        if (by != 0 && by != OBSOLETE_EXPLICIT && by <= last && !walked(c, by, true))
            return problem(c, c->recs[i].off,
                           "record id %llu: obsoleted by id %llu, which is not in the file",
                           (unsigned long long)c->recs[i].id, (unsigned long long)by);
    }
    return 0;
}

/* ---- the id table and the header's totals ---------------------------- */

static int check_table(struct chk *c)
{
    if (c->nrecords_before > c->nrecs)
        return problem(c, c->tail,
                       "no committed record here, but the header counts %llu records (%llu "
                       "before this offset)",
                       (unsigned long long)c->nrecords_before, (unsigned long long)c->nrecs);
    int rc = populate(c, c->lay.table_off, c->lay.table_off + c->nrecs * sizeof(uint64_t));
    if (rc < 0)
        return rc;
    const uint64_t *table = (const uint64_t *)(c->base + c->lay.table_off);
    for (uint64_t i = 0; i < c->nrecs; i++) {
        if (table[i] != c->recs[i].off)
            return problem(c, c->lay.table_off + i * sizeof(uint64_t),
                           "id table entry %llu is %llu, but record id %llu is at %llu",
                           (unsigned long long)i, (unsigned long long)table[i],
                           (unsigned long long)c->recs[i].id, (unsigned long long)c->recs[i].off);
    }
    return 0;
}

/* The header's totals, read after the walk: the writer publishes them
 * after each commit, so they may lag behind the last record only. */
static int check_totals(struct chk *c)
{
    struct seg_header *h = (struct seg_header *)c->h;
    /* informational counters, read as a snapshot: relaxed */
    uint64_t n = atomic_load_explicit(&h->nrecords, memory_order_relaxed);
    uint64_t last_id = atomic_load_explicit(&h->last_id, memory_order_relaxed);
    uint64_t end = atomic_load_explicit(&h->committed_end, memory_order_relaxed);
    uint64_t names = atomic_load_explicit(&h->names_used, memory_order_relaxed);
    uint64_t dead = atomic_load_explicit(&h->dead_bytes, memory_order_relaxed);
    uint64_t before_last = c->nrecs >= 2 ? c->recs[c->nrecs - 2].id : 0;
    if (n + 1 < c->nrecs)
        return problem(c, FIELD(nrecords),
                       "header: %llu records counted, but %llu are committed (lookups by id "
                       "miss the last ones)",
                       (unsigned long long)n, (unsigned long long)c->nrecs);
    if (last_id >= UINT64_MAX / 2)
        return problem(c, FIELD(last_id), "header: last id %llu: ids from 2^63 - 1 on are refused",
                       (unsigned long long)last_id);
    if (last_id < before_last)
        return problem(c, FIELD(last_id), "header: last id %llu, but record id %llu is in the file",
                       (unsigned long long)last_id, (unsigned long long)before_last);
    if (end % REC_ALIGN || end < c->lay.records_off || end > c->lay.capacity ||
        (c->nrecs && end < c->recs[c->nrecs - 1].off))
        return problem(c, FIELD(committed_end),
                       "header: committed end %llu is not the end of a committed record",
                       (unsigned long long)end);
    if (names > c->lay.index_slots)
        return problem(c, FIELD(names_used),
                       "header: %llu names used, more than the name index's %llu slots",
                       (unsigned long long)names, (unsigned long long)c->lay.index_slots);
    if (dead > c->lay.capacity - c->lay.records_off)
        return problem(c, FIELD(dead_bytes),
                       "header: %llu dead bytes, more than the record area holds",
                       (unsigned long long)dead);
    return 0;
}

/* ---- the name index -------------------------------------------------- */

static int cmp_names(const void *pa, const void *pb)
{
    const struct name_ent *a = pa, *b = pb;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    int d = memcmp(a->name, b->name, a->len);
    if (d)
        return d;
    return a->id < b->id ? -1 : a->id > b->id;
}

static bool same_name(const struct name_ent *a, const struct name_ent *b)
{
    return a->hash == b->hash && a->len == b->len && memcmp(a->name, b->name, a->len) == 0;
}

static const struct name_slot *slot_ptr(const struct chk *c, uint64_t s)
{
    return (const struct name_slot *)(c->base + c->lay.index_off) + s;
}

static uint64_t slot_offset(const struct chk *c, uint64_t s)
{
    return c->lay.index_off + s * sizeof(struct name_slot);
}

/* The record slot @s points at, as read once (0: empty). */
static uint64_t slot_off(const struct chk *c, uint64_t s)
{
    return c->slots[s];
}

/* Read every slot once: a writer adding names meanwhile cannot make the
 * checks below see a slot both empty and taken. */
static int snapshot_slots(struct chk *c)
{
    uint64_t n = c->lay.index_slots;
    c->slots = malloc(n * sizeof *c->slots);
    if (!c->slots)
        return -ENOMEM;
    for (uint64_t s = 0; s < n; s++)
        /* observes: the writer's release store publishing slot and record */
        c->slots[s] =
            atomic_load_explicit(&((struct name_slot *)slot_ptr(c, s))->off, memory_order_acquire);
    return 0;
}

/* What the index holds, gathered and sorted by name. */
struct index_view {
    struct name_ent *slots; /* one per taken slot, sorted by name */
    uint64_t nslots;
    uint64_t *run; /* run[s]: taken slots in a row ending at s */
};

/* Slot @s points at a committed record of a name whose hash it holds. */
static int check_slot(struct chk *c, uint64_t s, uint64_t off, struct name_ent *e)
{
    uint64_t at = slot_offset(c, s);
    struct rec_view v;
    bool known = walked(c, off, false);
    if (!known && off < c->tail)
        return problem(c, at, "name index slot %llu points at offset %llu, where no record starts",
                       (unsigned long long)s, (unsigned long long)off);
    /* past the walk: a record committed since, or nothing */
    if (!known && (off % REC_ALIGN || off > c->lay.capacity || readable_record(c, off) < 0 ||
                   speculo__rec_check(c->base, &c->lay, off, &v) != 1 || v.id <= last_walked_id(c)))
        return problem(c, at,
                       "name index slot %llu points at offset %llu, past the committed records",
                       (unsigned long long)s, (unsigned long long)off);
    if (known)
        speculo__rec_check(c->base, &c->lay, off, &v); /* checked by the walk */
    if (!v.name)
        return problem(c, at, "name index slot %llu points at record id %llu, which has no name",
                       (unsigned long long)s, (unsigned long long)v.id);
    uint64_t hash = speculo__name_hash(c->h->hash_seed, v.name, v.name_len);
    char buf[4 * NAME_SHOWN + 8];
    if (slot_ptr(c, s)->hash != hash)
        return problem(c, at,
                       "name index slot %llu: its hash is not that of '%s', the name of the "
                       "record it points at (id %llu): lookups of it fail",
                       (unsigned long long)s, shown(buf, sizeof buf, v.name, v.name_len),
                       (unsigned long long)v.id);
    *e = (struct name_ent){hash, v.name, v.name_len, v.id, s};
    int64_t now = c->now;
    c->rep->index_dead += !speculo__rec_live(&v, &now);
    return 0;
}

/* run[s]: how many taken slots end at s, going backwards (cyclic). A name
 * in slot s with home h is found by a lookup iff (s - h) mod n < run[s].
 * False when no slot is empty. */
static bool compute_runs(const struct chk *c, uint64_t *run)
{
    uint64_t n = c->lay.index_slots, start = n;
    for (uint64_t s = 0; s < n && start == n; s++)
        if (slot_off(c, s) == 0)
            start = s;
    if (start == n)
        return false;
    uint64_t len = 0;
    for (uint64_t k = 1; k <= n; k++) {
        uint64_t s = (start + k) % n;
        len = slot_off(c, s) ? len + 1 : 0;
        run[s] = len;
    }
    return true;
}

static int gather_slots(struct chk *c, struct index_view *iv)
{
    uint64_t n = c->lay.index_slots, mask = n - 1;
    iv->run = malloc(n * sizeof *iv->run);
    iv->slots = malloc(n * sizeof *iv->slots);
    if (!iv->run || !iv->slots)
        return -ENOMEM;
    int rc = snapshot_slots(c);
    if (rc < 0)
        return rc;
    if (!compute_runs(c, iv->run))
        return problem(c, c->lay.index_off,
                       "name index: no empty slot in %llu (a writer keeps it at most half "
                       "full): lookups of absent names visit every slot",
                       (unsigned long long)n);
    for (uint64_t s = 0; s < n; s++) {
        uint64_t off = slot_off(c, s);
        if (off == 0)
            continue;
        struct name_ent *e = &iv->slots[iv->nslots];
        memset(e, 0, sizeof *e);
        rc = check_slot(c, s, off, e);
        if (rc)
            return rc;
        uint64_t dist = (s - (e->hash & mask)) & mask;
        if (dist >= iv->run[s]) {
            char buf[4 * NAME_SHOWN + 8];
            return problem(c, slot_offset(c, s),
                           "name index slot %llu holds '%s', but an empty slot lies between "
                           "its home slot %llu and it: lookups of it fail",
                           (unsigned long long)s, shown(buf, sizeof buf, e->name, e->len),
                           (unsigned long long)(e->hash & mask));
        }
        if (dist + 1 > c->rep->index_longest_probe)
            c->rep->index_longest_probe = dist + 1;
        iv->nslots++;
    }
    c->rep->index_used = iv->nslots;
    qsort(iv->slots, iv->nslots, sizeof *iv->slots, cmp_names);
    for (uint64_t i = 1; i < iv->nslots; i++) {
        const struct name_ent *a = &iv->slots[i - 1], *b = &iv->slots[i];
        if (same_name(a, b)) {
            char buf[4 * NAME_SHOWN + 8];
            uint64_t later = a->pos > b->pos ? a->pos : b->pos;
            return problem(c, slot_offset(c, later),
                           "name index slots %llu and %llu both hold '%s'",
                           (unsigned long long)(a->pos < b->pos ? a->pos : b->pos),
                           (unsigned long long)later, shown(buf, sizeof buf, a->name, a->len));
        }
    }
    return 0;
}

/* The slot entry of @e's name, or NULL. */
static const struct name_ent *find_slot(const struct index_view *iv, const struct name_ent *e)
{
    uint64_t lo = 0, hi = iv->nslots;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const struct name_ent *m = &iv->slots[mid];
        int d = m->hash != e->hash ? (m->hash < e->hash ? -1 : 1)
                : m->len != e->len ? (m->len < e->len ? -1 : 1)
                                   : memcmp(m->name, e->name, e->len);
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < iv->nslots && same_name(&iv->slots[lo], e) ? &iv->slots[lo] : NULL;
}

/* Every name of the records walked has its slot, at its newest version
 * (the last record may not be indexed yet: a commit in progress). */
static int check_names_indexed(struct chk *c, const struct index_view *iv)
{
    uint64_t n = 0;
    struct name_ent *names = malloc((c->nrecs ? c->nrecs : 1) * sizeof *names);
    if (!names)
        return -ENOMEM;
    for (uint64_t i = 0; i < c->nrecs; i++) {
        struct rec_view v;
        speculo__rec_check(c->base, &c->lay, c->recs[i].off, &v); /* checked by the walk */
        if (v.name)
            names[n++] = (struct name_ent){speculo__name_hash(c->h->hash_seed, v.name, v.name_len),
                                           v.name, v.name_len, v.id, i};
    }
    qsort(names, n, sizeof *names, cmp_names);
    uint64_t last = last_walked_id(c);
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        if (i + 1 < n && same_name(&names[i], &names[i + 1]))
            continue; /* not the newest version */
        const struct name_ent *e = &names[i], *s = find_slot(iv, e);
        char buf[4 * NAME_SHOWN + 8];
        if (!s && e->id != last)
            rc = problem(c, c->recs[e->pos].off,
                         "record id %llu is named '%s', but the name index has no slot for it: "
                         "lookups of it fail",
                         (unsigned long long)e->id, shown(buf, sizeof buf, e->name, e->len));
        else if (s && s->id < e->id && e->id != last)
            rc = problem(c, slot_offset(c, s->pos),
                         "name index slot %llu of '%s' points at id %llu, but id %llu is a "
                         "newer version: lookups give the old one",
                         (unsigned long long)s->pos, shown(buf, sizeof buf, e->name, e->len),
                         (unsigned long long)s->id, (unsigned long long)e->id);
    }
    free(names);
    return rc;
}

/* Count the names out of their home slot, and those sharing it; tell the
 * caller about the first, in slot order. */
static int report_collisions(struct chk *c, const struct index_view *iv)
{
    uint64_t n = c->lay.index_slots, mask = n - 1;
    /* by slot: the entry of each taken slot, and how many names call it home */
    uint64_t *entry = calloc(n, sizeof *entry), *homes = calloc(n, sizeof *homes);
    if (!entry || !homes) {
        free(entry);
        free(homes);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < iv->nslots; i++) {
        entry[iv->slots[i].pos] = i;
        homes[iv->slots[i].hash & mask]++;
    }
    for (uint64_t s = 0; s < n; s++) {
        if (slot_off(c, s) == 0)
            continue;
        const struct name_ent *e = &iv->slots[entry[s]];
        uint64_t home = e->hash & mask;
        c->rep->index_same_home += homes[home] > 1;
        if (home == s)
            continue;
        c->rep->index_displaced++;
        if (!c->fn)
            continue;
        const struct name_ent *h = &iv->slots[entry[home]]; /* taken: s is reachable */
        char name[SPECULO_CHUNK_NAME_MAX + 1], hname[SPECULO_CHUNK_NAME_MAX + 1];
        memcpy(name, e->name, e->len);
        name[e->len] = '\0';
        memcpy(hname, h->name, h->len);
        hname[h->len] = '\0';
        struct speculo_name_collision col = {
            name, e->id, home, s, hname, h->id, (h->hash & mask) == home};
        c->fn(&col, c->arg);
    }
    free(entry);
    free(homes);
    return 0;
}

/* Does the segment's name hold another file now (a collection switched
 * it, or it was created again)? Then that file is the one to check. */
static bool name_moved(const struct chk *c)
{
    struct stat now;
    return fstatat(c->dirfd, c->segment, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
           (now.st_dev != c->st->st_dev || now.st_ino != c->st->st_ino);
}

#define CHECK_AGAIN 2 /* check_mapped(): the name moved, check again */

static int check_index(struct chk *c)
{
    struct index_view iv = {NULL, 0, NULL};
    int rc = gather_slots(c, &iv);
    if (rc == 0)
        rc = check_names_indexed(c, &iv);
    if (rc == 0 && name_moved(c))
        rc = CHECK_AGAIN; /* before the caller hears of this file's names */
    if (rc == 0)
        rc = report_collisions(c, &iv);
    free(iv.slots);
    free(iv.run);
    return rc;
}

/* ---- the whole file ---------------------------------------------------- */

static int check_mapped(struct chk *c)
{
    c->h = (const struct seg_header *)c->base;
    int rc = populate(c, 0, SEG_HEADER_SIZE);
    if (rc < 0)
        return rc;
    if (speculo__seg_check_layout(c->base, c->size, &c->lay) < 0)
        return explain_layout(c);
    c->rep->table_slots = c->lay.table_slots;
    c->rep->index_slots = c->lay.index_slots;
    /* the index, as a reader populates it when it maps the file */
    if ((rc = populate(c, 0, c->lay.table_off)) < 0)
        return rc;
    if ((rc = check_header_fields(c)) != 0 || (rc = walk_records(c)) != 0 ||
        (rc = check_marks(c)) != 0 || (rc = check_table(c)) != 0 || (rc = check_totals(c)) != 0 ||
        (rc = check_index(c)) != 0)
        return rc;
    return 0;
}

/* Check the file @fd (opened and found safe), mapped read-only: 0, or
 * CHECK_AGAIN, or an error. */
static int check_fd(int dirfd, const char *segment, int fd, const struct stat *st,
                    struct speculo_check_report *rep, speculo_collision_fn fn, void *arg)
{
    struct chk c = {.rep = rep,
                    .fn = fn,
                    .arg = arg,
                    .now = speculo__clock_wall_ns(),
                    .dirfd = dirfd,
                    .segment = segment,
                    .st = st};
    memset(rep, 0, sizeof *rep);
    c.size = rep->file_size = (uint64_t)st->st_size;
    if (c.size < SEG_HEADER_SIZE) {
        problem(&c, c.size, "the file ends here, inside the %u-byte segment header",
                SEG_HEADER_SIZE);
        return 0;
    }
    void *p = mmap(NULL, (size_t)c.size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    c.base = p;
    int rc = check_mapped(&c);
    munmap(p, (size_t)c.size);
    free(c.recs);
    free(c.slots);
    if (rc == 0 && rep->status != 0 && name_moved(&c))
        rc = CHECK_AGAIN; /* the problem may be a file being switched out */
    return rc == 1 ? 0 : rc;
}

/* Check the file under the name: 0, CHECK_AGAIN, or an error. */
static int check_once(int dirfd, const char *segment, struct speculo_check_report *rep,
                      speculo_collision_fn fn, void *arg)
{
    int fd;
    struct stat st;
    int rc = speculo__ns_open_segment(dirfd, segment, false, &fd, &st);
    if (rc < 0)
        return rc;
    rc = check_fd(dirfd, segment, fd, &st, rep, fn, arg);
    close(fd);
    return rc;
}

int speculo_segment_check_at(const char *dir, const char *segment,
                             struct speculo_check_report *report, speculo_collision_fn fn,
                             void *arg)
{
    int rc = speculo_segment_name_check(segment);
    if (rc < 0)
        return rc;
    if (!report)
        return -EINVAL;
    struct ns_dir d;
    if ((rc = speculo__dir_get(dir, &d)) < 0)
        return rc;
    int dirfd;
    if ((rc = speculo__dir_open(&d, false, &dirfd)) == 0) {
        struct speculo_check_report *rep = malloc(sizeof *rep);
        rc = rep ? CHECK_AGAIN : -ENOMEM;
        for (int i = 0; i < CHECK_ATTEMPTS && rc == CHECK_AGAIN; i++)
            rc = check_once(dirfd, segment, rep, fn, arg);
        if (rc >= 0)
            *report = *rep; /* the last file checked, if the name kept changing */
        free(rep);
        close(dirfd);
    }
    speculo__dir_put(&d);
    return rc < 0 ? rc : 0;
}

int speculo_segment_check(const char *segment, struct speculo_check_report *report,
                          speculo_collision_fn fn, void *arg)
{
    return speculo_segment_check_at(NULL, segment, report, fn, arg);
}
