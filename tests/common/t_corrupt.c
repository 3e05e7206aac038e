/*
 * The hostile tests' fixture and corruption classes; see t_corrupt.h.
 */
#include "t_corrupt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "speculo.h"
#include "t_util.h"

static int put(speculo_writer *w, const char *data, const char *name, uint64_t *id)
{
    struct speculo_commit_options o = {.name = name};
    return speculo_writer_put(w, data, strlen(data), &o, id);
}

int t_fixture_make(const char *dir, struct t_fixture *f)
{
    char buf[PATH_MAX];
    memset(f, 0, sizeof *f);
    if (!dir) {
        int n = speculo_segment_dir(buf, sizeof buf);
        if (n < 0)
            return n;
        dir = buf;
    }
    if (snprintf(f->path, sizeof f->path, "%s/s", dir) >= (int)sizeof f->path)
        return -ENAMETOOLONG;
    struct speculo_writer_options o = {.capacity = 64 << 10};
    speculo_writer *w;
    int rc = speculo_writer_open_at(dir, "s", &o, &w);
    if (rc < 0)
        return rc;
    if ((rc = put(w, "one", "first", &f->id[0])) == 0 && (rc = put(w, "two", NULL, &f->id[1])) == 0)
        rc = put(w, "three", "third", &f->id[2]);
    speculo_writer_close(w);
    if (rc == 0)
        rc = t_seg_map_path(f->path, &f->m);
    if (rc == 0 && t_seg_records(&f->m, f->off, 3) != 3)
        rc = -EBADMSG;
    if (rc == 0)
        f->capacity = t_seg_hdr(&f->m)->capacity;
    return rc;
}

void t_fixture_done(struct t_fixture *f)
{
    t_seg_unmap(&f->m);
}

static struct seg_header *hdr(struct t_fixture *f)
{
    return t_seg_hdr(&f->m);
}

#define FIELD(f) ((uint64_t)offsetof(struct seg_header, f))

/* ---- whole files ------------------------------------------------------- */

static int cut_to(struct t_fixture *f, uint64_t size)
{
    t_seg_unmap(&f->m);
    return truncate(f->path, (off_t)size) < 0 ? -errno : 0;
}

static int empty_file(struct t_fixture *f, uint64_t *at)
{
    *at = 0;
    return cut_to(f, 0);
}

static int random_bytes_file(struct t_fixture *f, uint64_t *at)
{
    t_fill(f->m.p, f->m.size, 1234);
    *at = 0;
    return 0;
}

static int truncated_below_header(struct t_fixture *f, uint64_t *at)
{
    *at = 100;
    return cut_to(f, 100);
}

static int truncated_below_capacity(struct t_fixture *f, uint64_t *at)
{
    *at = FIELD(capacity);
    return cut_to(f, f->capacity / 2);
}

static int bad_magic(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->magic[3] = 'X';
    *at = 0;
    return 0;
}

static int other_version(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->version = SPECULO_FORMAT_VERSION + 1;
    *at = FIELD(version);
    return 0;
}

static int index_outside_file(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->index_off = f->capacity;
    *at = FIELD(index_off);
    return 0;
}

static int index_too_big(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->index_slots = UINT64_C(1) << 40;
    *at = FIELD(index_slots);
    return 0;
}

static int table_at_end(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->table_off = f->capacity - 8;
    hdr(f)->table_slots = 2;
    *at = FIELD(table_off);
    return 0;
}

static int table_size_wraps(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->table_slots = UINT64_MAX / 8 + 2; /* wraps when multiplied by 8 */
    *at = FIELD(table_slots);
    return 0;
}

static int records_outside_file(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->records_off = f->capacity + 4096;
    *at = FIELD(records_off);
    return 0;
}

static int capacity_doubled(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->capacity = f->capacity * 2;
    *at = FIELD(capacity);
    return 0;
}

static int capacity_zero(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->capacity = 0;
    *at = FIELD(capacity);
    return 0;
}

