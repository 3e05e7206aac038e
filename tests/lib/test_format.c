/*
 * format: the segment file as lib/format.h describes it, seen from outside
 * (mapped by the test), and the internal helpers that check it.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "th.h"

static int is_pow2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* The regions of a header lie in order, inside the file, without overlap. */
static void check_layout(const struct seg_header *h, uint64_t file_size)
{
    ck_assert_uint_eq(h->capacity, file_size);
    ck_assert_uint_ge(h->index_off, SEG_HEADER_SIZE);
    ck_assert(is_pow2(h->index_slots));
    ck_assert_uint_ge(h->table_off, h->index_off + h->index_slots * sizeof(struct name_slot));
    ck_assert_uint_gt(h->table_slots, 0);
    ck_assert_uint_ge(h->records_off, h->table_off + h->table_slots * sizeof(uint64_t));
    ck_assert_uint_eq(h->records_off % REC_ALIGN, 0);
    ck_assert_uint_lt(h->records_off, h->capacity);
    ck_assert_uint_eq(h->index_off % 8, 0);
    ck_assert_uint_eq(h->table_off % 8, 0);
}

START_TEST(header_of_new_segment)
{
    int64_t before = t_real_ns();
    speculo_writer *w = th_writer("s", 256 << 10);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    const struct seg_header *h = t_seg_hdr(&m);
    ck_assert_int_eq(memcmp(h->magic, SEG_MAGIC, 8), 0);
    ck_assert_uint_eq(h->version, SPECULO_FORMAT_VERSION);
    ck_assert_uint_eq(h->header_size, SEG_HEADER_SIZE);
    ck_assert_uint_eq(m.size, 256 << 10);
    check_layout(h, m.size);
    ck_assert_uint_eq(h->generation, 1);
    ck_assert_uint_eq(h->base_capacity, 256 << 10);
    ck_assert_int_ge(h->created_ns, before - 1000000);
    ck_assert_int_le(h->created_ns, t_real_ns() + 1000000);
    ck_assert_uint_eq(atomic_load(&h->superseded), 0);
    ck_assert_uint_eq(atomic_load(&h->nrecords), 0);
    ck_assert_uint_eq(atomic_load(&h->last_id), 0);
    ck_assert_uint_eq(atomic_load(&h->dead_bytes), 0);
    ck_assert_uint_eq(atomic_load(&h->waiters), 0);
    ck_assert_int_eq(speculo__seg_check_header(m.p, m.size), 0);
    t_seg_unmap(&m);
    speculo_writer_close(w);
}
END_TEST

START_TEST(owner_token_names_writer)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    const struct seg_header *h = t_seg_hdr(&m);
    uint64_t owner = atomic_load(&h->owner);
    ck_assert_uint_eq(owner & OWNER_PID_MASK, (uint64_t)getpid());
    uint64_t ticks = t_proc_start_ticks(getpid());
    ck_assert_uint_gt(ticks, 0);
    ck_assert_uint_eq(owner >> OWNER_PID_BITS, ticks);
    speculo_writer_close(w);
    ck_assert_uint_eq(atomic_load(&h->owner), 0);
    t_seg_unmap(&m);
}
END_TEST

