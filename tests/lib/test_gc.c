/*
 * gc: collection on demand, at a full segment and by the dead-bytes ratio;
 * what it keeps, what it drops, and readers across the switch.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "th.h"

static speculo_writer *writer_opts(const char *seg, size_t cap, unsigned dead_percent,
                                   size_t min_dead)
{
    struct speculo_writer_options o;
    memset(&o, 0, sizeof(o));
    o.capacity = cap;
    o.gc_dead_percent = dead_percent;
    o.gc_min_dead_bytes = min_dead;
    speculo_writer *w = NULL;
    int rc = speculo_writer_open(seg, &o, &w);
    ck_assert_msg(rc == 0, "writer_open = %d", rc);
    return w;
}

static uint64_t generation(speculo_reader *r)
{
    struct speculo_segment_info info;
    th_info(r, &info);
    return info.generation;
}

START_TEST(gc_keeps_held_chunk_bytes)
{
    enum { SZ = 8192 };
    char *buf = malloc(SZ);
    ck_assert_ptr_nonnull(buf);
    speculo_writer *w = th_writer("s", 64 << 10);
    t_fill(buf, SZ, 11);
    uint64_t held = th_put(w, buf, SZ, "held", 0, 0);
    uint64_t other = th_puts(w, "other", NULL);
    speculo_reader *r = th_reader("s");
    speculo_reader *g = th_reader("s");
    speculo_chunk c, gc_;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, held);
    ck_assert_int_eq(speculo_reader_get(g, "held", &gc_), 0);
    ck_assert_uint_eq(gc_.id, held);

    /* Obsolete it, collect, overwrite everything many times over. */
    t_fill(buf, SZ, 12);
    uint64_t newer = th_put(w, buf, SZ, "held", 0, 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    for (int i = 0; i < 50; i++) {
        t_fill(buf, SZ, 100 + (uint64_t)i);
        th_put(w, buf, SZ, "churn", 0, 0);
        if (i % 10 == 0)
            ck_assert_int_eq(speculo_writer_gc(w), 0);
    }
    /* The held chunks have not changed. */
    ck_assert_uint_eq(c.id, held);
    ck_assert_uint_eq(c.size, SZ);
    ck_assert_uint_eq(t_check_fill(c.data, SZ, 11), 0);
    ck_assert_str_eq(c.name, "held");
    ck_assert_uint_eq(t_check_fill(gc_.data, SZ, 11), 0);
    ck_assert_str_eq(gc_.name, "held");

    /* The next call moves on: after `held`, the live ones in order. */
    th_nexts(r, other, "other");
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, newer);
    ck_assert_uint_eq(t_check_fill(c.data, SZ, 12), 0);
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_str_eq(c.name, "churn");
    ck_assert_uint_eq(t_check_fill(c.data, SZ, 149), 0);
    th_next_none(r);
    ck_assert_int_eq(speculo_reader_get(g, "held", &gc_), 0);
    ck_assert_uint_eq(gc_.id, newer);
    ck_assert_uint_eq(t_check_fill(gc_.data, SZ, 12), 0);
    speculo_reader_close(r);
    speculo_reader_close(g);
    speculo_writer_close(w);
    free(buf);
}
END_TEST