static int header_size_zero(struct t_fixture *f, uint64_t *at)
{
    hdr(f)->header_size = 0;
    *at = FIELD(header_size);
    return 0;
}

/* ---- records ----------------------------------------------------------- */

static int commit_length_past_end(struct t_fixture *f, uint64_t *at)
{
    atomic_store(&t_fixture_rec(f, 1)->commit, align_up(f->capacity * 4, REC_ALIGN));
    *at = f->off[1];
    return 0;
}

static int commit_length_wraps(struct t_fixture *f, uint64_t *at)
{
    /* off + len wraps around to a small number */
    atomic_store(&t_fixture_rec(f, 1)->commit,
                 (UINT64_MAX - f->off[1] + 1 + REC_ALIGN) & ~(uint64_t)(REC_ALIGN - 1));
    *at = f->off[1];
    return 0;
}

static int commit_length_unaligned(struct t_fixture *f, uint64_t *at)
{
    atomic_store(&t_fixture_rec(f, 0)->commit, REC_ALIGN + 8);
    *at = f->off[0];
    return 0;
}

static int commit_length_below_payload(struct t_fixture *f, uint64_t *at)
{
    atomic_store(&t_fixture_rec(f, 0)->commit, REC_ALIGN);
    *at = f->off[0];
    return 0;
}

static int zero_length_record(struct t_fixture *f, uint64_t *at)
{
    atomic_store(&t_fixture_rec(f, 1)->commit, 0);
    *at = f->off[1]; /* the records after it are lost to readers */
    return 0;
}

static int size_of_2_63(struct t_fixture *f, uint64_t *at)
{
    t_fixture_rec(f, 0)->size = UINT64_C(1) << 63;
    *at = f->off[0];
    return 0;
}

static int size_past_record(struct t_fixture *f, uint64_t *at)
{
    t_fixture_rec(f, 1)->size = atomic_load(&t_fixture_rec(f, 1)->commit);
    *at = f->off[1];
    return 0;
}

static int name_len_past_record(struct t_fixture *f, uint64_t *at)
{
    t_fixture_rec(f, 0)->name_len = 1000;
    *at = f->off[0];
    return 0;
}

/* Where the name of record @i (payload of @size bytes) is. */
static char *name_of(struct t_fixture *f, int i, size_t size)
{
    return (char *)f->m.p + f->off[i] + REC_HEADER_SIZE + align_up(size, PAYLOAD_ALIGN);
}

static int name_without_nul(struct t_fixture *f, uint64_t *at)
{
    char *name = name_of(f, 0, 3); /* "first" after "one" */
    uint64_t end = f->off[0] + atomic_load(&t_fixture_rec(f, 0)->commit);
    memset(name + 5, 'x', (size_t)(end - (uint64_t)(name + 5 - (char *)f->m.p)));
    *at = f->off[0];
    return 0;
}

static int name_len_short(struct t_fixture *f, uint64_t *at)
{
    t_fixture_rec(f, 0)->name_len = 3; /* "fir" but the NUL is after "first" */
    *at = f->off[0];
    return 0;
}

static int name_with_bad_characters(struct t_fixture *f, uint64_t *at)
{
    name_of(f, 2, 5)[1] = '/'; /* "t/ird" */
    *at = f->off[2];
    return 0;
}

static int ids_repeated(struct t_fixture *f, uint64_t *at)
{
    t_fixture_rec(f, 1)->id = f->id[0];
    *at = f->off[1];
    return 0;
}

static int ids_decreasing(struct t_fixture *f, uint64_t *at)
{
    t_fixture_rec(f, 2)->id = f->id[0];
    *at = f->off[2];
    return 0;
}

static int id_zero(struct t_fixture *f, uint64_t *at)
{
    t_fixture_rec(f, 0)->id = 0;
    *at = f->off[0];
    return 0;
}

/* ---- name index and id table ------------------------------------------ */

