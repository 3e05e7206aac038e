/*
 * The replica interface: chunks committed with the id, times and name they
 * had in another segment.
 */
#include "th.h"

static uint64_t put_replica(speculo_writer *w, const char *data, const struct speculo_replica *c)
{
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, strlen(data), &p), 0);
    memcpy(p, data, strlen(data));
    int rc = speculo_writer_commit_replica(w, c);
    ck_assert_msg(rc == 0, "commit_replica(id %llu) = %d", (unsigned long long)c->id, rc);
    return c->id;
}

START_TEST(replica_keeps_id_times_and_name)
{
    speculo_writer *w = th_writer("m", 0);
    ck_assert_uint_eq(speculo_writer_last_id(w), 0);
    int64_t now = t_real_ns();
    struct speculo_replica a = {.id = 5, .committed_ns = now - 1000, .expires_ns = 0};
    struct speculo_replica b = {
        .id = 9, .committed_ns = now - 500, .expires_ns = now + 3600000000000LL, .name = "cfg"};
    put_replica(w, "five", &a);
    put_replica(w, "nine", &b);
    ck_assert_uint_eq(speculo_writer_last_id(w), 9);
    /* a local commit follows the replicas' ids */
    uint64_t local = th_puts(w, "local", NULL);
    ck_assert_uint_eq(local, 10);
    speculo_reader *r = th_reader("m");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, 5);
    ck_assert_int_eq(c.committed_ns, now - 1000);
    ck_assert_int_eq(c.expires_ns, 0);
    th_chunk_is(&c, "five", 4);
    ck_assert_int_eq(speculo_reader_get(r, "cfg", &c), 0);
    ck_assert_uint_eq(c.id, 9);
    ck_assert_int_eq(c.committed_ns, now - 500);
    ck_assert_int_eq(c.expires_ns, now + 3600000000000LL);
    speculo_reader_close(r);
    speculo_writer_close(w);
    /* the next writer goes on after them */
    w = th_writer("m", 0);
    ck_assert_uint_eq(speculo_writer_last_id(w), 10);
    speculo_writer_close(w);
}
END_TEST

START_TEST(replica_obsoletes_as_the_origin_did)
{
    speculo_writer *w = th_writer("m", 0);
    int64_t now = t_real_ns();
    struct speculo_replica v1 = {.id = 1, .committed_ns = now, .name = "k"};
    struct speculo_replica x = {.id = 2, .committed_ns = now};
    struct speculo_replica v2 = {.id = 3, .committed_ns = now, .name = "k", .replaces = 1};
    struct speculo_replica y = {.id = 4, .committed_ns = now, .replaces = 2};
    struct speculo_replica z = {.id = 6, .committed_ns = now, .replaces = 5}; /* 5 never here */
    put_replica(w, "v1", &v1);
    put_replica(w, "x", &x);
    put_replica(w, "v2", &v2);
    put_replica(w, "y", &y);
    put_replica(w, "z", &z);
    speculo_reader *r = th_reader("m");
    th_nexts(r, 3, "v2");
    th_nexts(r, 4, "y");
    th_nexts(r, 6, "z");
    th_next_none(r);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "k", &c), 0);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), 1);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(replica_refuses_what_the_origin_could_not_have)
{
    speculo_writer *w = th_writer("m", 0);
    th_puts(w, "local", NULL); /* id 1 */
    void *p;
    struct speculo_replica c = {.id = 1, .committed_ns = 1};
    ck_assert_int_eq(speculo_writer_commit_replica(w, &c), -EINVAL); /* nothing reserved */
    ck_assert_int_eq(speculo_writer_alloc(w, 1, &p), 0);
    ck_assert_int_eq(speculo_writer_commit_replica(w, &c), -EINVAL); /* id used */
    c.id = UINT64_MAX / 2;
    ck_assert_int_eq(speculo_writer_commit_replica(w, &c), -EINVAL);
    c.id = 2;
    c.committed_ns = 0;
    ck_assert_int_eq(speculo_writer_commit_replica(w, &c), -EINVAL);
    c.committed_ns = 1;
    c.expires_ns = -1;
    ck_assert_int_eq(speculo_writer_commit_replica(w, &c), -EINVAL);
    c.expires_ns = 0;
    c.name = "9bad";
    ck_assert_int_eq(speculo_writer_commit_replica(w, &c), -EINVAL);
    c.name = NULL;
    ck_assert_int_eq(speculo_writer_commit_replica(NULL, &c), -EINVAL);
    ck_assert_int_eq(speculo_writer_commit_replica(w, NULL), -EINVAL);
    /* the reservation was kept through the refusals */
    ck_assert_int_eq(speculo_writer_commit_replica(w, &c), 0);
    ck_assert_uint_eq(speculo_writer_last_id(NULL), 0);
    speculo_writer_close(w);
}
END_TEST

START_TEST(writer_option_gives_a_new_segment_its_uid)
{
    struct speculo_writer_options o = {.uid = 0x0123456789abcdefULL};
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open("m", &o, &w), 0);
    th_puts(w, "x", NULL);
    speculo_reader *r = th_reader("m");
    struct speculo_segment_ident id;
    ck_assert_int_eq(speculo_reader_ident(r, &id), 0);
    ck_assert_uint_eq(id.uid, 0x0123456789abcdefULL);
    /* kept by the collector; an existing segment keeps its own */
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    speculo_writer_close(w);
    o.uid = 42;
    ck_assert_int_eq(speculo_writer_open("m", &o, &w), 0);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_int_eq(speculo_reader_ident(r, &id), 0);
    ck_assert_uint_eq(id.uid, 0x0123456789abcdefULL);
    speculo_writer_close(w);
    speculo_reader_close(r);
    /* without the option, each new segment draws one */
    ck_assert_int_eq(speculo_segment_remove("m", 0), 0);
    w = th_writer("m", 0);
    th_puts(w, "y", NULL);
    r = th_reader("m");
    ck_assert_int_eq(speculo_reader_ident(r, &id), 0);
    ck_assert_uint_ne(id.uid, 0x0123456789abcdefULL);
    ck_assert_uint_ne(id.uid, 0);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

Suite *replica_suite(void)
{
    Suite *s = suite_create("replica");
    TCase *tc = th_tcase("replica", 10);
    tcase_add_test(tc, replica_keeps_id_times_and_name);
    tcase_add_test(tc, replica_obsoletes_as_the_origin_did);
    tcase_add_test(tc, replica_refuses_what_the_origin_could_not_have);
    tcase_add_test(tc, writer_option_gives_a_new_segment_its_uid);
    suite_add_tcase(s, tc);
    return s;
}
