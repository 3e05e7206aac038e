/*
 * reader: next, get, get_id, seek, expiry, info; a reader leaves the file
 * alone.
 */
#include <stdlib.h>
#include <sys/stat.h>

#include "th.h"

START_TEST(next_in_commit_order_then_eagain)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    th_next_none(r);
    uint64_t a = th_puts(w, "alpha", NULL);
    uint64_t b = th_puts(w, "beta", "b");
    uint64_t c = th_puts(w, "gamma", NULL);
    th_nexts(r, a, "alpha");
    th_nexts(r, b, "beta");
    th_nexts(r, c, "gamma");
    th_next_none(r);
    th_next_none(r);
    uint64_t d = th_puts(w, "delta", NULL);
    th_nexts(r, d, "delta");
    th_next_none(r);
    /* chunk->name of a named chunk; NULL for unnamed. */
    ck_assert_int_eq(speculo_reader_seek(r, a), 0);
    speculo_chunk ch;
    ck_assert_int_eq(speculo_reader_next(r, &ch), 0);
    ck_assert_ptr_nonnull(ch.name);
    ck_assert_str_eq(ch.name, "b");
    ck_assert_int_eq(speculo_reader_next(r, &ch), 0);
    ck_assert_ptr_null(ch.name);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(readers_have_own_positions)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    uint64_t b = th_puts(w, "b", NULL);
    speculo_reader *r1 = th_reader("s");
    speculo_reader *r2 = th_reader("s");
    th_nexts(r1, a, "a");
    th_nexts(r1, b, "b");
    th_next_none(r1);
    th_nexts(r2, a, "a");
    th_nexts(r2, b, "b");
    th_next_none(r2);
    speculo_reader_close(r1);
    speculo_reader_close(r2);
    speculo_writer_close(w);
}
END_TEST

START_TEST(get_does_not_move_position)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", "first");
    uint64_t b = th_puts(w, "b", "second");
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "second", &c), 0);
    ck_assert_uint_eq(c.id, b);
    ck_assert_int_eq(speculo_reader_get_id(r, b, &c), 0);
    th_nexts(r, a, "a");
    ck_assert_int_eq(speculo_reader_get_id(r, a, &c), 0);
    th_nexts(r, b, "b");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(get_unknown_name_enoent)
{
    speculo_writer *w = th_writer("s", 0);
    th_puts(w, "a", "present");
    speculo_reader *r = th_reader("s");
    speculo_chunk c, untouched;
    memset(&c, 0xab, sizeof(c));
    memcpy(&untouched, &c, sizeof(c));
    ck_assert_int_eq(speculo_reader_get(r, "absent", &c), -ENOENT);
    ck_assert_int_eq(memcmp(&c, &untouched, sizeof(c)), 0);
    ck_assert_int_eq(speculo_reader_get(r, NULL, &c), -EINVAL);
    ck_assert_int_eq(speculo_reader_get(r, "", &c), -EINVAL);
    ck_assert_int_eq(speculo_reader_get(r, "9x", &c), -EINVAL);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(get_id_finds_each_chunk)
{
    enum { N = 500 };
    uint64_t ids[N];
    char buf[600];
    speculo_writer *w = th_writer("s", 0);
    for (int i = 0; i < N; i++) {
        t_fill(buf, (size_t)i, (uint64_t)i);
        ids[i] = th_put(w, buf, (size_t)i, NULL, 0, 0);
    }
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    for (int i = N - 1; i >= 0; i -= 7) {
        ck_assert_int_eq(speculo_reader_get_id(r, ids[i], &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
        ck_assert_uint_eq(c.size, (size_t)i);
        ck_assert_uint_eq(t_check_fill(c.data, c.size, (uint64_t)i), 0);
    }
    ck_assert_int_eq(speculo_reader_get_id(r, 0, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_id(r, ids[N - 1] + 1, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_id(r, UINT64_MAX, &c), -ENOENT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(get_finds_each_of_many_names)
{
    enum { N = 3000 };
    char name[32], data[32];
    speculo_writer *w = th_writer("s", 0);
    uint64_t *ids = calloc(N, sizeof(*ids));
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "name_%d", i);
        snprintf(data, sizeof(data), "value %d", i);
        ids[i] = th_puts(w, data, name);
    }
    /* Update every third one. */
    for (int i = 0; i < N; i += 3) {
        snprintf(name, sizeof(name), "name_%d", i);
        snprintf(data, sizeof(data), "updated %d", i);
        ids[i] = th_puts(w, data, name);
    }
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "name_%d", i);
        snprintf(data, sizeof(data), i % 3 ? "value %d" : "updated %d", i);
        ck_assert_msg(speculo_reader_get(r, name, &c) == 0, "get(%s)", name);
        ck_assert_uint_eq(c.id, ids[i]);
        ck_assert_str_eq(c.name, name);
        th_chunk_is(&c, data, strlen(data));
    }
    ck_assert_int_eq(speculo_reader_get(r, "name_3000", &c), -ENOENT);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.live_chunks, N);
    ck_assert_uint_eq(info.named_chunks, N);
    speculo_reader_close(r);
    speculo_writer_close(w);
    free(ids);
}
END_TEST

START_TEST(get_after_many_updates)
{
    speculo_writer *w = th_writer("s", 0);
    char data[32];
    uint64_t last = 0, prev = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(data, sizeof(data), "v%d", i);
        prev = last;
        last = th_puts(w, data, "counter");
    }
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "counter", &c), 0);
    ck_assert_uint_eq(c.id, last);
    th_chunk_is(&c, "v1999", 5);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), prev);
    th_nexts(r, last, "v1999");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* The same name asked for again and again (get() remembers where it found
 * it) follows updates, other names, collections and a segment re-created. */
