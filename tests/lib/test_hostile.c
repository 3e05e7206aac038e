/*
 * hostile: segment files that are truncated, corrupt or crafted to mislead.
 * Readers (and writers opening them) must return errors, never crash, hang
 * or read outside the mapping. Each test makes a real segment with the
 * writer, closes it, then corrupts the file with the structs of format.h.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_corrupt.h"
#include "th.h"

/* The segment every test starts from: three chunks, the writer closed
 * (t_corrupt.h's fixture, which the checker's tests damage as these do). */
struct fx {
    uint64_t id[3];
    uint64_t off[3];
    uint64_t capacity;
    struct t_seg_map m;
};

static void fx_make(struct fx *f)
{
    struct t_fixture t;
    ck_assert_int_eq(t_fixture_make(NULL, &t), 0);
    memcpy(f->id, t.id, sizeof f->id);
    memcpy(f->off, t.off, sizeof f->off);
    f->capacity = t.capacity;
    f->m = t.m;
    ck_assert_uint_eq(f->capacity, f->m.size);
}

static struct rec_header *fx_rec(struct fx *f, int i)
{
    return t_seg_rec(&f->m, f->off[i]);
}

static void fx_done(struct fx *f)
{
    t_seg_unmap(&f->m);
}

/* Both roles refuse to open the file with the error. */
static void open_fails(int err)
{
    speculo_reader *r = NULL;
    speculo_writer *w = NULL;
    int rc = speculo_reader_open("s", &r);
    ck_assert_msg(rc == err, "reader_open = %d, expected %d", rc, err);
    ck_assert_ptr_null(r);
    rc = speculo_writer_open("s", NULL, &w);
    ck_assert_msg(rc == err, "writer_open = %d, expected %d", rc, err);
    ck_assert_ptr_null(w);
    /* describe still succeeds and says what is wrong. */
    char buf[2048];
    int n = speculo_segment_describe("s", buf, sizeof(buf));
    ck_assert_msg(n > 0, "describe = %d", n);
    ck_assert_msg(strstr(buf, "error:") != NULL, "no error line:\n%s", buf);
}

/* A reader returns the first `good` chunks, then -EBADMSG (and keeps
 * returning errors, not chunks, without hanging). */
static void next_fails_after(speculo_reader *r, struct fx *f, int good)
{
    static const char *const v[3] = {"one", "two", "three"};
    for (int i = 0; i < good; i++)
        th_nexts(r, f->id[i], v[i]);
    speculo_chunk c;
    int rc = speculo_reader_next(r, &c);
    ck_assert_msg(rc == -EBADMSG, "next = %d (id %llu), expected -EBADMSG", rc,
                  (unsigned long long)(rc == 0 ? c.id : 0));
    rc = speculo_reader_next(r, &c);
    ck_assert_msg(rc < 0, "next after -EBADMSG = %d", rc);
}

static void write_file(const char *name, const void *data, size_t size)
{
    char path[256];
    ck_assert_int_eq(t_path(path, sizeof(path), name), 0);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    if (size)
        ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
    close(fd);
}

/* ---- whole files ------------------------------------------------------- */

START_TEST(empty_file)
{
    write_file("s", NULL, 0);
    open_fails(-EBADMSG);
}
END_TEST

START_TEST(random_bytes_file)
{
    char *junk = malloc(64 << 10);
    ck_assert_ptr_nonnull(junk);
    t_fill(junk, 64 << 10, 1234);
    write_file("s", junk, 64 << 10);
    free(junk);
    open_fails(-EBADMSG);
}
END_TEST

START_TEST(truncated_below_header)
{
    struct fx f;
    fx_make(&f);
    fx_done(&f);
    ck_assert_int_eq(t_seg_truncate("s", 100), 0);
    open_fails(-EBADMSG);
    ck_assert_int_eq(t_seg_truncate("s", SEG_HEADER_SIZE - 1), 0);
    open_fails(-EBADMSG);
}
END_TEST

