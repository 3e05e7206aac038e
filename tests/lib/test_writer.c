/*
 * writer: put, zero-copy alloc and commit, commit options and their
 * errors, obsolete, reopening, options.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "th.h"

START_TEST(put_then_read_exact_bytes)
{
    static const size_t sizes[] = {1, 7, 16, 63, 64, 65, 1000, 4096, 100000, 1 << 20};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    char *buf = malloc(1 << 20);
    ck_assert_ptr_nonnull(buf);
    uint64_t ids[N];
    int64_t before = t_real_ns();
    speculo_writer *w = th_writer("s", 0);
    for (int i = 0; i < N; i++) {
        t_fill(buf, sizes[i], (uint64_t)i);
        ids[i] = th_put(w, buf, sizes[i], NULL, 0, 0);
        if (i)
            ck_assert_uint_gt(ids[i], ids[i - 1]);
    }
    int64_t after = t_real_ns();
    speculo_reader *r = th_reader("s");
    for (int i = 0; i < N; i++) {
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_next(r, &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
        ck_assert_uint_eq(c.size, sizes[i]);
        ck_assert_uint_eq(t_check_fill(c.data, c.size, (uint64_t)i), 0);
        ck_assert_ptr_null(c.name);
        ck_assert_int_ge(c.committed_ns, before);
        ck_assert_int_le(c.committed_ns, after);
        ck_assert_int_eq(c.expires_ns, 0);
        ck_assert_uint_eq(speculo_chunk_replaces(&c), 0);
    }
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
    free(buf);
}
END_TEST

START_TEST(zero_copy_alloc_commit)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    void *p = NULL;
    ck_assert_int_eq(speculo_writer_alloc(w, 4096, &p), 0);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % alignof(max_align_t), 0);
    t_fill(p, 4096, 99);
    /* Not visible before the commit. */
    th_next_none(r);
    uint64_t id = 0;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id), 0);
    ck_assert_uint_ge(id, 1);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, id);
    ck_assert_uint_eq(c.size, 4096);
    ck_assert_uint_eq(t_check_fill(c.data, 4096, 99), 0);
    th_next_none(r);
    /* A named zero-copy chunk, with a NULL id pointer. */
    struct speculo_commit_options o = {.name = "zc"};
    ck_assert_int_eq(speculo_writer_alloc(w, 3, &p), 0);
    memcpy(p, "xyz", 3);
    ck_assert_int_eq(speculo_writer_commit(w, &o, NULL), 0);
    ck_assert_int_eq(speculo_reader_get(r, "zc", &c), 0);
    th_chunk_is(&c, "xyz", 3);
    ck_assert_uint_gt(c.id, id);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(alloc_twice_discards_first)
{
    speculo_writer *w = th_writer("s", 0);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 100, &p), 0);
    memset(p, 'A', 100);
    ck_assert_int_eq(speculo_writer_alloc(w, 50, &p), 0);
    memset(p, 'B', 50);
    uint64_t id;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id), 0);
    /* The first reservation is gone: a second commit has nothing. */
    uint64_t id2 = 777;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id2), -EINVAL);
    ck_assert_uint_eq(id2, 777);
    char want[50];
    memset(want, 'B', 50);
    speculo_reader *r = th_reader("s");
    th_next(r, id, want, 50);
    th_next_none(r);

    /* A smaller first and a much bigger second. */
    ck_assert_int_eq(speculo_writer_alloc(w, 10, &p), 0);
    memset(p, 'C', 10);
    ck_assert_int_eq(speculo_writer_alloc(w, 200000, &p), 0);
    t_fill(p, 200000, 5);
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id2), 0);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, id2);
    ck_assert_uint_eq(c.size, 200000);
    ck_assert_uint_eq(t_check_fill(c.data, c.size, 5), 0);
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(commit_without_reservation_einval)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t id = 4242;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id), -EINVAL);
    ck_assert_uint_eq(id, 4242);
    struct speculo_commit_options o = {.name = "n"};
    ck_assert_int_eq(speculo_writer_commit(w, &o, &id), -EINVAL);
    th_puts(w, "x", NULL);
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id), -EINVAL);
    ck_assert_uint_eq(id, 4242);
    speculo_reader *r = th_reader("s");
    th_nexts(r, 0, "x");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(negative_ttl_einval_keeps_reservation)
{
    speculo_writer *w = th_writer("s", 0);
    struct speculo_commit_options o = {.ttl_ns = -1};
    uint64_t id = 31;
    ck_assert_int_eq(speculo_writer_put(w, "y", 1, &o, &id), -EINVAL);
    ck_assert_uint_eq(id, 31);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 8, &p), 0);
    memcpy(p, "reserved", 8);
    ck_assert_int_eq(speculo_writer_commit(w, &o, &id), -EINVAL);
    o.ttl_ns = INT64_MIN;
    ck_assert_int_eq(speculo_writer_commit(w, &o, &id), -EINVAL);
    ck_assert_uint_eq(id, 31);
    speculo_reader *r = th_reader("s");
    th_next_none(r);
    /* The reservation survived the errors. */
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id), 0);
    th_next(r, id, "reserved", 8);
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(bad_name_keeps_reservation)
{
    speculo_writer *w = th_writer("s", 0);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 4, &p), 0);
    memcpy(p, "data", 4);
    struct speculo_commit_options o = {.name = "1bad"};
    ck_assert_int_eq(speculo_writer_commit(w, &o, NULL), -EINVAL);
    char n256[257];
    memset(n256, 'a', 256);
    n256[256] = '\0';
    o.name = n256;
    ck_assert_int_eq(speculo_writer_commit(w, &o, NULL), -ENAMETOOLONG);
    o.name = "good";
    uint64_t id;
    ck_assert_int_eq(speculo_writer_commit(w, &o, &id), 0);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "good", &c), 0);
    ck_assert_uint_eq(c.id, id);
    th_chunk_is(&c, "data", 4);
    th_next(r, id, "data", 4);
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(replaces_obsoletes_by_id)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t x = th_puts(w, "old", NULL);
    uint64_t y = th_put(w, "new", 3, NULL, 0, x);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, y);
    th_chunk_is(&c, "new", 3);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), x);
    th_next_none(r);
    ck_assert_int_eq(speculo_reader_get_id(r, x, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_id(r, y, &c), 0);
    /* x is no longer live: replacing it again is -ENOENT. */
    struct speculo_commit_options o = {.replaces = x};
    uint64_t id = 5;
    ck_assert_int_eq(speculo_writer_put(w, "again", 5, &o, &id), -ENOENT);
    ck_assert_uint_eq(id, 5);
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(replaces_unknown_id_enoent_keeps_reservation)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 2, &p), 0);
    memcpy(p, "b!", 2);
    struct speculo_commit_options o = {.replaces = a + 1000};
    uint64_t id = 9;
    ck_assert_int_eq(speculo_writer_commit(w, &o, &id), -ENOENT);
    o.replaces = UINT64_MAX;
    ck_assert_int_eq(speculo_writer_commit(w, &o, &id), -ENOENT);
    ck_assert_uint_eq(id, 9);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    th_next_none(r);
    o.replaces = a;
    ck_assert_int_eq(speculo_writer_commit(w, &o, &id), 0);
    ck_assert_uint_gt(id, a);
    th_next(r, id, "b!", 2);
    ck_assert_int_eq(speculo_reader_seek(r, 0), 0);
    th_next(r, id, "b!", 2);
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(replaces_expired_chunk_enoent)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_put(w, "short", 5, NULL, 1000000 /* 1 ms */, 0);
    t_sleep_until_real(t_expired_by(1000000));
    struct speculo_commit_options o = {.replaces = a};
    ck_assert_int_eq(speculo_writer_put(w, "x", 1, &o, NULL), -ENOENT);
    ck_assert_int_eq(speculo_writer_obsolete(w, a), -ENOENT);
    speculo_writer_close(w);
}
END_TEST

