/*
 * The debugging view of a file (every record with its state) and mappings
 * kept beyond the reader's promise (speculo_reader_hold()).
 */
#include <stdio.h>

#include "th.h"

START_TEST(walk_gives_every_record_with_its_state)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t live = th_puts(w, "live", NULL);
    uint64_t v1 = th_puts(w, "v1", "k");
    uint64_t v2 = th_puts(w, "v2", "k");
    uint64_t gone = th_puts(w, "gone", NULL);
    uint64_t by = th_put(w, "by", 2, NULL, 0, live);
    uint64_t ttl = th_put(w, "ttl", 3, NULL, 1, 0); /* expires 1 ns after its commit */
    ck_assert_int_eq(speculo_writer_obsolete(w, gone), 0);
    speculo_reader *r = th_reader("s");
    struct speculo_record rec;
    struct {
        uint64_t id;
        enum speculo_state state;
        uint64_t obsoleted_by;
    } want[] = {{live, SPECULO_STATE_REPLACED, by}, {v1, SPECULO_STATE_REPLACED, v2},
                {v2, SPECULO_STATE_LIVE, 0},        {gone, SPECULO_STATE_OBSOLETE, 0},
                {by, SPECULO_STATE_LIVE, 0},        {ttl, SPECULO_STATE_EXPIRED, 0}};
    uint64_t after = 0, off = 0;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        ck_assert_int_eq(speculo_reader_walk(r, after, &rec), 0);
        ck_assert_uint_eq(rec.chunk.id, want[i].id);
        ck_assert_int_eq(rec.state, want[i].state);
        ck_assert_uint_eq(rec.obsoleted_by, want[i].obsoleted_by);
        ck_assert_uint_gt(rec.offset, off);
        ck_assert_uint_ge(rec.length, 64);
        off = rec.offset;
        after = rec.chunk.id;
    }
    ck_assert_int_eq(speculo_reader_walk(r, after, &rec), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_record(r, v2, &rec), 0);
    ck_assert_uint_eq(rec.replaces, v1);
    ck_assert_str_eq(rec.chunk.name, "k");
    th_chunk_is(&rec.chunk, "v2", 2);
    ck_assert_int_eq(speculo_reader_get_record(r, gone, &rec), 0);
    th_chunk_is(&rec.chunk, "gone", 4);
    /* the walk did not move next()'s position */
    th_nexts(r, v2, "v2");
    /* after a collection only the live records are left, ids kept */
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(speculo_reader_get_record(r, gone, &rec), -ENOENT);
    ck_assert_int_eq(speculo_reader_walk(r, 0, &rec), 0);
    ck_assert_uint_eq(rec.chunk.id, v2);
    ck_assert_int_eq(speculo_reader_walk(r, v2, &rec), 0);
    ck_assert_uint_eq(rec.chunk.id, by);
    ck_assert_int_eq(speculo_reader_walk(r, by, &rec), -ENOENT);
    ck_assert_int_eq(speculo_reader_walk(NULL, 0, &rec), -EINVAL);
    ck_assert_int_eq(speculo_reader_get_record(r, 0, &rec), -ENOENT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* How many mappings of the test directory's files this process has. */
static int mappings_of_dir(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, t_dir()) != NULL;
    fclose(f);
    return n;
}

START_TEST(held_mapping_outlives_reader_and_collections)
{
    speculo_writer *w = th_writer("s", 0);
    th_puts(w, "first", NULL);
    int base = mappings_of_dir(); /* the writer's */
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    speculo_mapping *m1, *m2;
    ck_assert_int_eq(speculo_reader_hold(r, &m1), 0);
    ck_assert_int_eq(speculo_reader_hold(r, &m2), 0);
    const char *data = c.data;
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    th_puts(w, "second", NULL);
    ck_assert_int_eq(speculo_reader_next(r, &c), 0); /* the reader moved on */
    speculo_reader_close(r);
    ck_assert(memcmp(data, "first", 5) == 0); /* still mapped */
    ck_assert_int_eq(mappings_of_dir(), base + 1);
    speculo_mapping_release(m1);
    ck_assert(memcmp(data, "first", 5) == 0);
    speculo_mapping_release(m2); /* the last reference: unmapped */
    ck_assert_int_eq(mappings_of_dir(), base);
    speculo_mapping_release(NULL);
    ck_assert_int_eq(speculo_reader_hold(NULL, &m1), -EINVAL);
    speculo_writer_close(w);
}
END_TEST

Suite *records_suite(void)
{
    Suite *s = suite_create("records");
    TCase *tc = th_tcase("records", 10);
    tcase_add_test(tc, walk_gives_every_record_with_its_state);
    tcase_add_test(tc, held_mapping_outlives_reader_and_collections);
    suite_add_tcase(s, tc);
    return s;
}