START_TEST(truncated_below_capacity)
{
    struct fx f;
    fx_make(&f);
    uint64_t cap = f.capacity;
    fx_done(&f);
    /* The records are in the first pages, still there: the size alone
     * must be noticed (touching the missing pages would be SIGBUS). */
    ck_assert_int_eq(t_seg_truncate("s", cap / 2), 0);
    open_fails(-EBADMSG);
    ck_assert_int_eq(t_seg_truncate("s", SEG_HEADER_SIZE), 0);
    open_fails(-EBADMSG);
    ck_assert_int_eq(t_seg_truncate("s", cap - 1), 0);
    open_fails(-EBADMSG);
}
END_TEST

START_TEST(bad_magic)
{
    struct fx f;
    fx_make(&f);
    t_seg_hdr(&f.m)->magic[3] = 'X';
    fx_done(&f);
    open_fails(-EBADMSG);
}
END_TEST

START_TEST(other_version)
{
    struct fx f;
    fx_make(&f);
    t_seg_hdr(&f.m)->version = SPECULO_FORMAT_VERSION + 1;
    open_fails(-EPROTO);
    t_seg_hdr(&f.m)->version = 0;
    fx_done(&f);
    int rc;
    speculo_reader *r = NULL;
    rc = speculo_reader_open("s", &r);
    ck_assert_msg(rc == -EPROTO || rc == -EBADMSG, "version 0: %d", rc);
}
END_TEST