START_TEST(record_layout_of_committed_chunks)
{
    int64_t before = t_real_ns();
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t id1 = th_puts(w, "hello", "nm");
    uint64_t id2 = th_put(w, "world!", 6, NULL, 1000000000, 0);
    int64_t after = t_real_ns();
    ck_assert_uint_gt(id2, id1);

    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    const struct seg_header *h = t_seg_hdr(&m);
    uint64_t offs[4];
    ck_assert_int_eq(t_seg_records(&m, offs, 4), 2);
    ck_assert_uint_eq(offs[0], h->records_off);

    const struct rec_header *r1 = t_seg_rec(&m, offs[0]);
    uint64_t len1 = atomic_load(&r1->commit);
    ck_assert_uint_eq(len1, rec_length(5, 2));
    ck_assert_uint_eq(r1->id, id1);
    ck_assert_uint_eq(r1->size, 5);
    ck_assert_uint_eq(r1->name_len, 2);
    ck_assert_int_eq(memcmp(m.p + offs[0] + REC_HEADER_SIZE, "hello", 5), 0);
    ck_assert_int_eq(memcmp(m.p + offs[0] + REC_HEADER_SIZE + align_up(5, PAYLOAD_ALIGN), "nm",
                            3),
                     0);
    ck_assert_uint_eq(r1->replaces, 0);
    ck_assert_uint_eq(atomic_load(&r1->obsoleted_by), 0);
    ck_assert_int_eq(r1->expires_ns, 0);
    ck_assert_int_ge(r1->committed_ns, before);
    ck_assert_int_le(r1->committed_ns, after);

    ck_assert_uint_eq(offs[1], offs[0] + len1);
    const struct rec_header *r2 = t_seg_rec(&m, offs[1]);
    uint64_t len2 = atomic_load(&r2->commit);
    ck_assert_uint_eq(len2, rec_length(6, 0));
    ck_assert_uint_eq(r2->id, id2);
    ck_assert_uint_eq(r2->size, 6);
    ck_assert_uint_eq(r2->name_len, 0);
    ck_assert_int_eq(memcmp(m.p + offs[1] + REC_HEADER_SIZE, "world!", 6), 0);
    ck_assert_int_eq(r2->expires_ns, r2->committed_ns + 1000000000);
    ck_assert_int_ge(r2->committed_ns, r1->committed_ns);

    ck_assert_uint_eq(atomic_load(&h->nrecords), 2);
    ck_assert_uint_eq(atomic_load(&h->last_id), id2);
    ck_assert_uint_eq(atomic_load(&h->committed_end), offs[1] + len2);
    ck_assert_uint_eq(atomic_load(&h->names_used), 1);
    ck_assert_int_eq(atomic_load(&h->last_commit_ns), r2->committed_ns);

    /* The name index has one slot taken, pointing at the named record. */
    const struct name_slot *slots = (const void *)(m.p + h->index_off);
    int taken = 0;
    for (uint64_t i = 0; i < h->index_slots; i++) {
        uint64_t off = atomic_load(&slots[i].off);
        if (off) {
            taken++;
            ck_assert_uint_eq(off, offs[0]);
            ck_assert_uint_eq(slots[i].hash, speculo__name_hash(h->hash_seed, "nm", 2));
        }
    }
    ck_assert_int_eq(taken, 1);

    /* rec_check agrees. */
    struct rec_view v;
    struct seg_layout l;
    ck_assert_int_eq(speculo__seg_check_layout(m.p, m.size, &l), 0);
    ck_assert_int_eq(speculo__rec_check(m.p, &l, offs[0], &v), 1);
    ck_assert_uint_eq(v.off, offs[0]);
    ck_assert_uint_eq(v.len, len1);
    ck_assert_ptr_nonnull(v.name);
    ck_assert_str_eq(v.name, "nm");
    ck_assert_ptr_eq(v.h, r1);
    ck_assert_int_eq(speculo__rec_check(m.p, &l, offs[1], &v), 1);
    ck_assert_ptr_null(v.name);
    /* Where the next record will go, nothing is committed yet. */
    ck_assert_int_eq(speculo__rec_check(m.p, &l, offs[1] + len2, &v), 0);
    t_seg_unmap(&m);
    speculo_writer_close(w);
}
END_TEST

START_TEST(uncommitted_reservation_not_published)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t id1 = th_puts(w, "a", NULL);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 1000, &p), 0);
    memset(p, 0x5a, 1000);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    const struct seg_header *h = t_seg_hdr(&m);
    uint64_t offs[4];
    ck_assert_int_eq(t_seg_records(&m, offs, 4), 1);
    ck_assert_uint_eq(atomic_load(&h->nrecords), 1);
    ck_assert_uint_eq(atomic_load(&h->last_id), id1);
    uint64_t end = offs[0] + atomic_load(&t_seg_rec(&m, offs[0])->commit);
    ck_assert_uint_eq(atomic_load(&t_seg_rec(&m, end)->commit), 0);
    uint64_t id2;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id2), 0);
    ck_assert_uint_eq(atomic_load(&t_seg_rec(&m, end)->commit), rec_length(1000, 0));
    ck_assert_uint_eq(t_seg_rec(&m, end)->id, id2);
    ck_assert_uint_eq(atomic_load(&h->nrecords), 2);
    t_seg_unmap(&m);
    speculo_writer_close(w);
}
END_TEST