START_TEST(gc_mid_stream_no_dup_no_gap)
{
    enum { N = 10 };
    uint64_t id[N];
    char v[16];
    speculo_writer *w = th_writer("s", 64 << 10);
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof(v), "chunk-%d", i);
        id[i] = th_puts(w, v, NULL);
    }
    speculo_reader *r = th_reader("s");
    for (int i = 0; i < 4; i++) {
        snprintf(v, sizeof(v), "chunk-%d", i);
        th_nexts(r, id[i], v);
    }
    ck_assert_int_eq(speculo_writer_obsolete(w, id[1]), 0); /* already read */
    ck_assert_int_eq(speculo_writer_obsolete(w, id[3]), 0); /* the last one read */
    ck_assert_int_eq(speculo_writer_obsolete(w, id[6]), 0); /* not read yet */
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    uint64_t n1 = th_puts(w, "after-1", NULL);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    uint64_t n2 = th_puts(w, "after-2", NULL);
    ck_assert_uint_gt(n1, id[N - 1]);
    for (int i = 4; i < N; i++) {
        if (i == 6)
            continue;
        snprintf(v, sizeof(v), "chunk-%d", i);
        th_nexts(r, id[i], v);
    }
    th_nexts(r, n1, "after-1");
    th_nexts(r, n2, "after-2");
    th_next_none(r);
    ck_assert_uint_eq(generation(r), 3);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(gc_keeps_ids_names_times)
{
    enum { N = 6 };
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "dead", "n0");
    th_put(w, "a", 1, "n0", 0, 0);
    th_put(w, "bb", 2, NULL, 60000000000LL, 0);
    th_put(w, "ccc", 3, "n1", 0, 0);
    th_put(w, "dddd", 4, NULL, 0, 0);
    th_put(w, "eeeee", 5, "n2", 3600000000000LL, 0);
    th_put(w, "", 0, NULL, 0, 0);
    speculo_reader *r = th_reader("s");
    speculo_chunk before[N];
    char *bytes[N];
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(speculo_reader_next(r, &before[i]), 0);
        bytes[i] = malloc(before[i].size + 1);
        memcpy(bytes[i], before[i].data, before[i].size);
        if (before[i].name)
            before[i].name = strdup(before[i].name);
    }
    th_next_none(r);
    speculo_reader_close(r);
    ck_assert_int_eq(speculo_writer_gc(w), 0);

    r = th_reader("s");
    ck_assert_uint_eq(generation(r), 2);
    for (int i = 0; i < N; i++) {
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_next(r, &c), 0);
        ck_assert_uint_eq(c.id, before[i].id);
        ck_assert_uint_eq(c.size, before[i].size);
        ck_assert_int_eq(memcmp(c.data, bytes[i], c.size), 0);
        ck_assert_int_eq(c.committed_ns, before[i].committed_ns);
        ck_assert_int_eq(c.expires_ns, before[i].expires_ns);
        if (before[i].name) {
            ck_assert_ptr_nonnull(c.name);
            ck_assert_str_eq(c.name, before[i].name);
            speculo_chunk g;
            ck_assert_int_eq(speculo_reader_get(r, c.name, &g), 0);
            ck_assert_uint_eq(g.id, c.id);
        } else {
            ck_assert_ptr_null(c.name);
        }
        speculo_chunk byid;
        ck_assert_int_eq(speculo_reader_get_id(r, c.id, &byid), 0);
        ck_assert_uint_eq(byid.size, c.size);
        free(bytes[i]);
        free((char *)before[i].name);
    }
    th_next_none(r);
    /* Ids keep increasing after the collection. */
    uint64_t next = th_puts(w, "later", NULL);
    ck_assert_uint_gt(next, before[N - 1].id);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(gc_drops_dead_chunks)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", NULL);
    uint64_t b = th_puts(w, "bbbb", "b");
    th_puts(w, "cc", "b");
    th_put(w, "d", 1, NULL, 1000000, 0); /* expires in 1 ms */
    int64_t gone = t_expired_by(1000000);
    uint64_t e = th_puts(w, "eeeee", NULL);
    ck_assert_int_eq(speculo_writer_obsolete(w, a), 0);
    t_sleep_until_real(gone);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.obsolete_chunks, 2);
    ck_assert_uint_eq(info.expired_chunks, 1);
    ck_assert_uint_eq(info.live_chunks, 2);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    th_info(r, &info);
    ck_assert_uint_eq(info.generation, 2);
    ck_assert_uint_eq(info.obsolete_chunks, 0);
    ck_assert_uint_eq(info.expired_chunks, 0);
    ck_assert_uint_eq(info.live_chunks, 2);
    ck_assert_uint_eq(info.named_chunks, 1);
    ck_assert_uint_eq(info.dead_bytes, 0);
    ck_assert_uint_eq(info.bytes_used, rec_length(2, 1) + rec_length(5, 0));
    ck_assert_uint_gt(info.first_id, b);
    ck_assert_uint_eq(info.last_id, e);
    ck_assert_uint_ge(info.capacity, 64 << 10);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_str_eq(c.name, "b");
    th_chunk_is(&c, "cc", 2);
    th_nexts(r, e, "eeeee");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(gc_triggered_by_full_segment)
{
    enum { NAMES = 8, ROUNDS = 2000, SZ = 1024 };
    char buf[SZ], name[16];
    uint64_t last[NAMES];
    speculo_writer *w = th_writer("s", 64 << 10);
    speculo_reader *r = th_reader("s");
    for (int i = 0; i < ROUNDS; i++) {
        snprintf(name, sizeof(name), "k%d", i % NAMES);
        t_fill(buf, SZ, (uint64_t)i);
        last[i % NAMES] = th_put(w, buf, SZ, name, 0, 0);
    }
    /* 2 MB written through a 64 KiB segment. */
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_gt(info.generation, 1);
    ck_assert_uint_le(info.capacity, 1 << 20);
    ck_assert_uint_eq(info.live_chunks, NAMES);
    ck_assert_uint_eq(info.last_id, last[(ROUNDS - 1) % NAMES]);
    for (int k = 0; k < NAMES; k++) {
        speculo_chunk c;
        snprintf(name, sizeof(name), "k%d", k);
        ck_assert_int_eq(speculo_reader_get(r, name, &c), 0);
        ck_assert_uint_eq(c.id, last[k]);
        ck_assert_uint_eq(c.size, SZ);
        ck_assert_uint_eq(t_check_fill(c.data, SZ, (uint64_t)(ROUNDS - NAMES + k)), 0);
    }
    /* The stream holds the latest of each name, in commit order. */
    for (int i = ROUNDS - NAMES; i < ROUNDS; i++) {
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_next(r, &c), 0);
        ck_assert_uint_eq(c.id, last[i % NAMES]);
    }
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
}
END_TEST