START_TEST(header_regions_outside_file)
{
    struct fx f;
    fx_make(&f);
    struct seg_header *h = t_seg_hdr(&f.m), saved = *h;
    h->index_off = f.capacity;
    open_fails(-EBADMSG);
    *h = saved;
    h->index_slots = UINT64_C(1) << 40;
    open_fails(-EBADMSG);
    *h = saved;
    h->table_off = f.capacity - 8;
    h->table_slots = 2;
    open_fails(-EBADMSG);
    *h = saved;
    h->table_slots = UINT64_MAX / 8 + 2; /* wraps when multiplied by 8 */
    open_fails(-EBADMSG);
    *h = saved;
    h->records_off = f.capacity + 4096;
    open_fails(-EBADMSG);
    *h = saved;
    h->capacity = f.capacity * 2;
    open_fails(-EBADMSG);
    *h = saved;
    h->capacity = 0;
    open_fails(-EBADMSG);
    *h = saved;
    h->header_size = 0;
    open_fails(-EBADMSG);
    *h = saved;
    /* Restored: usable again. */
    speculo_reader *r = th_reader("s");
    th_nexts(r, f.id[0], "one");
    th_nexts(r, f.id[1], "two");
    th_nexts(r, f.id[2], "three");
    th_next_none(r);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

/* ---- records ----------------------------------------------------------- */

START_TEST(commit_length_past_end)
{
    struct fx f;
    fx_make(&f);
    atomic_store(&fx_rec(&f, 1)->commit, align_up(f.capacity * 4, REC_ALIGN));
    speculo_reader *r = th_reader("s");
    next_fails_after(r, &f, 1);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get_id(r, f.id[1], &c), -EBADMSG);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(commit_length_wraps)
{
    struct fx f;
    fx_make(&f);
    /* off + len wraps around to a small number. */
    atomic_store(&fx_rec(&f, 1)->commit, (UINT64_MAX - f.off[1] + 1 + REC_ALIGN) & ~(uint64_t)(REC_ALIGN - 1));
    speculo_reader *r = th_reader("s");
    next_fails_after(r, &f, 1);
    speculo_reader_close(r);
    atomic_store(&fx_rec(&f, 1)->commit, UINT64_C(1) << 63);
    r = th_reader("s");
    next_fails_after(r, &f, 1);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(commit_length_too_small)
{
    struct fx f;
    fx_make(&f);
    /* Shorter than a record header, and not a multiple of REC_ALIGN. */
    atomic_store(&fx_rec(&f, 0)->commit, 8);
    speculo_reader *r = th_reader("s");
    next_fails_after(r, &f, 0);
    speculo_reader_close(r);
    atomic_store(&fx_rec(&f, 0)->commit, REC_ALIGN + 8);
    r = th_reader("s");
    next_fails_after(r, &f, 0);
    speculo_reader_close(r);
    /* A whole number of lines, but shorter than its payload. */
    atomic_store(&fx_rec(&f, 2)->commit, REC_ALIGN);
    atomic_store(&fx_rec(&f, 0)->commit, rec_length(3, 5));
    r = th_reader("s");
    next_fails_after(r, &f, 2);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(zero_length_record_does_not_loop)
{
    struct fx f;
    fx_make(&f);
    atomic_store(&fx_rec(&f, 1)->commit, 0);
    speculo_reader *r = th_reader("s");
    th_nexts(r, f.id[0], "one");
    speculo_chunk c;
    for (int i = 0; i < 3; i++) {
        int rc = speculo_reader_next(r, &c);
        ck_assert_msg(rc == -EAGAIN || rc == -EBADMSG, "next = %d", rc);
    }
    int rc = speculo_reader_wait(r, 10);
    ck_assert_msg(rc == 0 || rc == -ETIMEDOUT, "wait = %d", rc);
    struct speculo_segment_info info;
    rc = speculo_reader_info(r, &info);
    ck_assert_msg(rc == 0 || rc == -EBADMSG, "info = %d", rc);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(size_of_2_63)
{
    struct fx f;
    fx_make(&f);
    fx_rec(&f, 0)->size = UINT64_C(1) << 63;
    speculo_reader *r = th_reader("s");
    next_fails_after(r, &f, 0);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "first", &c), -EBADMSG);
    ck_assert_int_eq(speculo_reader_get_id(r, f.id[0], &c), -EBADMSG);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(size_past_record)
{
    struct fx f;
    fx_make(&f);
    /* Inside the file, but past the record's end. */
    fx_rec(&f, 1)->size = atomic_load(&fx_rec(&f, 1)->commit);
    speculo_reader *r = th_reader("s");
    next_fails_after(r, &f, 1);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get_id(r, f.id[1], &c), -EBADMSG);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(name_len_past_record)
{
    struct fx f;
    fx_make(&f);
    fx_rec(&f, 0)->name_len = 1000;
    speculo_reader *r = th_reader("s");
    next_fails_after(r, &f, 0);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "first", &c), -EBADMSG);
    speculo_reader_close(r);
    fx_rec(&f, 0)->name_len = UINT32_MAX;
    r = th_reader("s");
    next_fails_after(r, &f, 0);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(name_without_nul)
{
    struct fx f;
    fx_make(&f);
    /* "first" + NUL after the payload "one": fill the rest of the record
     * with letters so there is no NUL up to the next record. */
    uint64_t len = atomic_load(&fx_rec(&f, 0)->commit);
    uint64_t name_at = f.off[0] + REC_HEADER_SIZE + align_up(3, PAYLOAD_ALIGN);
    ck_assert_str_eq((char *)f.m.p + name_at, "first");
    unsigned char saved[REC_ALIGN * 2];
    size_t tail = f.off[0] + len - (name_at + 5);
    ck_assert_uint_le(tail, sizeof(saved));
    memcpy(saved, f.m.p + name_at + 5, tail);
    memset(f.m.p + name_at + 5, 'x', tail);
    speculo_reader *r = th_reader("s");
    next_fails_after(r, &f, 0);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "first", &c), -EBADMSG);
    speculo_reader_close(r);
    /* The NUL back, but name_len disagrees with it. */
    memcpy(f.m.p + name_at + 5, saved, tail);
    fx_rec(&f, 0)->name_len = 3;
    r = th_reader("s");
    next_fails_after(r, &f, 0);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(name_with_bad_characters)
{
    struct fx f;
    fx_make(&f);
    uint64_t name_at = f.off[2] + REC_HEADER_SIZE + align_up(5, PAYLOAD_ALIGN);
    ck_assert_str_eq((char *)f.m.p + name_at, "third");
    f.m.p[name_at + 1] = '/';
    speculo_reader *r = th_reader("s");
    /* A name no writer could have written ("t/ird") is corruption; a reader
     * must not hand it out as a chunk name. */
    th_nexts(r, f.id[0], "one");
    th_nexts(r, f.id[1], "two");
    speculo_chunk c;
    int rc = speculo_reader_next(r, &c);
    ck_assert_msg(rc == -EBADMSG, "next = %d (name %s)", rc, rc == 0 && c.name ? c.name : "-");
    ck_assert_int_eq(speculo_reader_get_id(r, f.id[2], &c), -EBADMSG);
    speculo_reader_close(r);
    /* nor may a writer taking the file over put it in the index */
    speculo_writer *w = NULL;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EBADMSG);
    ck_assert_ptr_null(w);
    fx_done(&f);
}
END_TEST