START_TEST(obsolete_marks_in_records)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t v1 = th_puts(w, "version-1", "doc");
    uint64_t v2 = th_puts(w, "version-2", "doc");
    uint64_t x = th_puts(w, "x", NULL);
    uint64_t y = th_put(w, "y", 1, NULL, 0, x);
    uint64_t z = th_puts(w, "z", NULL);
    ck_assert_int_eq(speculo_writer_obsolete(w, z), 0);

    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    const struct seg_header *h = t_seg_hdr(&m);
    uint64_t offs[8];
    ck_assert_int_eq(t_seg_records(&m, offs, 8), 5);
    const struct rec_header *r[5];
    for (int i = 0; i < 5; i++)
        r[i] = t_seg_rec(&m, offs[i]);
    ck_assert_uint_eq(r[0]->id, v1);
    ck_assert_uint_eq(atomic_load(&r[0]->obsoleted_by), v2);
    ck_assert_uint_eq(r[1]->replaces, v1);
    ck_assert_uint_eq(atomic_load(&r[1]->obsoleted_by), 0);
    ck_assert_uint_eq(atomic_load(&r[2]->obsoleted_by), y);
    ck_assert_uint_eq(r[3]->replaces, x);
    ck_assert_uint_eq(atomic_load(&r[4]->obsoleted_by), OBSOLETE_EXPLICIT);
    ck_assert_uint_eq(atomic_load(&h->obsolete_count), 3);
    ck_assert_uint_eq(atomic_load(&h->dead_bytes),
                      atomic_load(&r[0]->commit) + atomic_load(&r[2]->commit) +
                          atomic_load(&r[4]->commit));
    /* The name slot points at the newest version. */
    const struct name_slot *slots = (const void *)(m.p + h->index_off);
    int found = 0;
    for (uint64_t i = 0; i < h->index_slots; i++)
        if (atomic_load(&slots[i].off)) {
            ck_assert_uint_eq(atomic_load(&slots[i].off), offs[1]);
            found++;
        }
    ck_assert_int_eq(found, 1);
    t_seg_unmap(&m);
    speculo_writer_close(w);
}
END_TEST

START_TEST(superseded_set_by_gc)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", "name-a");
    th_puts(w, "b", NULL);
    struct t_seg_map old;
    ck_assert_int_eq(t_seg_map("s", &old), 0);
    const struct seg_header *oh = t_seg_hdr(&old);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_uint_eq(atomic_load(&oh->superseded), 2);

    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    const struct seg_header *h = t_seg_hdr(&m);
    ck_assert_uint_eq(h->generation, 2);
    ck_assert_uint_eq(atomic_load(&h->superseded), 0);
    ck_assert_uint_eq(h->segment_uid, oh->segment_uid);
    ck_assert_int_eq(h->created_ns, oh->created_ns);
    ck_assert_uint_eq(h->base_capacity, oh->base_capacity);
    check_layout(h, m.size);
    ck_assert_uint_eq(atomic_load(&h->owner), atomic_load(&oh->owner));
    uint64_t offs[4];
    ck_assert_int_eq(t_seg_records(&m, offs, 4), 2);
    ck_assert_uint_eq(t_seg_rec(&m, offs[0])->id, a);
    ck_assert_int_eq(speculo__seg_check_header(m.p, m.size), 0);

    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_uint_eq(atomic_load(&h->superseded), 3);
    t_seg_unmap(&m);
    t_seg_unmap(&old);
    speculo_writer_close(w);
}
END_TEST

START_TEST(superseded_set_by_remove)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "a", NULL);
    speculo_writer_close(w);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    ck_assert_uint_eq(atomic_load(&t_seg_hdr(&m)->superseded), SUPERSEDED_REMOVED);
    t_seg_unmap(&m);
}
END_TEST

/* A private, page-aligned copy of segment s. */
static unsigned char *copy_segment(const char *seg, size_t *size)
{
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map(seg, &m), 0);
    unsigned char *p = aligned_alloc(SEG_PAGE, m.size);
    ck_assert_ptr_nonnull(p);
    memcpy(p, m.p, m.size);
    *size = m.size;
    t_seg_unmap(&m);
    return p;
}