START_TEST(gc_grows_for_live_data)
{
    enum { N = 200, SZ = 2048 };
    char buf[SZ];
    uint64_t ids[N];
    speculo_writer *w = th_writer("s", 64 << 10);
    speculo_reader *r = th_reader("s");
    for (int i = 0; i < N; i++) {
        t_fill(buf, SZ, (uint64_t)i);
        ids[i] = th_put(w, buf, SZ, NULL, 0, 0);
        if (i == 10) {
            speculo_chunk c;
            for (int j = 0; j <= 10; j++) {
                ck_assert_int_eq(speculo_reader_next(r, &c), 0);
                ck_assert_uint_eq(c.id, ids[j]);
            }
        }
    }
    for (int i = 11; i < N; i++) {
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_next(r, &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
        ck_assert_uint_eq(t_check_fill(c.data, SZ, (uint64_t)i), 0);
    }
    th_next_none(r);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_gt(info.capacity, 64 << 10);
    ck_assert_uint_ge(info.data_capacity, (uint64_t)N * rec_length(SZ, 0));
    ck_assert_uint_eq(info.live_chunks, N);
    ck_assert_uint_gt(info.generation, 1);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(chunk_bigger_than_capacity)
{
    const size_t big = 8 << 20;
    char *buf = malloc(big);
    ck_assert_ptr_nonnull(buf);
    t_fill(buf, big, 8);
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "before", "b");
    uint64_t id = th_put(w, buf, big, "big", 0, 0);
    uint64_t z = th_puts(w, "after", NULL);
    memset(buf, 0, big);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "before");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, id);
    ck_assert_uint_eq(c.size, big);
    ck_assert_uint_eq(t_check_fill(c.data, big, 8), 0);
    th_nexts(r, z, "after");
    th_next_none(r);
    ck_assert_int_eq(speculo_reader_get(r, "big", &c), 0);
    ck_assert_uint_eq(c.size, big);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_ge(info.capacity, big);
    ck_assert_int_ge(t_seg_file_size("s"), (int64_t)big);
    speculo_reader_close(r);

    /* Zero-copy too. */
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, big + 12345, &p), 0);
    t_fill(p, big + 12345, 9);
    uint64_t id2;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id2), 0);
    r = th_reader("s");
    ck_assert_int_eq(speculo_reader_get_id(r, id2, &c), 0);
    ck_assert_uint_eq(c.size, big + 12345);
    ck_assert_uint_eq(t_check_fill(c.data, c.size, 9), 0);
    speculo_reader_close(r);
    speculo_writer_close(w);
    free(buf);
}
END_TEST