START_TEST(ids_not_increasing)
{
    struct fx f;
    fx_make(&f);
    fx_rec(&f, 1)->id = f.id[0];
    speculo_reader *r = th_reader("s");
    next_fails_after(r, &f, 1);
    speculo_reader_close(r);
    fx_rec(&f, 1)->id = f.id[1];
    fx_rec(&f, 2)->id = f.id[0];
    r = th_reader("s");
    next_fails_after(r, &f, 2);
    speculo_reader_close(r);
    fx_rec(&f, 2)->id = f.id[2];
    fx_rec(&f, 0)->id = 0;
    r = th_reader("s");
    next_fails_after(r, &f, 0);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(corruption_seen_by_open_reader)
{
    /* The file changes under an open reader (a rogue writer): the mapping is
     * shared, the reader must check what it reads at every call. */
    struct fx f;
    fx_make(&f);
    speculo_reader *r = th_reader("s");
    th_nexts(r, f.id[0], "one");
    atomic_store(&fx_rec(&f, 1)->commit, UINT64_C(1) << 62);
    next_fails_after(r, &f, 0);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

/* ---- name index and id table ------------------------------------------ */

static struct name_slot *slot_of_first(struct fx *f)
{
    struct seg_header *h = t_seg_hdr(&f->m);
    struct name_slot *slots = (void *)(f->m.p + h->index_off);
    for (uint64_t i = 0; i < h->index_slots; i++)
        if (atomic_load(&slots[i].off) == f->off[0])
            return &slots[i];
    ck_abort_msg("no index slot for 'first'");
    return NULL;
}

START_TEST(name_slot_outside_file)
{
    struct fx f;
    fx_make(&f);
    struct name_slot *s = slot_of_first(&f);
    const uint64_t bad[] = {f.capacity, f.capacity + 4096, f.capacity - REC_ALIGN,
                            UINT64_MAX & ~(uint64_t)(REC_ALIGN - 1), UINT64_C(1) << 63};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        atomic_store(&s->off, bad[i]);
        speculo_reader *r = th_reader("s");
        speculo_chunk c;
        int rc = speculo_reader_get(r, "first", &c);
        ck_assert_msg(rc == -EBADMSG, "slot off %llx: get = %d", (unsigned long long)bad[i], rc);
        speculo_reader_close(r);
    }
    fx_done(&f);
}
END_TEST

START_TEST(name_slot_points_at_garbage)
{
    struct fx f;
    fx_make(&f);
    struct seg_header *h = t_seg_hdr(&f.m);
    struct name_slot *s = slot_of_first(&f);
    const uint64_t good = atomic_load(&s->off);
    const uint64_t bad[] = {f.off[0] + 8, f.off[0] + REC_HEADER_SIZE, 0 + 64, h->index_off,
                            h->table_off, f.off[2] + atomic_load(&fx_rec(&f, 2)->commit)};
    /* a reader that found the name through this slot before, and asks again */
    speculo_reader *again = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(again, "first", &c), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        atomic_store(&s->off, bad[i]);
        speculo_reader *r = th_reader("s");
        int rc = speculo_reader_get(r, "first", &c);
        ck_assert_msg(rc == -EBADMSG || rc == -ENOENT, "slot off %llu: get = %d",
                      (unsigned long long)bad[i], rc);
        speculo_reader_close(r);
        rc = speculo_reader_get(again, "first", &c);
        ck_assert_msg(rc == -EBADMSG || rc == -ENOENT, "slot off %llu: get again = %d",
                      (unsigned long long)bad[i], rc);
    }
    atomic_store(&s->off, good);
    ck_assert_int_eq(speculo_reader_get(again, "first", &c), 0);
    ck_assert_uint_eq(c.id, f.id[0]);
    speculo_reader_close(again);
    /* At a well-formed record of another name, or of none: not that one. */
    const int others[] = {1, 2};
    for (int i = 0; i < 2; i++) {
        atomic_store(&s->off, f.off[others[i]]);
        speculo_reader *r = th_reader("s");
        int rc = speculo_reader_get(r, "first", &c);
        ck_assert_msg(rc == -EBADMSG || rc == -ENOENT, "slot at record %d: get = %d (id %llu)",
                      others[i], rc, (unsigned long long)(rc == 0 ? c.id : 0));
        speculo_reader_close(r);
    }
    fx_done(&f);
}
END_TEST