START_TEST(replaces_named_chunk_hides_name)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t v1 = th_puts(w, "named", "doc");
    uint64_t u = th_put(w, "unnamed", 7, NULL, 0, v1);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "doc", &c), -ENOENT);
    th_nexts(r, u, "unnamed");
    th_next_none(r);
    /* A new version of the name is found again. */
    uint64_t v2 = th_puts(w, "named-2", "doc");
    ck_assert_int_eq(speculo_reader_get(r, "doc", &c), 0);
    ck_assert_uint_eq(c.id, v2);
    th_chunk_is(&c, "named-2", 7);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(obsolete_hides_chunk)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    uint64_t b = th_puts(w, "b", NULL);
    uint64_t c_id = th_puts(w, "c", "cee");
    uint64_t d = th_puts(w, "d", NULL);
    ck_assert_int_eq(speculo_writer_obsolete(w, b), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, c_id), 0);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    th_nexts(r, d, "d");
    th_next_none(r);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get_id(r, b, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_id(r, c_id, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get(r, "cee", &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_id(r, a, &c), 0);
    /* Twice is an error: b is not live any more. */
    ck_assert_int_eq(speculo_writer_obsolete(w, b), -ENOENT);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.live_chunks, 2);
    ck_assert_uint_eq(info.obsolete_chunks, 2);
    ck_assert_uint_eq(info.named_chunks, 0);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(obsolete_unknown_id_enoent)
{
    speculo_writer *w = th_writer("s", 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, 1), -ENOENT);
    uint64_t a = th_puts(w, "a", NULL);
    ck_assert_int_eq(speculo_writer_obsolete(w, a + 1), -ENOENT);
    ck_assert_int_eq(speculo_writer_obsolete(w, UINT64_MAX), -ENOENT);
    int rc = speculo_writer_obsolete(w, 0);
    ck_assert_msg(rc == -ENOENT || rc == -EINVAL, "obsolete(0) = %d", rc);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(named_replacement_latest_wins)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t v1 = th_puts(w, "v1", "doc");
    uint64_t o = th_puts(w, "other", "other");
    uint64_t v2 = th_puts(w, "v2", "doc");
    uint64_t v3 = th_puts(w, "v3", "doc");
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "doc", &c), 0);
    ck_assert_uint_eq(c.id, v3);
    th_chunk_is(&c, "v3", 2);
    ck_assert_str_eq(c.name, "doc");
    ck_assert_uint_eq(speculo_chunk_replaces(&c), v2);
    ck_assert_int_eq(speculo_reader_get(r, "other", &c), 0);
    ck_assert_uint_eq(c.id, o);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), 0);
    /* next skips the obsoleted versions. */
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, o);
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, v3);
    ck_assert_str_eq(c.name, "doc");
    th_next_none(r);
    ck_assert_int_eq(speculo_reader_get_id(r, v1, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_id(r, v2, &c), -ENOENT);
    /* Names are case-sensitive and exact. */
    ck_assert_int_eq(speculo_reader_get(r, "Doc", &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get(r, "do", &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get(r, "docs", &c), -ENOENT);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.live_chunks, 2);
    ck_assert_uint_eq(info.named_chunks, 2);
    ck_assert_uint_eq(info.obsolete_chunks, 2);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(ttl_sets_expiry_time)
{
    speculo_writer *w = th_writer("s", 0);
    int64_t before = t_real_ns();
    uint64_t id = th_put(w, "t", 1, "timed", 5000000000LL, 0);
    int64_t after = t_real_ns();
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get_id(r, id, &c), 0);
    ck_assert_int_ge(c.committed_ns, before);
    ck_assert_int_le(c.committed_ns, after);
    ck_assert_int_eq(c.expires_ns, c.committed_ns + 5000000000LL);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(ids_continue_after_reopen)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    uint64_t b = th_puts(w, "b", "bee");
    speculo_writer_close(w);
    w = th_writer("s", 0);
    uint64_t c_id = th_puts(w, "c", NULL);
    ck_assert_uint_gt(c_id, b);
    uint64_t b2 = th_puts(w, "b2", "bee");
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    th_nexts(r, c_id, "c");
    th_nexts(r, b2, "b2");
    th_next_none(r);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "bee", &c), 0);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), b);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(second_writer_same_process_ebusy)
{
    speculo_writer *w1 = th_writer("s", 0);
    speculo_writer *w2 = (speculo_writer *)&w2;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w2), -EBUSY);
    ck_assert_ptr_eq(w2, (speculo_writer *)&w2);
    /* The first writer is undisturbed. */
    uint64_t id = th_puts(w1, "one", NULL);
    speculo_writer_close(w1);
    w2 = th_writer("s", 0);
    uint64_t id2 = th_puts(w2, "two", NULL);
    ck_assert_uint_gt(id2, id);
    speculo_writer_close(w2);
}
END_TEST