START_TEST(check_header_validates)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "a", "n");
    speculo_writer_close(w);
    size_t size;
    unsigned char *p = copy_segment("s", &size);
    struct seg_header *h = (void *)p;
    ck_assert_int_eq(speculo__seg_check_header(p, size), 0);
    /* The mapping is smaller than the capacity the header claims. */
    ck_assert_int_eq(speculo__seg_check_header(p, size - SEG_PAGE), -EBADMSG);
    ck_assert_int_eq(speculo__seg_check_header(p, SEG_HEADER_SIZE - 1), -EBADMSG);
    ck_assert_int_eq(speculo__seg_check_header(p, 0), -EBADMSG);

    h->magic[0] ^= 1;
    ck_assert_int_eq(speculo__seg_check_header(p, size), -EBADMSG);
    h->magic[0] ^= 1;
    h->version = SPECULO_FORMAT_VERSION + 1;
    ck_assert_int_eq(speculo__seg_check_header(p, size), -EPROTO);
    h->version = SPECULO_FORMAT_VERSION;

    struct seg_header saved = *h;
    h->index_off = size; /* the index outside the file */
    ck_assert_int_eq(speculo__seg_check_header(p, size), -EBADMSG);
    *h = saved;
    h->table_slots = UINT64_MAX / 4; /* overflows when multiplied */
    ck_assert_int_eq(speculo__seg_check_header(p, size), -EBADMSG);
    *h = saved;
    h->records_off = size + REC_ALIGN;
    ck_assert_int_eq(speculo__seg_check_header(p, size), -EBADMSG);
    *h = saved;
    h->index_slots = 3; /* not a power of two */
    ck_assert_int_eq(speculo__seg_check_header(p, size), -EBADMSG);
    *h = saved;
    h->header_size = 64;
    ck_assert_int_eq(speculo__seg_check_header(p, size), -EBADMSG);
    *h = saved;
    h->capacity = UINT64_MAX;
    ck_assert_int_eq(speculo__seg_check_header(p, size), -EBADMSG);
    *h = saved;
    ck_assert_int_eq(speculo__seg_check_header(p, size), 0);
    free(p);
}
END_TEST

START_TEST(check_record_validates)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "abc", "nm");
    speculo_writer_close(w);
    size_t size;
    unsigned char *p = copy_segment("s", &size);
    struct seg_header *h = (void *)p;
    struct seg_layout l; /* what a reader checks records against */
    ck_assert_int_eq(speculo__seg_check_layout(p, size, &l), 0);
    uint64_t off = h->records_off;
    struct rec_header *r = (void *)(p + off);
    struct rec_view v;
    uint64_t len = atomic_load(&r->commit);
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), 1);

    atomic_store(&r->commit, 0);
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), 0);
    atomic_store(&r->commit, 3);
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), -EBADMSG);
    atomic_store(&r->commit, size);
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), -EBADMSG);
    atomic_store(&r->commit, UINT64_MAX - 63);
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), -EBADMSG);
    atomic_store(&r->commit, len);

    r->size = UINT64_C(1) << 63;
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), -EBADMSG);
    r->size = 3;
    r->name_len = (uint32_t)len;
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), -EBADMSG);
    r->name_len = UINT32_MAX;
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), -EBADMSG);
    r->name_len = 2;
    char *name = (char *)p + off + REC_HEADER_SIZE + align_up(3, PAYLOAD_ALIGN);
    ck_assert_str_eq(name, "nm");
    name[2] = 'x';
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), -EBADMSG);
    name[2] = '\0';
    r->id = 0;
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), -EBADMSG);
    r->id = 1;
    ck_assert_int_eq(speculo__rec_check(p, &l, off, &v), 1);
    /* Offsets that are not a record's: misaligned, in the header, past the
     * end. */
    ck_assert_int_eq(speculo__rec_check(p, &l, off + 8, &v), -EBADMSG);
    ck_assert_int_eq(speculo__rec_check(p, &l, 0, &v), -EBADMSG);
    /* (At exactly the capacity, "nothing committed yet" is a fair answer:
     * it is where a full segment ends.) */
    int rc = speculo__rec_check(p, &l, size, &v);
    ck_assert_msg(rc == 0 || rc == -EBADMSG, "speculo__rec_check(capacity) = %d", rc);
    ck_assert_int_eq(speculo__rec_check(p, &l, size - 32, &v), -EBADMSG);
    ck_assert_int_eq(speculo__rec_check(p, &l, size + REC_ALIGN, &v), -EBADMSG);
    ck_assert_int_eq(speculo__rec_check(p, &l, UINT64_MAX - 63, &v), -EBADMSG);
    free(p);
}
END_TEST

START_TEST(record_length_rounding)
{
    ck_assert_uint_eq(rec_length(0, 0), 64);
    ck_assert_uint_eq(rec_length(1, 0), 128);
    ck_assert_uint_eq(rec_length(64, 0), 128);
    ck_assert_uint_eq(rec_length(65, 0), 192);
    ck_assert_uint_eq(rec_length(0, 63), 128);
    ck_assert_uint_eq(rec_length(0, 64), 192);
    ck_assert_uint_eq(rec_length(16, 47), 128);
    ck_assert_uint_eq(rec_length(16, 48), 192);
    ck_assert_uint_eq(align_up(0, 64), 0);
    ck_assert_uint_eq(align_up(1, 64), 64);
    ck_assert_uint_eq(align_up(64, 64), 64);
}
END_TEST