START_TEST(gc_dead_ratio_triggers_at_commit)
{
    char buf[4096];
    memset(buf, 'x', sizeof(buf));
    speculo_writer *w = writer_opts("eager", 4 << 20, 10, 16 << 10);
    speculo_writer *lazy = writer_opts("lazy", 4 << 20, 100, 16 << 10);
    for (int i = 0; i < 20; i++) {
        th_put(w, buf, sizeof(buf), "a", 0, 0);
        th_put(lazy, buf, sizeof(buf), "a", 0, 0);
    }
    /* 80 KiB written: far from full, but 95% dead in "eager". */
    speculo_reader *r = th_reader("eager");
    ck_assert_uint_gt(generation(r), 1);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.live_chunks, 1);
    speculo_reader_close(r);
    r = th_reader("lazy");
    ck_assert_uint_eq(generation(r), 1);
    th_info(r, &info);
    ck_assert_uint_eq(info.obsolete_chunks, 19);
    speculo_reader_close(r);
    speculo_writer_close(w);
    speculo_writer_close(lazy);
}
END_TEST

START_TEST(gc_carries_reservation)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", NULL);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 1000, &p), 0);
    t_fill(p, 1000, 77);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    th_next_none(r);
    uint64_t id;
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id), 0);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, id);
    ck_assert_uint_eq(c.size, 1000);
    ck_assert_uint_eq(t_check_fill(c.data, 1000, 77), 0);
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(gc_leaves_no_temp_files)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    char buf[3000];
    memset(buf, 1, sizeof(buf));
    for (int i = 0; i < 100; i++) {
        th_put(w, buf, sizeof(buf), "n", 0, 0);
        if (i % 20 == 0)
            ck_assert_int_eq(speculo_writer_gc(w), 0);
    }
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
    speculo_writer_close(w);
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
}
END_TEST

static struct stat stat_of(const char *seg)
{
    char path[4096];
    struct stat st;
    ck_assert_int_eq(t_path(path, sizeof path, seg), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    return st;
}

/* The owner narrows the mode of a live segment: collections keep it, and
 * keep widening it too, whatever mode the writer was opened with. */
START_TEST(gc_keeps_mode_changed_after_open)
{
    mode_t old = umask(0);
    speculo_writer *w = th_writer_at(__FILE__, __LINE__, "s", 64 << 10, 0644);
    umask(old);
    uint64_t id = th_puts(w, "a", "n");
    char path[4096];
    ck_assert_int_eq(t_path(path, sizeof path, "s"), 0);
    const mode_t modes[] = {0600, 0640, 0400, 0644};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        ck_assert_int_eq(chmod(path, modes[i]), 0);
        uint64_t gen = stat_of("s").st_ino;
        ck_assert_int_eq(speculo_writer_gc(w), 0);
        ck_assert_uint_ne(stat_of("s").st_ino, gen); /* a new file */
        ck_assert_uint_eq(stat_of("s").st_mode & 07777, modes[i]);
        /* and a collection that a full segment starts */
        char big[70 << 10];
        memset(big, 7, sizeof big);
        th_put(w, big, sizeof big, NULL, 0, 0);
        ck_assert_uint_eq(stat_of("s").st_mode & 07777, modes[i]);
    }
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "n", &c), 0);
    ck_assert_uint_eq(c.id, id);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* chgrp by the owner survives collections (as root: any group). */