START_TEST(get_same_name_again_follows_updates_and_switches)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    char data[32];
    for (int i = 0; i < 300; i++) {
        snprintf(data, sizeof(data), "v%d", i);
        uint64_t id = th_puts(w, data, "hot");
        if (i % 7 == 0)
            th_puts(w, data, "other");
        if (i % 50 == 49)
            ck_assert_int_eq(speculo_writer_gc(w), 0);
        ck_assert_int_eq(speculo_reader_get(r, "hot", &c), 0);
        ck_assert_uint_eq(c.id, id);
        th_chunk_is(&c, data, strlen(data));
        ck_assert_str_eq(c.name, "hot");
        if (i % 10 == 0) {
            ck_assert_int_eq(speculo_reader_get(r, "other", &c), 0);
            ck_assert_int_eq(speculo_reader_get(r, "absent", &c), -ENOENT);
        }
    }
    /* removed and created again: another file, where "hot" has no slot */
    speculo_writer_close(w);
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    w = th_writer("s", 0);
    th_puts(w, "x", "first");
    ck_assert_int_eq(speculo_reader_get(r, "hot", &c), -ENOENT);
    uint64_t id = th_puts(w, "new", "hot");
    ck_assert_int_eq(speculo_reader_get(r, "hot", &c), 0);
    ck_assert_uint_eq(c.id, id);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* The name a get() hands out is the reader's own copy: passed back to get()
 * (here after a switch, which makes the reader look the name up afresh), it
 * still finds the chunk. */