static struct name_slot *slots_of(struct t_fixture *f)
{
    return (struct name_slot *)(void *)(f->m.p + hdr(f)->index_off);
}

/* The slot holding "first", and its offset in the file. */
static struct name_slot *slot_of_first(struct t_fixture *f, uint64_t *at)
{
    struct name_slot *slots = slots_of(f);
    for (uint64_t i = 0; i < hdr(f)->index_slots; i++)
        if (atomic_load(&slots[i].off) == f->off[0]) {
            *at = hdr(f)->index_off + i * sizeof(struct name_slot);
            return &slots[i];
        }
    return NULL;
}

static int name_slot_outside_file(struct t_fixture *f, uint64_t *at)
{
    struct name_slot *s = slot_of_first(f, at);
    if (!s)
        return -ENOENT;
    atomic_store(&s->off, f->capacity + 4096);
    return 0;
}

static int name_slot_points_at_garbage(struct t_fixture *f, uint64_t *at)
{
    struct name_slot *s = slot_of_first(f, at);
    if (!s)
        return -ENOENT;
    atomic_store(&s->off, f->off[0] + REC_HEADER_SIZE);
    return 0;
}

static int name_slot_at_unnamed_record(struct t_fixture *f, uint64_t *at)
{
    struct name_slot *s = slot_of_first(f, at);
    if (!s)
        return -ENOENT;
    atomic_store(&s->off, f->off[1]);
    return 0;
}

static int name_index_full_of_garbage(struct t_fixture *f, uint64_t *at)
{
    struct name_slot *slots = slots_of(f);
    for (uint64_t i = 0; i < hdr(f)->index_slots; i++) {
        slots[i].hash = UINT64_C(0x9e3779b97f4a7c15) * (i + 1);
        atomic_store(&slots[i].off, f->off[1]);
    }
    *at = hdr(f)->index_off;
    return 0;
}

static _Atomic uint64_t *table_of(struct t_fixture *f)
{
    return (_Atomic uint64_t *)(void *)(f->m.p + hdr(f)->table_off);
}

static int id_table_entry_outside_file(struct t_fixture *f, uint64_t *at)
{
    _Atomic uint64_t *table = table_of(f);
    for (int i = 0; i < 3; i++)
        atomic_store(&table[i], f->capacity + 4096 * (uint64_t)(i + 1));
    *at = hdr(f)->table_off;
    return 0;
}

static int id_table_entries_misleading(struct t_fixture *f, uint64_t *at)
{
    _Atomic uint64_t *table = table_of(f);
    for (int i = 0; i < 3; i++)
        atomic_store(&table[i], f->off[0]);
    *at = hdr(f)->table_off + sizeof(uint64_t); /* entry 0 is right */
    return 0;
}

/* ---- header counters and the switch ----------------------------------- */

static int header_counters_garbage(struct t_fixture *f, uint64_t *at)
{
    struct seg_header *h = hdr(f);
    atomic_store(&h->nrecords, UINT64_C(1) << 62);
    atomic_store(&h->committed_end, UINT64_MAX - 7);
    atomic_store(&h->last_id, UINT64_MAX);
    atomic_store(&h->names_used, UINT64_MAX);
    atomic_store(&h->dead_bytes, UINT64_MAX);
    atomic_store(&h->obsolete_count, UINT64_MAX);
    *at = FIELD(nrecords);
    return 0;
}

static int last_id_garbage(struct t_fixture *f, uint64_t *at)
{
    atomic_store(&hdr(f)->last_id, UINT64_MAX);
    *at = FIELD(last_id);
    return 0;
}

static int superseded_without_successor(struct t_fixture *f, uint64_t *at)
{
    atomic_store(&hdr(f)->superseded, 7); /* not the next generation (2) */
    *at = FIELD(superseded);
    return 0;
}