START_TEST(plan_layout_fits)
{
    /* capacity hint, data bytes, records, names */
    const uint64_t cases[][4] = {
        {0, 0, 0, 0},          {0, 1, 1, 1},           {64 << 10, 0, 0, 0},
        {64 << 10, 64 << 10, 100, 10}, {0, 1 << 20, 10000, 1000}, {4 << 20, 8 << 20, 1, 1},
        {0, 100, 1000, 1000},  {1 << 20, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const uint64_t *k = cases[i];
        struct seg_layout l;
        memset(&l, 0, sizeof(l));
        speculo__seg_plan_layout(k[0], k[1], k[2], k[3], &l);
        ck_assert_uint_eq(l.capacity % SEG_PAGE, 0);
        ck_assert_uint_ge(l.capacity, k[0]);
        ck_assert_uint_ge(l.index_off, SEG_HEADER_SIZE);
        ck_assert(is_pow2(l.index_slots));
        ck_assert_uint_gt(l.index_slots, k[3]);
        ck_assert_uint_ge(l.table_slots, k[2]);
        ck_assert_uint_ge(l.table_off, l.index_off + l.index_slots * sizeof(struct name_slot));
        ck_assert_uint_ge(l.records_off, l.table_off + l.table_slots * 8);
        ck_assert_uint_eq(l.records_off % REC_ALIGN, 0);
        ck_assert_uint_ge(l.capacity, l.records_off + k[1]);
    }
}
END_TEST

START_TEST(name_hash_deterministic)
{
    uint64_t a = speculo__name_hash(42, "alpha", 5);
    ck_assert_uint_eq(a, speculo__name_hash(42, "alpha", 5));
    ck_assert_uint_ne(a, speculo__name_hash(42, "alphb", 5));
    ck_assert_uint_ne(a, speculo__name_hash(42, "alph", 4));
    ck_assert_uint_ne(a, speculo__name_hash(43, "alpha", 5));
    /* Only len bytes count. */
    ck_assert_uint_eq(speculo__name_hash(7, "abcdef", 3), speculo__name_hash(7, "abcxyz", 3));
}
END_TEST

START_TEST(chunk_data_aligned)
{
    speculo_writer *w = th_writer("s", 0);
    char buf[300], name[64];
    t_fill(buf, sizeof(buf), 1);
    for (size_t size = 0; size < 70; size++) {
        snprintf(name, sizeof(name), "n%zu_%.*s", size, (int)(size % 40),
                 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnop");
        th_put(w, buf, size, (size % 3) ? name : NULL, 0, 0);
        void *p;
        ck_assert_int_eq(speculo_writer_alloc(w, size + 1, &p), 0);
        ck_assert_uint_eq((uintptr_t)p % alignof(max_align_t), 0);
        memcpy(p, buf, size + 1);
        ck_assert_int_eq(speculo_writer_commit(w, NULL, NULL), 0);
    }
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    int n = 0;
    while (speculo_reader_next(r, &c) == 0) {
        ck_assert_uint_eq((uintptr_t)c.data % alignof(max_align_t), 0);
        ck_assert_int_eq(memcmp(c.data, buf, c.size), 0);
        n++;
    }
    ck_assert_int_eq(n, 140);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

Suite *format_suite(void)
{
    Suite *s = suite_create("format");
    TCase *tc = th_tcase("file", 10);
    tcase_add_test(tc, header_of_new_segment);
    tcase_add_test(tc, owner_token_names_writer);
    tcase_add_test(tc, record_layout_of_committed_chunks);
    tcase_add_test(tc, uncommitted_reservation_not_published);
    tcase_add_test(tc, obsolete_marks_in_records);
    tcase_add_test(tc, superseded_set_by_gc);
    tcase_add_test(tc, superseded_set_by_remove);
    tcase_add_test(tc, chunk_data_aligned);
    suite_add_tcase(s, tc);

    tc = th_tcase("checks", 10);
    tcase_add_test(tc, check_header_validates);
    tcase_add_test(tc, check_record_validates);
    tcase_add_test(tc, record_length_rounding);
    tcase_add_test(tc, plan_layout_fits);
    tcase_add_test(tc, name_hash_deterministic);
    suite_add_tcase(s, tc);
    return s;
}