START_TEST(name_index_full_of_garbage_terminates)
{
    struct fx f;
    fx_make(&f);
    struct seg_header *h = t_seg_hdr(&f.m);
    struct name_slot *slots = (void *)(f.m.p + h->index_off);
    /* Every slot taken, none matching: a probe must stop anyway. */
    for (uint64_t i = 0; i < h->index_slots; i++) {
        slots[i].hash = UINT64_C(0x9e3779b97f4a7c15) * (i + 1);
        atomic_store(&slots[i].off, f.off[1]);
    }
    /* (a probe that did not stop would hang: the case's timeout fails it) */
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    int rc = speculo_reader_get(r, "absent", &c);
    ck_assert_msg(rc == -ENOENT || rc == -EBADMSG, "get = %d", rc);
    rc = speculo_reader_get(r, "first", &c);
    ck_assert_msg(rc == -ENOENT || rc == -EBADMSG, "get = %d", rc);
    /* Every slot with the right hash and a record of another name. */
    for (uint64_t i = 0; i < h->index_slots; i++)
        slots[i].hash = speculo__name_hash(h->hash_seed, "absent", 6);
    rc = speculo_reader_get(r, "absent", &c);
    ck_assert_msg(rc == -ENOENT || rc == -EBADMSG, "get = %d", rc);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(id_table_entry_outside_file)
{
    struct fx f;
    fx_make(&f);
    struct seg_header *h = t_seg_hdr(&f.m);
    _Atomic uint64_t *table = (void *)(f.m.p + h->table_off);
    int changed = 0;
    for (uint64_t i = 0; i < h->table_slots; i++) {
        if (atomic_load(&table[i])) {
            atomic_store(&table[i], f.capacity + 4096 * (i + 1));
            changed++;
        }
    }
    ck_assert_int_ge(changed, 1);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    for (int i = 0; i < 3; i++) {
        int rc = speculo_reader_get_id(r, f.id[i], &c);
        ck_assert_msg(rc == -EBADMSG, "get_id(%llu) = %d", (unsigned long long)f.id[i], rc);
    }
    int rc = speculo_reader_seek(r, f.id[0]);
    ck_assert_msg(rc == 0 || rc == -EBADMSG, "seek = %d", rc);
    if (rc == 0) {
        rc = speculo_reader_next(r, &c);
        ck_assert_msg(rc == -EBADMSG || (rc == 0 && c.id == f.id[1]), "next = %d", rc);
    }
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(id_table_entries_misleading)
{
    struct fx f;
    fx_make(&f);
    struct seg_header *h = t_seg_hdr(&f.m);
    _Atomic uint64_t *table = (void *)(f.m.p + h->table_off);
    /* Every entry at the first record: a binary search must end, and not
     * hand out the wrong chunk. */
    for (uint64_t i = 0; i < h->table_slots; i++)
        if (atomic_load(&table[i]))
            atomic_store(&table[i], f.off[0]);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    int rc = speculo_reader_get_id(r, f.id[2], &c);
    ck_assert_msg(rc == -ENOENT || rc == -EBADMSG || (rc == 0 && c.id == f.id[2]),
                  "get_id = %d (id %llu)", rc, (unsigned long long)(rc == 0 ? c.id : 0));
    /* Misaligned entries. */
    for (uint64_t i = 0; i < h->table_slots; i++)
        if (atomic_load(&table[i]))
            atomic_store(&table[i], f.off[0] + 24);
    rc = speculo_reader_get_id(r, f.id[1], &c);
    ck_assert_msg(rc == -ENOENT || rc == -EBADMSG, "get_id = %d", rc);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

/* ---- header counters and the switch ----------------------------------- */

START_TEST(header_counters_garbage)
{
    struct fx f;
    fx_make(&f);
    struct seg_header *h = t_seg_hdr(&f.m);
    atomic_store(&h->nrecords, UINT64_C(1) << 62);
    atomic_store(&h->committed_end, UINT64_MAX - 7);
    atomic_store(&h->last_id, UINT64_MAX);
    atomic_store(&h->names_used, UINT64_MAX);
    atomic_store(&h->dead_bytes, UINT64_MAX);
    atomic_store(&h->obsolete_count, UINT64_MAX);
    speculo_reader *r = NULL;
    int rc = speculo_reader_open("s", &r);
    ck_assert_msg(rc == 0 || rc == -EBADMSG, "open = %d", rc);
    if (rc == 0) {
        speculo_chunk c;
        uint64_t prev = 0;
        int n = 0;
        while ((rc = speculo_reader_next(r, &c)) == 0 && n < 10) {
            ck_assert_uint_gt(c.id, prev);
            prev = c.id;
            n++;
        }
        ck_assert_int_le(n, 3);
        ck_assert_msg(rc == -EAGAIN || rc == -EBADMSG, "next = %d", rc);
        struct speculo_segment_info info;
        rc = speculo_reader_info(r, &info);
        ck_assert_msg(rc == 0 || rc == -EBADMSG, "info = %d", rc);
        rc = speculo_reader_wait(r, 10);
        ck_assert_msg(rc == 0 || rc == -ETIMEDOUT || rc == -EBADMSG, "wait = %d", rc);
        rc = speculo_reader_seek(r, UINT64_MAX);
        ck_assert_msg(rc == 0 || rc == -EBADMSG, "seek = %d", rc);
        speculo_reader_close(r);
    }
    char buf[2048];
    ck_assert_int_gt(speculo_segment_describe("s", buf, sizeof(buf)), 0);
    fx_done(&f);
}
END_TEST

START_TEST(superseded_without_successor_does_not_loop)
{
    struct fx f;
    fx_make(&f);
    /* The file says it was replaced, but it is still the file of the name. */
    atomic_store(&t_seg_hdr(&f.m)->superseded, 7);
    speculo_reader *r = NULL;
    int rc = speculo_reader_open("s", &r);
    ck_assert_msg(rc == 0 || rc == -EBADMSG, "open = %d", rc);
    if (rc == 0) {
        speculo_chunk c;
        for (int i = 0; i < 5; i++) {
            rc = speculo_reader_next(r, &c);
            ck_assert_msg(rc == 0 || rc == -EAGAIN || rc == -EBADMSG, "next = %d", rc);
        }
        rc = speculo_reader_wait(r, 50);
        ck_assert_msg(rc == 0 || rc == -ETIMEDOUT || rc == -EBADMSG, "wait = %d", rc);
        speculo_reader_close(r);
    }
    fx_done(&f);
}
END_TEST

START_TEST(switch_to_hostile_file)
{
    /* An open reader follows a "switch" to a file that is not a segment. */
    struct fx f;
    fx_make(&f);
    speculo_reader *r = th_reader("s");
    th_nexts(r, f.id[0], "one");
    char *junk = malloc(64 << 10);
    ck_assert_ptr_nonnull(junk);
    t_fill(junk, 64 << 10, 5);
    write_file(".junk", junk, 64 << 10);
    free(junk);
    char from[256], to[256];
    ck_assert_int_eq(t_path(from, sizeof(from), ".junk"), 0);
    ck_assert_int_eq(t_path(to, sizeof(to), "s"), 0);
    ck_assert_int_eq(rename(from, to), 0);
    atomic_store(&t_seg_hdr(&f.m)->superseded, 2);
    /* It may finish the old file first (the same chunks are in a real
     * successor), but then it must refuse the new one. */
    static const char *const v[3] = {"one", "two", "three"};
    speculo_chunk c;
    int rc = 0, i;
    for (i = 1; i <= 3 && (rc = speculo_reader_next(r, &c)) == 0; i++) {
        ck_assert_int_lt(i, 3);
        ck_assert_uint_eq(c.id, f.id[i]);
        th_chunk_is(&c, v[i], strlen(v[i]));
    }
    ck_assert_msg(rc == -EBADMSG, "next = %d", rc);
    rc = speculo_reader_get(r, "third", &c);
    ck_assert_msg(rc == -EBADMSG || (rc == 0 && c.id == f.id[2]), "get = %d", rc);
    struct speculo_segment_info info;
    ck_assert_int_eq(speculo_reader_info(r, &info), -EBADMSG);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST

START_TEST(writer_open_on_corrupt_records)
{
    struct fx f;
    fx_make(&f);
    atomic_store(&fx_rec(&f, 1)->commit, UINT64_C(1) << 62);
    speculo_writer *w = NULL;
    int rc = speculo_writer_open("s", NULL, &w);
    ck_assert_msg(rc == -EBADMSG || rc == 0, "writer_open = %d", rc);
    if (rc == 0) {
        /* Whatever it does, it does not crash. */
        speculo_writer_put(w, "x", 1, NULL, NULL);
        speculo_writer_close(w);
    }
    fx_done(&f);
}
END_TEST

/* Another process rewrites the name slot an open writer last stored: the
 * writer's next commit of that name must notice (it looks the name up
 * again instead of trusting what it stored): it commits into a slot of its
 * own, past the damaged one, and leaves the damage where it is. Readers
 * then meet the damaged slot first: a value that cannot be a record gives
 * -EBADMSG; a record of another name is passed over to the new version. */
START_TEST(open_writer_survives_its_name_slot_rewritten)
{
    speculo_writer *w = th_writer("s", 0);
    th_puts(w, "v1", "hot");
    uint64_t unnamed = th_puts(w, "plain", NULL);
    th_puts(w, "v2", "hot");
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    struct seg_header *h = t_seg_hdr(&m);
    struct name_slot *slots = (void *)(m.p + h->index_off), *s = NULL;
    for (uint64_t i = 0; i < h->index_slots && !s; i++)
        if (atomic_load(&slots[i].off))
            s = &slots[i];
    ck_assert_ptr_nonnull(s);
    uint64_t offs[8];
    ck_assert_int_ge(t_seg_records(&m, offs, 8), 2);
    const uint64_t bad[] = {m.size, m.size + 4096, UINT64_C(1) << 63, h->index_off,
                            h->records_off + 8, offs[1] /* "plain", unnamed */};
    const size_t nbad = sizeof(bad) / sizeof(bad[0]);
    for (size_t i = 0; i < nbad; i++) {
        atomic_store(&s->off, bad[i]);
        char v[8];
        snprintf(v, sizeof v, "x%zu", i);
        uint64_t id = th_puts(w, v, "hot");
        uint64_t now_off = atomic_load(&s->off);
        ck_assert_uint_eq(now_off, bad[i]); /* left as it was */
        speculo_reader *r = th_reader("s");
        speculo_chunk c;
        int rc = speculo_reader_get(r, "hot", &c);
        if (i < nbad - 1) {
            ck_assert_msg(rc == -EBADMSG, "slot off %llu: get = %d", (unsigned long long)bad[i],
                          rc);
        } else {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(c.id, id);
            ck_assert_str_eq(c.name, "hot");
            th_chunk_is(&c, v, strlen(v));
        }
        speculo_reader_close(r);
    }
    /* the unnamed chunk the slot was pointed at is not taken for a version */
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get_id(r, unnamed, &c), 0);
    ck_assert_ptr_null(c.name);
    speculo_reader_close(r);
    t_seg_unmap(&m);
    speculo_writer_close(w);
}
END_TEST

#if !defined(__SANITIZE_THREAD__)
/* A rogue process keeps changing a record's size field while the reader
 * works: a chunk handed out must never claim more bytes than its record
 * holds (the caller would read past the mapping). */
struct flipper {
    _Atomic uint64_t *size;
    _Atomic int stop;
};

static void *flip_size(void *arg)
{
    struct flipper *fl = arg;
    while (!atomic_load_explicit(&fl->stop, memory_order_relaxed)) {
        atomic_store_explicit(fl->size, UINT64_C(1) << 40, memory_order_relaxed);
        atomic_store_explicit(fl->size, 3, memory_order_relaxed);
    }
    return NULL;
}

START_TEST(concurrent_size_change_never_escapes)
{
    struct fx f;
    fx_make(&f);
    struct flipper fl = {.size = (_Atomic uint64_t *)&fx_rec(&f, 0)->size};
    atomic_store(&fl.stop, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, flip_size, &fl), 0);
    speculo_reader *r = th_reader("s");
    int64_t t0 = t_mono_ns();
    long got = 0, bad = 0, errors = 0;
    uint64_t worst = 0;
    while (t_ms_since(t0) < 1500) {
        for (int i = 0; i < 1000; i++) {
            speculo_chunk c;
            int rc = speculo_reader_get_id(r, f.id[0], &c);
            if (rc == 0) {
                got++;
                if (c.size != 3) {
                    bad++;
                    worst = c.size;
                }
            } else {
                errors++;
            }
            if (speculo_reader_seek(r, 0) == 0 && speculo_reader_next(r, &c) == 0 &&
                c.id == f.id[0] && c.size != 3) {
                bad++;
                worst = c.size;
            }
        }
    }
    atomic_store(&fl.stop, 1);
    pthread_join(th, NULL);
    ck_assert_msg(bad == 0, "%ld of %ld chunks handed out with a size of %llu (record holds 3)",
                  bad, got, (unsigned long long)worst);
    speculo_reader_close(r);
    fx_done(&f);
}
END_TEST
#endif


Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = th_tcase("file", 10);
    tcase_add_test(tc, empty_file);
    tcase_add_test(tc, random_bytes_file);
    tcase_add_test(tc, truncated_below_header);
    tcase_add_test(tc, truncated_below_capacity);
    tcase_add_test(tc, bad_magic);
    tcase_add_test(tc, other_version);
    tcase_add_test(tc, header_regions_outside_file);
    suite_add_tcase(s, tc);

    tc = th_tcase("records", 10);
    tcase_add_test(tc, commit_length_past_end);
    tcase_add_test(tc, commit_length_wraps);
    tcase_add_test(tc, commit_length_too_small);
    tcase_add_test(tc, zero_length_record_does_not_loop);
    tcase_add_test(tc, size_of_2_63);
    tcase_add_test(tc, size_past_record);
    tcase_add_test(tc, name_len_past_record);
    tcase_add_test(tc, name_without_nul);
    tcase_add_test(tc, name_with_bad_characters);
    tcase_add_test(tc, ids_not_increasing);
    tcase_add_test(tc, corruption_seen_by_open_reader);
#if !defined(__SANITIZE_THREAD__)
    /* (a deliberate data race on the mapping: not for ThreadSanitizer) */
    tcase_add_test(tc, concurrent_size_change_never_escapes);
#endif
    tcase_add_test(tc, writer_open_on_corrupt_records);
    suite_add_tcase(s, tc);

    tc = th_tcase("indexes", 10);
    tcase_add_test(tc, name_slot_outside_file);
    tcase_add_test(tc, name_slot_points_at_garbage);
    tcase_add_test(tc, name_index_full_of_garbage_terminates);
    tcase_add_test(tc, id_table_entry_outside_file);
    tcase_add_test(tc, id_table_entries_misleading);
    tcase_add_test(tc, header_counters_garbage);
    tcase_add_test(tc, superseded_without_successor_does_not_loop);
    tcase_add_test(tc, switch_to_hostile_file);
    tcase_add_test(tc, open_writer_survives_its_name_slot_rewritten);
    suite_add_tcase(s, tc);
    return s;
}
