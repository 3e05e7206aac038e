/*
 * regress: one test per bug found by fuzzing (tests/fuzz), the crash test
 * and the stress test (tests/stress), named for what went wrong. Each
 * failed before its fix in lib/; docs/RELIABILITY.md tells the story.
 */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "th.h"

/* Largest file in the test directory, in bytes (temporaries included). */
static int64_t largest_file(void)
{
    DIR *d = opendir(t_dir());
    ck_assert_ptr_nonnull(d);
    int64_t max = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[4096];
        struct stat st;
        if (e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.'))
            continue;
        ck_assert_int_eq(t_path(p, sizeof(p), e->d_name), 0);
        if (lstat(p, &st) == 0 && st.st_size > max)
            max = st.st_size;
    }
    closedir(d);
    return max;
}

/*
 * fuzz_reader: a segment whose header claims a base capacity of 10 TiB.
 * The writer that took it over trusted the value, and its first
 * collection made a 10 TiB sparse file and populated gigabytes of it
 * (/dev/shm filled up, the fuzzer ran out of memory). The base capacity
 * can never exceed the file: a larger one is now taken as the file's size.
 */
START_TEST(takeover_bounds_hostile_base_capacity)
{
    speculo_writer *w = th_writer("s", 32 << 10);
    uint64_t id = th_puts(w, "kept", "name");
    speculo_writer_close(w);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    uint64_t cap = m.size;
    t_seg_hdr(&m)->base_capacity = UINT64_C(10) << 40;
    t_seg_unmap(&m);

    w = th_writer("s", 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_le(largest_file(), (int64_t)(2 * cap));
    uint64_t id2 = th_puts(w, "more", NULL);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_le(largest_file(), (int64_t)(2 * cap));
    speculo_writer_close(w);

    speculo_reader *r = th_reader("s");
    th_nexts(r, id, "kept");
    th_nexts(r, id2, "more");
    th_next_none(r);
    speculo_reader_close(r);
}
END_TEST

/*
 * crash test: get() returned -ENOENT for a name that had a live version
 * at every instant. The writer publishes the new version in the index,
 * then marks the old one obsolete; a get() that loaded the index slot
 * before the first store and the mark after the second found an obsolete
 * record and gave up. A takeover's repair of the index had the two stores
 * in the other order, which opened the same hole. Now get() looks again
 * when the record it found was obsoleted by a newer one.
 */
START_TEST(get_never_misses_a_name_being_updated)
{
    speculo_writer *w0 = th_writer("s", 1 << 20);
    uint64_t v = 0;
    th_put(w0, &v, sizeof(v), "hot", 0, 0);
    speculo_writer_close(w0);
    struct th_child writer;
    if (th_fork(&writer)) {
        speculo_writer *w = th_child_writer("s", NULL);
        th_child_ready(&writer);
        struct speculo_commit_options o = {.name = "hot"};
        for (uint64_t i = 1;; i++)
            T_CHILD_EQ(speculo_writer_put(w, &i, sizeof(i), &o, NULL), 0);
    }
    th_await_ready(&writer);
    speculo_reader *r = th_reader("s");
    int64_t t0 = t_mono_ns();
    uint64_t last = 0, gets = 0;
    /* until many gets raced many updates (the deadline bounds a failure) */
    while (gets < 300000 || last < 100000) {
        ck_assert_msg(t_ms_since(t0) < 60000, "%llu gets saw %llu updates in 60 s",
                      (unsigned long long)gets, (unsigned long long)last);
        speculo_chunk c;
        int rc = speculo_reader_get(r, "hot", &c);
        ck_assert_msg(rc == 0, "get #%llu = %d (%s): a live version exists at every instant",
                      (unsigned long long)gets, rc, speculo_strerror(rc));
        ck_assert_uint_eq(c.size, sizeof(uint64_t));
        uint64_t got;
        memcpy(&got, c.data, sizeof(got));
        ck_assert_uint_ge(got, last);
        last = got;
        gets++;
    }
    ck_assert_int_eq(t_kill_wait(writer.pid, SIGKILL), 128 + SIGKILL);
    speculo_reader_close(r);
    t_sync_close(&writer.ready);
}
END_TEST

/*
 * fuzz_reader: a segment whose last record has the id 2^64 - 1. The writer
 * taking it over continued at id 0 (the next id wrapped): its commits were
 * records a reader must refuse, and the collected file was corrupt. An id
 * of 2^63 or more is now corruption to the writer (-EBADMSG), as the
 * header's last id already was.
 */
START_TEST(takeover_refuses_ids_that_would_wrap)
{
    speculo_writer *w = th_writer("s", 32 << 10);
    uint64_t a = th_puts(w, "one", NULL);
    th_puts(w, "two", NULL);
    speculo_writer_close(w);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    uint64_t offs[2];
    ck_assert_int_eq(t_seg_records(&m, offs, 2), 2);
    const uint64_t bad[] = {UINT64_MAX, UINT64_MAX / 2};
    for (int i = 0; i < 2; i++) {
        t_seg_rec(&m, offs[1])->id = bad[i];
        w = (speculo_writer *)&w;
        ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EBADMSG);
        ck_assert_ptr_eq(w, (speculo_writer *)&w);
        /* a reader still gets what is sound, and the huge id */
        speculo_reader *r = th_reader("s");
        th_nexts(r, a, "one");
        th_nexts(r, bad[i], "two");
        th_next_none(r);
        speculo_reader_close(r);
    }
    /* just below the bound: taken over, and ids go on increasing */
    t_seg_rec(&m, offs[1])->id = UINT64_MAX / 2 - 1;
    t_seg_unmap(&m);
    w = th_writer("s", 0);
    uint64_t c = th_puts(w, "three", NULL);
    ck_assert_uint_eq(c, UINT64_MAX / 2);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    speculo_writer_close(w);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "one");
    th_nexts(r, UINT64_MAX / 2 - 1, "two");
    th_nexts(r, c, "three");
    th_next_none(r);
    speculo_reader_close(r);
}
END_TEST

Suite *regress_suite(void)
{
    Suite *s = suite_create("regress");
    TCase *tc = th_tcase("found", 30);
    tcase_add_test(tc, takeover_bounds_hostile_base_capacity);
    tcase_add_test(tc, get_never_misses_a_name_being_updated);
    tcase_add_test(tc, takeover_refuses_ids_that_would_wrap);
    suite_add_tcase(s, tc);
    return s;
}