START_TEST(close_discards_reservation)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 64, &p), 0);
    memset(p, 'Z', 64);
    speculo_writer_close(w);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    th_next_none(r);
    w = th_writer("s", 0);
    uint64_t b = th_puts(w, "b", NULL);
    th_nexts(r, b, "b");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(empty_chunk)
{
    speculo_writer *w = th_writer("s", 0);
    void *p = NULL;
    ck_assert_int_eq(speculo_writer_alloc(w, 0, &p), 0);
    uint64_t a;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &a), 0);
    uint64_t b = th_put(w, "", 0, "empty", 0, 0);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, a);
    ck_assert_uint_eq(c.size, 0);
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, b);
    ck_assert_uint_eq(c.size, 0);
    ck_assert_str_eq(c.name, "empty");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(huge_alloc_refused)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    void *p = (void *)&p;
    int rc = speculo_writer_alloc(w, SIZE_MAX, &p);
    ck_assert_msg(rc == -EFBIG || rc == -ENOMEM, "alloc(SIZE_MAX) = %d", rc);
    ck_assert_ptr_eq(p, (void *)&p);
    rc = speculo_writer_alloc(w, SIZE_MAX - 4096, &p);
    ck_assert_msg(rc == -EFBIG || rc == -ENOMEM, "alloc(SIZE_MAX - 4096) = %d", rc);
    rc = speculo_writer_alloc(w, (size_t)1 << 62, &p);
    ck_assert_msg(rc == -EFBIG || rc == -ENOMEM, "alloc(2^62) = %d", rc);
    ck_assert_int_eq(speculo_writer_commit(w, NULL, NULL), -EINVAL);
    /* The writer still works. */
    uint64_t id = th_puts(w, "fine", NULL);
    speculo_reader *r = th_reader("s");
    th_nexts(r, id, "fine");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(mode_option_applied)
{
    char path[256];
    struct stat st;
    mode_t old = umask(022);
    speculo_writer *w = th_writer_at(__FILE__, __LINE__, "shared", 0, 0640);
    speculo_writer_close(w);
    ck_assert_int_eq(t_path(path, sizeof(path), "shared"), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
    /* The mode of an existing segment is not changed by a reopen. */
    w = th_writer_at(__FILE__, __LINE__, "shared", 0, 0600);
    speculo_writer_close(w);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
    /* Kept across a GC switch. */
    w = th_writer("shared", 0);
    th_puts(w, "x", NULL);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    speculo_writer_close(w);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
    /* Default 0600. */
    w = th_writer("private", 0);
    speculo_writer_close(w);
    ck_assert_int_eq(t_path(path, sizeof(path), "private"), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    umask(old);
}
END_TEST

START_TEST(capacity_option_only_at_creation)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "x", NULL);
    speculo_writer_close(w);
    ck_assert_int_eq(t_seg_file_size("s"), 64 << 10);
    w = th_writer("s", 1 << 20);
    speculo_writer_close(w);
    ck_assert_int_eq(t_seg_file_size("s"), 64 << 10);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.capacity, 64 << 10);
    ck_assert_uint_gt(info.data_capacity, 0);
    ck_assert_uint_lt(info.data_capacity, 64 << 10);
    speculo_reader_close(r);
}
END_TEST