const struct t_corruption t_corruptions[] = {
    {"empty_file", empty_file, "the file ends here", -EBADMSG},
    {"random_bytes_file", random_bytes_file, "no segment magic", -EBADMSG},
    {"truncated_below_header", truncated_below_header, "inside the 4096-byte segment header",
     -EBADMSG},
    {"truncated_below_capacity", truncated_below_capacity, "but the file has 32768", -EBADMSG},
    {"bad_magic", bad_magic, "no segment magic", -EBADMSG},
    {"other_version", other_version, "format version 2", -EPROTO},
    {"header_regions_outside_file/index_off", index_outside_file, "name index at offset 65536",
     -EBADMSG},
    {"header_regions_outside_file/index_slots", index_too_big, "does not fit in the file",
     -EBADMSG},
    {"header_regions_outside_file/table_off", table_at_end, "not on a page", -EBADMSG},
    {"header_regions_outside_file/table_slots", table_size_wraps, "runs past the end of the file",
     -EBADMSG},
    {"header_regions_outside_file/records_off", records_outside_file, "past the end", -EBADMSG},
    {"header_regions_outside_file/capacity_doubled", capacity_doubled, "but the file has 65536",
     -EBADMSG},
    {"header_regions_outside_file/capacity_zero", capacity_zero, "capacity 0 bytes", -EBADMSG},
    {"header_regions_outside_file/header_size", header_size_zero, "header size 0", -EBADMSG},
    {"commit_length_past_end", commit_length_past_end, "runs past the end of the file", -EBADMSG},
    {"commit_length_wraps", commit_length_wraps, "runs past the end of the file", -EBADMSG},
    {"commit_length_too_small/unaligned", commit_length_unaligned, "not a multiple of 64",
     -EBADMSG},
    {"commit_length_too_small/below_payload", commit_length_below_payload,
     "length 64, but a payload of 3 bytes and a name of 5 take 128", -EBADMSG},
    {"zero_length_record_does_not_loop", zero_length_record,
     "no committed record here, but the header counts 3 records", -EBADMSG},
    {"size_of_2_63", size_of_2_63, "payload size 9223372036854775808 does not fit", -EBADMSG},
    {"size_past_record", size_past_record, "but a payload of 128 bytes", -EBADMSG},
    {"name_len_past_record", name_len_past_record, "name length 1000 is over 255", -EBADMSG},
    {"name_without_nul", name_without_nul, "its name is not 5 bytes and a NUL", -EBADMSG},
    {"name_without_nul/name_len", name_len_short, "its name is not 3 bytes and a NUL", -EBADMSG},
    {"name_with_bad_characters", name_with_bad_characters, "name 't/ird' is not a valid chunk name",
     -EBADMSG},
    {"ids_not_increasing/repeated", ids_repeated, "not greater than the id before it (1)",
     -EBADMSG},
    {"ids_not_increasing/decreasing", ids_decreasing, "not greater than the id before it (2)",
     -EBADMSG},
    {"ids_not_increasing/zero", id_zero, "record with id 0", -EBADMSG},
    {"name_slot_outside_file", name_slot_outside_file, "past the committed records", -EBADMSG},
    {"name_slot_points_at_garbage", name_slot_points_at_garbage, "where no record starts",
     -EBADMSG},
    {"name_slot_points_at_garbage/unnamed", name_slot_at_unnamed_record, "which has no name",
     -EBADMSG},
    {"name_index_full_of_garbage_terminates", name_index_full_of_garbage, "no empty slot",
     -EBADMSG},
    {"id_table_entry_outside_file", id_table_entry_outside_file, "id table entry 0 is", -EBADMSG},
    {"id_table_entries_misleading", id_table_entries_misleading, "id table entry 1 is", -EBADMSG},
    {"header_counters_garbage", header_counters_garbage, "more than the id table's", -EBADMSG},
    {"header_counters_garbage/last_id", last_id_garbage, "last id 18446744073709551615", -EBADMSG},
    {"superseded_without_successor_does_not_loop", superseded_without_successor,
     "superseded by generation 7", -EBADMSG},
};

const size_t t_corruption_count = sizeof t_corruptions / sizeof t_corruptions[0];