START_TEST(gc_keeps_group_changed_after_open)
{
    if (!th_root()) {
        fprintf(stderr, "gc_keeps_group_changed_after_open: not root, skipped\n");
        return;
    }
    speculo_writer *w = th_writer_at(__FILE__, __LINE__, "s", 64 << 10, 0640);
    th_puts(w, "a", NULL);
    char path[4096];
    ck_assert_int_eq(t_path(path, sizeof path, "s"), 0);
    ck_assert_int_eq(chown(path, (uid_t)-1, 4242), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    struct stat st = stat_of("s");
    ck_assert_uint_eq(st.st_gid, 4242);
    ck_assert_uint_eq(st.st_uid, geteuid());
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
    ck_assert_int_eq(chown(path, (uid_t)-1, getegid()), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_uint_eq(stat_of("s").st_gid, getegid());
    speculo_writer_close(w);
}
END_TEST

START_TEST(gc_on_empty_segment)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    speculo_reader *r = th_reader("s");
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    th_next_none(r);
    ck_assert_uint_eq(generation(r), 2);
    uint64_t a = th_puts(w, "a", NULL);
    th_nexts(r, a, "a");
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* A collection keeps a chunk's expiry: live after it, gone once the
 * clock passes the expiry. "Live" is checked with a TTL this machine can
 * check within (t_ttl_ns()): each attempt commits a new version. */
START_TEST(gc_keeps_expiry)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    uint64_t t = 0;
    int64_t gone = 0;
    for (int attempt = 0;; attempt++) {
        int64_t ttl = t_ttl_ns(300000000LL, attempt), before = t_real_ns();
        t = th_put(w, "soon", 4, "t", ttl, 0);
        gone = t_expired_by(ttl);
        ck_assert_int_eq(speculo_writer_gc(w), 0);
        int rc = speculo_reader_get(r, "t", &c);
        if (t_real_ns() < before + ttl) {
            ck_assert_int_eq(rc, 0);
            ck_assert_uint_eq(c.id, t);
            ck_assert_int_eq(c.expires_ns - c.committed_ns, ttl);
            break;
        }
        ck_assert_msg(attempt + 1 < T_TTL_ATTEMPTS, "never checked within a TTL of %lld ms",
                      (long long)(ttl / 1000000));
    }
    t_sleep_until_real(gone);
    ck_assert_int_eq(speculo_reader_get(r, "t", &c), -ENOENT);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(speculo_reader_get_id(r, t, &c), -ENOENT);
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(get_after_gc_finds_new_versions)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    th_puts(w, "v1", "cfg");
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "cfg", &c), 0);
    th_chunk_is(&c, "v1", 2);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    uint64_t v2 = th_puts(w, "v2", "cfg");
    ck_assert_int_eq(speculo_reader_get(r, "cfg", &c), 0);
    ck_assert_uint_eq(c.id, v2);
    th_chunk_is(&c, "v2", 2);
    ck_assert_int_eq(speculo_reader_get_id(r, v2, &c), 0);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(gc_obsolete_after_switch_skipped)
{
    /* A reader still in the old file when chunks are obsoleted in the new
     * one: next skips obsolete chunks, whichever file it reads them from. */
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", NULL);
    uint64_t b = th_puts(w, "b", NULL);
    uint64_t c_id = th_puts(w, "c", NULL);
    th_puts(w, "doc-v1", "doc");
    uint64_t d = th_puts(w, "d", NULL);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, b), 0);
    uint64_t v2 = th_puts(w, "doc-v2", "doc");
    uint64_t e = th_put(w, "e", 1, NULL, 0, d);
    th_nexts(r, c_id, "c");
    th_nexts(r, v2, "doc-v2");
    th_nexts(r, e, "e");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(gc_expiry_and_obsolete_seen_by_lagging_reader)
{
    /* The same with many chunks and two switches behind the reader. */
    enum { N = 40 };
    uint64_t id[N];
    char v[16];
    speculo_writer *w = th_writer("s", 64 << 10);
    for (int i = 0; i < N; i++) {
        snprintf(v, sizeof(v), "c%d", i);
        id[i] = th_puts(w, v, NULL);
    }
    speculo_reader *r = th_reader("s");
    th_nexts(r, id[0], "c0");
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    for (int i = 1; i < N; i += 2)
        ck_assert_int_eq(speculo_writer_obsolete(w, id[i]), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    for (int i = 2; i < N; i += 4)
        ck_assert_int_eq(speculo_writer_obsolete(w, id[i]), 0);
    for (int i = 4; i < N; i += 4) {
        snprintf(v, sizeof(v), "c%d", i);
        th_nexts(r, id[i], v);
    }
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(tiny_capacity_works)
{
    char buf[500];
    speculo_writer *w = th_writer("s", 1);
    uint64_t ids[100];
    for (int i = 0; i < 100; i++) {
        t_fill(buf, sizeof(buf), (uint64_t)i);
        ids[i] = th_put(w, buf, sizeof(buf), NULL, 0, 0);
    }
    speculo_reader *r = th_reader("s");
    for (int i = 0; i < 100; i++) {
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_next(r, &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
        ck_assert_uint_eq(t_check_fill(c.data, c.size, (uint64_t)i), 0);
    }
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(ids_never_reused_after_everything_collected)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", NULL);
    uint64_t b = th_puts(w, "b", "n");
    ck_assert_int_eq(speculo_writer_obsolete(w, a), 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, b), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    speculo_writer_close(w);
    speculo_reader *r = th_reader("s");
    th_next_none(r);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.live_chunks, 0);
    ck_assert_uint_eq(info.first_id, 0);
    /* A new writer (the file holds no record at all) continues the ids. */
    w = th_writer("s", 0);
    uint64_t c = th_puts(w, "c", "n");
    ck_assert_uint_gt(c, b);
    th_nexts(r, c, "c");
    speculo_writer_close(w);
    speculo_reader_close(r);
}
END_TEST

START_TEST(many_tiny_chunks_fill_id_table)
{
    enum { N = 20000 };
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t *ids = malloc(N * sizeof(*ids));
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++) {
        uint32_t v = (uint32_t)i;
        ids[i] = th_put(w, &v, (i % 3) ? sizeof(v) : 0, NULL, 0, 0);
    }
    speculo_reader *r = th_reader("s");
    for (int i = 0; i < N; i++) {
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_next(r, &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
        if (i % 3) {
            uint32_t v;
            ck_assert_uint_eq(c.size, 4);
            memcpy(&v, c.data, 4);
            ck_assert_uint_eq(v, (uint32_t)i);
        } else {
            ck_assert_uint_eq(c.size, 0);
        }
    }
    th_next_none(r);
    for (int i = 0; i < N; i += 997) {
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_get_id(r, ids[i], &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
    }
    speculo_reader_close(r);
    speculo_writer_close(w);
    free(ids);
}
END_TEST

START_TEST(many_names_in_small_segment)
{
    enum { N = 2000 };
    char name[32];
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t *ids = malloc(N * sizeof(*ids));
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "key_%d", i);
        ids[i] = th_put(w, name, strlen(name), name, 0, 0);
    }
    speculo_reader *r = th_reader("s");
    for (int i = 0; i < N; i++) {
        speculo_chunk c;
        snprintf(name, sizeof(name), "key_%d", i);
        ck_assert_msg(speculo_reader_get(r, name, &c) == 0, "get(%s)", name);
        ck_assert_uint_eq(c.id, ids[i]);
        th_chunk_is(&c, name, strlen(name));
    }
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.named_chunks, N);
    speculo_reader_close(r);
    speculo_writer_close(w);
    free(ids);
}
END_TEST