START_TEST(get_with_the_name_a_get_returned)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    th_puts(w, "v1", "hot");
    speculo_chunk c, c2;
    ck_assert_int_eq(speculo_reader_get(r, "hot", &c), 0);
    ck_assert_int_eq(speculo_reader_get(r, c.name, &c2), 0);
    ck_assert_str_eq(c2.name, "hot");
    uint64_t id = th_puts(w, "v2", "hot");
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(speculo_reader_get(r, c2.name, &c), 0);
    ck_assert_uint_eq(c.id, id);
    ck_assert_str_eq(c.name, "hot");
    th_chunk_is(&c, "v2", 2);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(seek_positions)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t id[5];
    const char *v[5] = {"0", "1", "2", "3", "4"};
    for (int i = 0; i < 5; i++)
        id[i] = th_puts(w, v[i], NULL);
    ck_assert_int_eq(speculo_writer_obsolete(w, id[3]), 0);
    speculo_reader *r = th_reader("s");
    th_nexts(r, id[0], "0");
    th_nexts(r, id[1], "1");
    ck_assert_int_eq(speculo_reader_seek(r, 0), 0);
    th_nexts(r, id[0], "0");
    ck_assert_int_eq(speculo_reader_seek(r, id[1]), 0);
    th_nexts(r, id[2], "2");
    /* After an obsolete id and onto the next live one. */
    ck_assert_int_eq(speculo_reader_seek(r, id[2]), 0);
    th_nexts(r, id[4], "4");
    ck_assert_int_eq(speculo_reader_seek(r, id[3]), 0);
    th_nexts(r, id[4], "4");
    ck_assert_int_eq(speculo_reader_seek(r, id[4]), 0);
    th_next_none(r);
    /* Backwards works too. */
    ck_assert_int_eq(speculo_reader_seek(r, id[0]), 0);
    th_nexts(r, id[1], "1");
    /* UINT64_MAX: only what is committed from now on. */
    ck_assert_int_eq(speculo_reader_seek(r, UINT64_MAX), 0);
    th_next_none(r);
    uint64_t n = th_puts(w, "new", NULL);
    th_nexts(r, n, "new");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(seek_max_on_empty_segment)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    ck_assert_int_eq(speculo_reader_seek(r, UINT64_MAX), 0);
    th_next_none(r);
    uint64_t a = th_puts(w, "a", NULL);
    th_nexts(r, a, "a");
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* What the reader sees of a segment "s" with "keep" (named "keeper"),
 * then t1 (named "temp") and t2 with a TTL, while they live; false when
 * the clock passed their expiry (not before `lives_until`) before the
 * checks ended, which then prove nothing. */
static bool seen_while_live(speculo_reader *r, uint64_t keep, uint64_t t1, uint64_t t2,
                            int64_t ttl, int64_t lives_until)
{
    speculo_chunk c, n1, n2;
    struct speculo_segment_info info;
    int get_rc = speculo_reader_get(r, "temp", &c);
    uint64_t get_id = c.id;
    int64_t get_ttl = c.expires_ns - c.committed_ns;
    int get_id_rc = speculo_reader_get_id(r, t2, &c);
    int next1 = speculo_reader_next(r, &n1);
    uint64_t id1 = n1.id;
    int next2 = speculo_reader_next(r, &n2);
    bool short1 = next2 == 0 && n2.id == t1 && n2.size == 7 && !memcmp(n2.data, "short-1", 7);
    int info_rc = speculo_reader_info(r, &info);
    if (t_real_ns() >= lives_until)
        return false;
    ck_assert_int_eq(get_rc, 0);
    ck_assert_uint_eq(get_id, t1);
    ck_assert_int_eq(get_ttl, ttl);
    ck_assert_int_eq(get_id_rc, 0);
    ck_assert_int_eq(next1, 0);
    ck_assert_uint_eq(id1, keep);
    ck_assert_int_eq(next2, 0);
    ck_assert_msg(short1, "next: id %llu, not t1 \"short-1\"", (unsigned long long)n2.id);
    ck_assert_int_eq(info_rc, 0);
    ck_assert_uint_eq(info.live_chunks, 3);
    ck_assert_uint_eq(info.expired_chunks, 0);
    return true;
}