START_TEST(mode_option_ignores_non_permission_bits)
{
    /* "Only permission bits are used": a mode as stat(2) gives it works. */
    struct speculo_writer_options o;
    memset(&o, 0, sizeof(o));
    o.mode = S_IFREG | 0640;
    speculo_writer *w = NULL;
    ck_assert_int_eq(speculo_writer_open("s", &o, &w), 0);
    speculo_writer_close(w);
    char path[256];
    struct stat st;
    ck_assert_int_eq(t_path(path, sizeof(path), "s"), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
}
END_TEST

START_TEST(full_shm_gives_enomem_not_sigbus)
{
    int rc = th_small_tmpfs(1024);
    if (rc < 0) {
        fprintf(stderr, "full_shm_gives_enomem_not_sigbus: no tmpfs (%d), skipped\n", rc);
        return;
    }
    speculo_writer *w = th_writer("s", 512 << 10);
    uint64_t first = th_puts(w, "first", NULL);
    /* Another file takes the rest of the space. */
    char path[256];
    snprintf(path, sizeof(path), "%s/filler", getenv("SPECULO_DIR"));
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    char block[4096];
    memset(block, 1, sizeof(block));
    while (write(fd, block, sizeof(block)) == (ssize_t)sizeof(block))
        ;
    close(fd);
    /* Chunks until the space is gone: an error, never a SIGBUS. */
    enum { SZ = 64 << 10 };
    char *buf = malloc(SZ);
    ck_assert_ptr_nonnull(buf);
    uint64_t ids[64];
    int n = 0;
    for (; n < 64; n++) {
        t_fill(buf, SZ, (uint64_t)n);
        struct speculo_commit_options o = {0};
        rc = speculo_writer_put(w, buf, SZ, &o, &ids[n]);
        if (rc < 0)
            break;
    }
    ck_assert_msg(rc == -ENOMEM || rc == -ENOSPC, "put on a full tmpfs = %d after %d chunks", rc,
                  n);
    ck_assert_int_lt(n, 64);
    /* Space again: the writer goes on, nothing was lost. */
    ck_assert_int_eq(unlink(path), 0);
    uint64_t last = th_put(w, "last", 4, NULL, 0, 0);
    speculo_reader *r = th_reader("s");
    th_nexts(r, first, "first");
    for (int i = 0; i < n; i++) {
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_next(r, &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
        ck_assert_uint_eq(c.size, SZ);
        ck_assert_uint_eq(t_check_fill(c.data, SZ, (uint64_t)i), 0);
    }
    th_next(r, last, "last", 4);
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
    free(buf);
}
END_TEST

Suite *writer_suite(void)
{
    Suite *s = suite_create("writer");
    TCase *tc = th_tcase("commit", 10);
    tcase_add_test(tc, put_then_read_exact_bytes);
    tcase_add_test(tc, zero_copy_alloc_commit);
    tcase_add_test(tc, alloc_twice_discards_first);
    tcase_add_test(tc, commit_without_reservation_einval);
    tcase_add_test(tc, negative_ttl_einval_keeps_reservation);
    tcase_add_test(tc, bad_name_keeps_reservation);
    tcase_add_test(tc, empty_chunk);
    tcase_add_test(tc, huge_alloc_refused);
    tcase_add_test(tc, ttl_sets_expiry_time);
    suite_add_tcase(s, tc);

    tc = th_tcase("obsolete", 10);
    tcase_add_test(tc, replaces_obsoletes_by_id);
    tcase_add_test(tc, replaces_unknown_id_enoent_keeps_reservation);
    tcase_add_test(tc, replaces_expired_chunk_enoent);
    tcase_add_test(tc, replaces_named_chunk_hides_name);
    tcase_add_test(tc, obsolete_hides_chunk);
    tcase_add_test(tc, obsolete_unknown_id_enoent);
    tcase_add_test(tc, named_replacement_latest_wins);
    suite_add_tcase(s, tc);

    tc = th_tcase("role", 10);
    tcase_add_test(tc, ids_continue_after_reopen);
    tcase_add_test(tc, second_writer_same_process_ebusy);
    tcase_add_test(tc, close_discards_reservation);
    tcase_add_test(tc, mode_option_applied);
    tcase_add_test(tc, capacity_option_only_at_creation);
    tcase_add_test(tc, mode_option_ignores_non_permission_bits);
    suite_add_tcase(s, tc);

    if (th_root()) {
        tc = th_tcase("resources", 20);
        tcase_add_test(tc, full_shm_gives_enomem_not_sigbus);
        suite_add_tcase(s, tc);
    }
    return s;
}