START_TEST(gc_shrinks_after_big_chunk_dies)
{
    char *big = malloc(4 << 20);
    ck_assert_ptr_nonnull(big);
    memset(big, 7, 4 << 20);
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t id = th_put(w, big, 4 << 20, NULL, 0, 0);
    uint64_t keep = th_puts(w, "keep", NULL);
    ck_assert_int_eq(speculo_writer_obsolete(w, id), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_lt(t_seg_file_size("s"), 2 << 20);
    ck_assert_int_ge(t_seg_file_size("s"), 64 << 10);
    speculo_reader *r = th_reader("s");
    th_nexts(r, keep, "keep");
    speculo_reader_close(r);
    speculo_writer_close(w);
    free(big);
}
END_TEST

START_TEST(ids_not_reused_after_crash_in_switch)
{
    /* A collection copies no record of the newest id (it was obsolete);
     * the writer dies right after the rename, before it publishes its
     * running totals in the new file. The next writer must still not reuse
     * that id. The crash state is made by hand: the new file exactly as the
     * collector renames it (last_id not yet published). */
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", NULL);
    uint64_t b = th_puts(w, "b", NULL);
    speculo_reader *r = th_reader("s");
    th_nexts(r, a, "a");
    th_nexts(r, b, "b");
    ck_assert_int_eq(speculo_writer_obsolete(w, b), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    speculo_writer_close(w);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    struct seg_header *h = t_seg_hdr(&m);
    ck_assert_uint_eq(atomic_load(&h->last_id), b);
    atomic_store(&h->last_id, 0);
    atomic_store(&h->nrecords, 0);
    atomic_store(&h->committed_end, h->records_off);
    t_seg_unmap(&m);

    w = th_writer("s", 0);
    uint64_t c = th_puts(w, "c", NULL);
    ck_assert_uint_gt(c, b);
    th_nexts(r, c, "c");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

Suite *gc_suite(void)
{
    Suite *s = suite_create("gc");
    TCase *tc = th_tcase("collect", 20);
    tcase_add_test(tc, gc_keeps_held_chunk_bytes);
    tcase_add_test(tc, gc_mid_stream_no_dup_no_gap);
    tcase_add_test(tc, gc_keeps_ids_names_times);
    tcase_add_test(tc, gc_drops_dead_chunks);
    tcase_add_test(tc, gc_carries_reservation);
    tcase_add_test(tc, gc_leaves_no_temp_files);
    tcase_add_test(tc, gc_keeps_mode_changed_after_open);
    tcase_add_test(tc, gc_keeps_group_changed_after_open);
    tcase_add_test(tc, gc_on_empty_segment);
    tcase_add_test(tc, gc_keeps_expiry);
    tcase_add_test(tc, get_after_gc_finds_new_versions);
    tcase_add_test(tc, gc_obsolete_after_switch_skipped);
    tcase_add_test(tc, gc_expiry_and_obsolete_seen_by_lagging_reader);
    tcase_add_test(tc, tiny_capacity_works);
    suite_add_tcase(s, tc);

    tc = th_tcase("automatic", 30);
    tcase_add_test(tc, gc_triggered_by_full_segment);
    tcase_add_test(tc, gc_grows_for_live_data);
    tcase_add_test(tc, chunk_bigger_than_capacity);
    tcase_add_test(tc, gc_dead_ratio_triggers_at_commit);
    tcase_add_test(tc, ids_never_reused_after_everything_collected);
    tcase_add_test(tc, ids_not_reused_after_crash_in_switch);
    tcase_add_test(tc, many_tiny_chunks_fill_id_table);
    tcase_add_test(tc, many_names_in_small_segment);
    tcase_add_test(tc, gc_shrinks_after_big_chunk_dies);
    suite_add_tcase(s, tc);
    return s;
}