START_TEST(expired_chunks_vanish)
{
    speculo_writer *w = NULL;
    speculo_reader *r = NULL;
    uint64_t keep = 0, t1 = 0, t2 = 0;
    int64_t gone = 0;
    /* Visible before the expiry: checked with a TTL this machine can check
     * within (t_ttl_ns()), in a segment made anew for each attempt. */
    for (int attempt = 0;; attempt++) {
        int64_t ttl = t_ttl_ns(300000000LL, attempt), before = t_real_ns();
        w = th_writer("s", 0);
        keep = th_puts(w, "keep", "keeper");
        t1 = th_put(w, "short-1", 7, "temp", ttl, 0);
        t2 = th_put(w, "short-2", 7, NULL, ttl, 0);
        gone = t_expired_by(ttl);
        r = th_reader("s");
        if (seen_while_live(r, keep, t1, t2, ttl, before + ttl))
            break;
        ck_assert_msg(attempt + 1 < T_TTL_ATTEMPTS, "never checked within a TTL of %lld ms",
                      (long long)(ttl / 1000000));
        speculo_reader_close(r);
        speculo_writer_close(w);
        ck_assert_int_eq(speculo_segment_remove("s", SPECULO_REMOVE_FORCE), 0);
    }

    t_sleep_until_real(gone);
    /* t2 was not returned yet: next skips it now. */
    th_next_none(r);
    speculo_chunk c;
    struct speculo_segment_info info;
    ck_assert_int_eq(speculo_reader_get(r, "temp", &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_id(r, t1, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_id(r, t2, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get(r, "keeper", &c), 0);
    ck_assert_int_eq(speculo_reader_seek(r, 0), 0);
    th_nexts(r, keep, "keep");
    th_next_none(r);
    speculo_reader *r2 = th_reader("s");
    th_nexts(r2, keep, "keep");
    th_next_none(r2);
    th_info(r2, &info);
    ck_assert_uint_eq(info.live_chunks, 1);
    ck_assert_uint_eq(info.expired_chunks, 2);
    ck_assert_uint_eq(info.named_chunks, 1);
    /* An expired name takes a new version. */
    uint64_t t3 = th_puts(w, "again", "temp");
    ck_assert_int_eq(speculo_reader_get(r2, "temp", &c), 0);
    ck_assert_uint_eq(c.id, t3);
    speculo_reader_close(r2);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(info_fields)
{
    int64_t before = t_real_ns();
    speculo_writer *w = th_writer("s", 256 << 10);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.format_version, SPECULO_FORMAT_VERSION);
    ck_assert_uint_eq(info.generation, 1);
    ck_assert_uint_eq(info.capacity, 256 << 10);
    ck_assert_uint_eq(info.bytes_used, 0);
    ck_assert_uint_eq(info.live_chunks, 0);
    ck_assert_uint_eq(info.first_id, 0);
    ck_assert_uint_eq(info.last_id, 0);
    ck_assert_int_eq(info.last_commit_ns, 0);
    ck_assert_int_ge(info.created_ns, before - 1000000);
    ck_assert_int_le(info.created_ns, t_real_ns());
    ck_assert_int_eq(info.writer_pid, getpid());
    ck_assert_int_eq(info.writer_alive, 1);

    uint64_t a = th_put(w, "12345", 5, NULL, 0, 0);
    uint64_t b = th_put(w, "abc", 3, "nm", 0, 0);
    uint64_t c = th_put(w, "abcd", 4, "nm", 0, 0);
    th_info(r, &info);
    ck_assert_uint_eq(info.first_id, a);
    ck_assert_uint_eq(info.last_id, c);
    ck_assert_uint_eq(info.bytes_used, rec_length(5, 0) + rec_length(3, 2) + rec_length(4, 2));
    ck_assert_uint_eq(info.dead_bytes, rec_length(3, 2));
    ck_assert_uint_eq(info.live_chunks, 2);
    ck_assert_uint_eq(info.obsolete_chunks, 1);
    ck_assert_uint_eq(info.named_chunks, 1);
    ck_assert_uint_eq(info.expired_chunks, 0);
    ck_assert_uint_le(info.bytes_used, info.data_capacity);
    ck_assert_uint_lt(info.data_capacity, info.capacity);
    speculo_chunk ch;
    ck_assert_int_eq(speculo_reader_get_id(r, c, &ch), 0);
    ck_assert_int_eq(info.last_commit_ns, ch.committed_ns);
    (void)b;

    speculo_writer_close(w);
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, 0);
    ck_assert_int_eq(info.writer_alive, 0);
    speculo_reader_close(r);
}
END_TEST

/* The file's bytes, but for the waiting line of the header (readers may
 * write there, the format says so). */
static unsigned char *snapshot(const char *seg, size_t *size)
{
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map(seg, &m), 0);
    unsigned char *p = malloc(m.size);
    ck_assert_ptr_nonnull(p);
    memcpy(p, m.p, m.size);
    size_t line = offsetof(struct seg_header, wake_seq);
    memset(p + line, 0, 64);
    *size = m.size;
    t_seg_unmap(&m);
    return p;
}

START_TEST(reader_leaves_file_unchanged)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", "x");
    th_puts(w, "b", "x");
    th_put(w, "c", 1, NULL, 1000000, 0);
    int64_t gone = t_expired_by(1000000);
    speculo_writer_close(w);
    t_sleep_until_real(gone);
    size_t n1, n2;
    unsigned char *before = snapshot("s", &n1);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    while (speculo_reader_next(r, &c) == 0)
        ;
    ck_assert_int_eq(speculo_reader_get(r, "x", &c), 0);
    ck_assert_int_eq(speculo_reader_get_id(r, a, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_seek(r, 0), 0);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(speculo_reader_wait(r, 0), 0);
    speculo_reader_close(r);
    char buf[2048];
    ck_assert_int_gt(speculo_segment_describe("s", buf, sizeof(buf)), 0);
    unsigned char *after = snapshot("s", &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(before, after, n1), 0);
    free(before);
    free(after);
}
END_TEST

START_TEST(seek_past_last_id_skips_lower_ids)
{
    /* "the first live chunk whose id is greater than after_id": also for an
     * after_id beyond the newest chunk (only UINT64_MAX is special). */
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    speculo_reader *r = th_reader("s");
    ck_assert_int_eq(speculo_reader_seek(r, a + 3), 0);
    th_next_none(r);
    uint64_t ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = th_puts(w, "x", NULL);
    speculo_chunk c;
    for (int i = 0; i < 5; i++) {
        if (ids[i] <= a + 3)
            continue;
        ck_assert_int_eq(speculo_reader_next(r, &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
    }
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* A name is found among many unnamed chunks, committed before and after
 * it (that the cost of get does not grow with them is measured by `make
 * bench`, target 4b). */
START_TEST(get_finds_name_among_many_chunks)
{
    enum { N = 200000 };
    speculo_writer *w = th_writer("big", 0);
    for (int i = 0; i < N / 2; i++)
        th_put(w, "", 0, NULL, 0, 0);
    uint64_t target = th_puts(w, "target", "target");
    for (int i = 0; i < N / 2; i++)
        th_put(w, "", 0, NULL, 0, 0);
    speculo_reader *r = th_reader("big");
    speculo_chunk c;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(speculo_reader_get(r, "target", &c), 0);
        ck_assert_uint_eq(c.id, target);
        th_chunk_is(&c, "target", 6);
    }
    ck_assert_int_eq(speculo_reader_get(r, "absent", &c), -ENOENT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* ---- versions and pinned readers ------------------------------------------ */

START_TEST(get_version_tells_absent_from_dead)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t id = th_puts(w, "a", NULL);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;

    ck_assert_int_eq(speculo_reader_get_version(r, id, 0, &c), 0);
    th_chunk_is(&c, "a", 1);
    ck_assert_int_eq(speculo_writer_obsolete(w, id), 0);
    ck_assert_int_eq(speculo_reader_get_version(r, id, 0, &c), -ESTALE);
    ck_assert_int_eq(speculo_reader_get_id(r, id, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_version(r, id + 1, 0, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_get_version(r, id, 2, &c), -EINVAL);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* Only a version replaced by a newer one of its own name is taken. */
START_TEST(get_version_superseded_only_by_its_name)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t v1 = th_puts(w, "k1", "k");
    uint64_t other = th_puts(w, "x", NULL);
    uint64_t gone = th_puts(w, "g", "g");
    speculo_reader *r = th_reader("s");
    speculo_chunk c;

    th_puts(w, "k2", "k");
    th_put(w, "y", 1, NULL, 0, other);
    ck_assert_int_eq(speculo_writer_obsolete(w, gone), 0);
    ck_assert_int_eq(speculo_reader_get_version(r, v1, 0, &c), -ESTALE);
    ck_assert_int_eq(speculo_reader_get_version(r, v1, SPECULO_GET_SUPERSEDED, &c), 0);
    th_chunk_is(&c, "k1", 2);
    ck_assert_int_eq(speculo_reader_get_version(r, other, SPECULO_GET_SUPERSEDED, &c), -ESTALE);
    ck_assert_int_eq(speculo_reader_get_version(r, gone, SPECULO_GET_SUPERSEDED, &c), -ESTALE);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* A pinned reader stays on the file it maps: the version a collection
 * dropped is still found there, and the reader's file does not change;
 * an unpinned one follows the name. */
START_TEST(pinned_reader_stays_on_its_file)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t v1 = th_puts(w, "k1", "k");
    speculo_reader *r = th_reader("s");
    speculo_reader *follows = th_reader("s");
    struct speculo_segment_ident before, after;
    speculo_chunk c;

    ck_assert_int_eq(speculo_reader_pin(r), 0);
    ck_assert_int_eq(speculo_reader_ident(r, &before), 0);
    uint64_t v2 = th_puts(w, "k2", "k");
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    uint64_t v3 = th_puts(w, "k3", "k");
    ck_assert_int_eq(speculo_reader_get_version(r, v1, SPECULO_GET_SUPERSEDED, &c), 0);
    th_chunk_is(&c, "k1", 2);
    /* commits after the switch are not in its file (k1 is obsolete) */
    th_nexts(r, v2, "k2");
    th_next_none(r);
    ck_assert_int_eq(speculo_reader_get(r, "k", &c), 0);
    ck_assert_uint_eq(c.id, v2);
    ck_assert_int_eq(speculo_reader_wait(r, -1), 0); /* switched: at once */
    ck_assert_int_eq(speculo_reader_ident(r, &after), 0);
    ck_assert(after.dev == before.dev && after.ino == before.ino);
    ck_assert_uint_eq(after.capacity, before.capacity);
    ck_assert_uint_eq(after.generation, 1);
    /* removed: it answers from its file still */
    ck_assert_int_eq(speculo_reader_get_version(follows, v1, SPECULO_GET_SUPERSEDED, &c), -ENOENT);
    ck_assert_int_eq(speculo_reader_ident(follows, &after), 0);
    ck_assert(after.ino != before.ino);
    ck_assert_uint_eq(after.generation, 2);
    ck_assert_int_eq(speculo_reader_get(follows, "k", &c), 0);
    ck_assert_uint_eq(c.id, v3);
    speculo_writer_close(w);
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    ck_assert_int_eq(speculo_reader_get(r, "k", &c), 0);
    ck_assert_int_eq(speculo_reader_get(follows, "k", &c), -ENOENT);
    speculo_reader_close(follows);
    speculo_reader_close(r);
}
END_TEST

START_TEST(open_pinned_and_bad_flags)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    speculo_reader *r = (speculo_reader *)&r;
    ck_assert_int_eq(speculo_reader_open_at(NULL, "s", 2, &r), -EINVAL);
    ck_assert_ptr_eq(r, (speculo_reader *)&r);
    ck_assert_int_eq(speculo_reader_open_at(NULL, "s", SPECULO_READER_PINNED, &r), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    uint64_t b = th_puts(w, "b", NULL);
    th_nexts(r, a, "a");
    th_next_none(r);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get_id(r, b, &c), -ENOENT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

Suite *reader_suite(void)
{
    Suite *s = suite_create("reader");
    TCase *tc = th_tcase("stream", 10);
    tcase_add_test(tc, next_in_commit_order_then_eagain);
    tcase_add_test(tc, readers_have_own_positions);
    tcase_add_test(tc, seek_positions);
    tcase_add_test(tc, seek_max_on_empty_segment);
    tcase_add_test(tc, seek_past_last_id_skips_lower_ids);
    tcase_add_test(tc, expired_chunks_vanish);
    suite_add_tcase(s, tc);

    tc = th_tcase("lookup", 20);
    tcase_add_test(tc, get_does_not_move_position);
    tcase_add_test(tc, get_unknown_name_enoent);
    tcase_add_test(tc, get_id_finds_each_chunk);
    tcase_add_test(tc, get_finds_each_of_many_names);
    tcase_add_test(tc, get_after_many_updates);
    tcase_add_test(tc, get_same_name_again_follows_updates_and_switches);
    tcase_add_test(tc, get_with_the_name_a_get_returned);
    tcase_add_test(tc, get_finds_name_among_many_chunks);
    suite_add_tcase(s, tc);

    tc = th_tcase("speculofs_calls", 10);
    tcase_add_test(tc, get_version_tells_absent_from_dead);
    tcase_add_test(tc, get_version_superseded_only_by_its_name);
    tcase_add_test(tc, pinned_reader_stays_on_its_file);
    tcase_add_test(tc, open_pinned_and_bad_flags);
    suite_add_tcase(s, tc);

    tc = th_tcase("info", 10);
    tcase_add_test(tc, info_fields);
    tcase_add_test(tc, reader_leaves_file_unchanged);
    suite_add_tcase(s, tc);
    return s;
}
