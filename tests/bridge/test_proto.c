/*
 * The wire format, in-process: names escaped reversibly, id lists, frame
 * entries, and headers checked before anything is believed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "tb.h"

START_TEST(names_escape_reversibly_into_subject_tokens)
{
    const char *names[] = {"a", "sensor.temp", "a_b", "x-1.y_2", "_5F", "A.b.C", "..", "__"};
    char esc[1024], back[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = br_escape(names[i], esc, sizeof esc);
        ck_assert_uint_eq(n, strlen(esc));
        ck_assert_msg(!strpbrk(esc, ".*> \t"), "escaped %s: %s", names[i], esc);
        ck_assert_int_eq(br_unescape(esc, back, sizeof back), (int)strlen(names[i]));
        ck_assert_str_eq(back, names[i]);
    }
    /* two names never share a spelling */
    char e1[64], e2[64];
    br_escape("a.b", e1, sizeof e1);
    br_escape("a_b", e2, sizeof e2);
    ck_assert_str_ne(e1, e2);
    ck_assert_int_eq(br_unescape("a_2", back, sizeof back), -EINVAL);
    ck_assert_int_eq(br_unescape("a_41", back, sizeof back), -EINVAL); /* 'A' needs no escape */
    ck_assert_int_eq(br_unescape("a.b", back, sizeof back), -EINVAL);
}
END_TEST

START_TEST(stream_names_come_from_segments_and_are_checked)
{
    char s[BR_STREAM_MAX + 1];
    ck_assert_int_eq(br_stream_default("metrics.eu_1", s, sizeof s), 0);
    ck_assert_str_eq(s, "speculo-metrics_2Eeu_5F1");
    ck_assert(br_stream_name_ok(s));
    char seg[SPECULO_SEGMENT_NAME_MAX + 1];
    memset(seg, '.', sizeof seg - 1);
    seg[0] = 'a';
    seg[sizeof seg - 1] = '\0';
    ck_assert_int_eq(br_stream_default(seg, s, sizeof s), -ENAMETOOLONG);
    ck_assert(!br_stream_name_ok("a.b"));
    ck_assert(!br_stream_name_ok("a*"));
    ck_assert(!br_stream_name_ok("a>"));
    ck_assert(!br_stream_name_ok("a b"));
    ck_assert(!br_stream_name_ok(""));
    ck_assert(br_stream_name_ok("My_Stream-2"));
}
END_TEST

START_TEST(id_lists_round_trip_as_ranges)
{
    struct br_ids ids, back;
    br_ids_init(&ids);
    br_ids_init(&back);
    uint64_t v[] = {1, 2, 3, 5, 7, 8, 100};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert_int_eq(br_ids_add(&ids, v[i]), 0);
    ck_assert_int_eq(br_ids_add(&ids, 100), -EINVAL); /* increasing only */
    char text[128];
    ck_assert_int_gt(br_ids_format(&ids, text, sizeof text), 0);
    ck_assert_str_eq(text, "1-3,5,7-8,100");
    ck_assert_int_eq(br_ids_parse(text, 100, &back), 0);
    ck_assert_uint_eq(back.count, 7);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        ck_assert(br_ids_contains(&back, v[i]));
    ck_assert(!br_ids_contains(&back, 4));
    ck_assert_uint_eq(br_ids_last(&back), 100);
    ck_assert_int_eq(br_ids_format(&ids, text, 6), -ENOSPC);
    /* what the fits check says is what format does */
    ck_assert(br_ids_fits(&ids, 101, 18)); /* "1-3,5,7-8,100-101" is 17 */
    ck_assert(!br_ids_fits(&ids, 101, 17));
    ck_assert(br_ids_fits(&ids, 200, 18)); /* "1-3,5,7-8,100,200" */
    const char *bad[] = {"",
                         "0",
                         "3-1",
                         "1,1",
                         "2,1",
                         "1-2,2",
                         "a",
                         "1-",
                         "-1",
                         "1,,2",
                         ",1",
                         "99999999999999999999",
                         "9223372036854775808",
                         "1-200"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(br_ids_parse(bad[i], 100, &back) == -EBADMSG, "'%s' accepted", bad[i]);
    br_ids_free(&ids);
    br_ids_free(&back);
}
END_TEST

START_TEST(frame_entries_are_read_back_and_checked)
{
    unsigned char buf[512];
    struct br_entry a = {.id = 5, .committed_ns = 10, .expires_ns = 0, .size = 3, .data = "abc"};
    struct br_entry b = {.id = 6, .committed_ns = 11, .expires_ns = 99, .replaces = 5, .size = 0};
    size_t len = 0;
    br_entry_put(buf, &a);
    len += br_entry_length(a.size);
    br_entry_put(buf + len, &b);
    len += br_entry_length(b.size);
    size_t off = 0;
    struct br_entry e;
    ck_assert_int_eq(br_frame_next(buf, len, &off, &e), 1);
    ck_assert_uint_eq(e.id, 5);
    ck_assert_uint_eq(e.size, 3);
    ck_assert_mem_eq(e.data, "abc", 3);
    ck_assert_int_eq(br_frame_next(buf, len, &off, &e), 1);
    ck_assert_uint_eq(e.replaces, 5);
    ck_assert_int_eq(e.expires_ns, 99);
    ck_assert_int_eq(br_frame_next(buf, len, &off, &e), 0);
    /* cut short, or a size past the end */
    off = 0;
    ck_assert_int_eq(br_frame_next(buf, 30, &off, &e), -EBADMSG);
    off = 0;
    ck_assert_int_eq(br_frame_next(buf, br_entry_length(3) - 1, &off, &e), -EBADMSG);
    buf[32] = 0xff; /* size of the first entry: huge */
    off = 0;
    ck_assert_int_eq(br_frame_next(buf, len, &off, &e), -EBADMSG);
}
END_TEST

static natsMsg *msg_with(const char *subject, const void *data, int len, const char *const *kv)
{
    natsMsg *m = NULL;
    ck_assert_int_eq(natsMsg_Create(&m, subject, NULL, data, len), NATS_OK);
    for (; kv && kv[0]; kv += 2)
        ck_assert_int_eq(natsMsgHeader_Add(m, kv[0], kv[1]), NATS_OK);
    return m;
}

START_TEST(headers_round_trip)
{
    struct br_msg in, out;
    br_msg_init(&in);
    br_msg_init(&out);
    in.kind = BR_PART;
    in.uid = 0x0123456789abcdefULL;
    in.id = 42;
    in.committed_ns = 1000;
    in.expires_ns = 2000;
    in.replaces = 7;
    in.size = 10;
    in.offset = 4;
    in.part = 1;
    in.nparts = 3;
    strcpy(in.name, "cfg.main");
    natsMsg *m = msg_with("x", "abcd", 4, NULL);
    ck_assert_int_eq(br_set_headers(m, &in, NULL), 0);
    char why[128];
    ck_assert_int_eq(br_parse(m, &out, why, sizeof why), 0);
    ck_assert_int_eq(out.kind, BR_PART);
    ck_assert_uint_eq(out.uid, in.uid);
    ck_assert_uint_eq(out.id, 42);
    ck_assert_int_eq(out.committed_ns, 1000);
    ck_assert_int_eq(out.expires_ns, 2000);
    ck_assert_uint_eq(out.replaces, 7);
    ck_assert_uint_eq(out.size, 10);
    ck_assert_uint_eq(out.offset, 4);
    ck_assert_uint_eq(out.part, 1);
    ck_assert_uint_eq(out.nparts, 3);
    ck_assert_str_eq(out.name, "cfg.main");
    natsMsg_Destroy(m);
    br_msg_free(&in);
    br_msg_free(&out);
}
END_TEST

START_TEST(malformed_headers_are_refused_with_a_reason)
{
    static const char *const cases[][20] = {
        {"Speculo-Bridge", "2", "Speculo-Kind", "chunk", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "bogus", "Speculo-Uid", "0123456789abcdef", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "chunk", "Speculo-Uid", "0123", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "chunk", "Speculo-Uid", "0000000000000000", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "chunk", "Speculo-Uid", "0123456789abcdef",
         "Speculo-Id", "0", "Speculo-Committed", "1", "Speculo-Expires", "0", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "chunk", "Speculo-Uid", "0123456789abcdef",
         "Speculo-Id", "9223372036854775808", "Speculo-Committed", "1", "Speculo-Expires", "0",
         NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "chunk", "Speculo-Uid", "0123456789abcdef",
         "Speculo-Id", "5", "Speculo-Committed", "-1", "Speculo-Expires", "0", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "chunk", "Speculo-Uid", "0123456789abcdef",
         "Speculo-Id", "5", "Speculo-Committed", "1", "Speculo-Expires", "0", "Speculo-Name",
         "9bad", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "chunk", "Speculo-Uid", "0123456789abcdef",
         "Speculo-Id", "5", "Speculo-Committed", "1", "Speculo-Expires", "0", "Speculo-Replaces",
         "5", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "part", "Speculo-Uid", "0123456789abcdef",
         "Speculo-Id", "5", "Speculo-Committed", "1", "Speculo-Expires", "0", "Speculo-Part", "3/3",
         "Speculo-Size", "10", "Speculo-Offset", "0", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "part", "Speculo-Uid", "0123456789abcdef",
         "Speculo-Id", "5", "Speculo-Committed", "1", "Speculo-Expires", "0", "Speculo-Part", "0/2",
         "Speculo-Size", "2", "Speculo-Offset", "0", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "frame", "Speculo-Uid", "0123456789abcdef",
         "Speculo-Expires", "0", "Speculo-Ids", "1-100000", NULL},
        {"Speculo-Bridge", "1", "Speculo-Kind", "obsolete", "Speculo-Uid", "0123456789abcdef",
         NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        natsMsg *m = msg_with("x", "abcd", 4, cases[i]);
        struct br_msg out;
        br_msg_init(&out);
        char why[128] = "";
        ck_assert_msg(br_parse(m, &out, why, sizeof why) == -EBADMSG, "case %zu accepted", i);
        ck_assert_msg(why[0], "case %zu: no reason given", i);
        br_msg_free(&out);
        natsMsg_Destroy(m);
    }
    natsMsg *m = msg_with("x", "abcd", 4, NULL);
    struct br_msg out;
    br_msg_init(&out);
    char why[128];
    ck_assert_int_eq(br_parse(m, &out, why, sizeof why), -EPROTO); /* not ours at all */
    natsMsg_Destroy(m);
    br_msg_free(&out);
}
END_TEST

TCase *tb_case_proto(void)
{
    TCase *tc = tcase_create("proto");
    tcase_add_test(tc, names_escape_reversibly_into_subject_tokens);
    tcase_add_test(tc, stream_names_come_from_segments_and_are_checked);
    tcase_add_test(tc, id_lists_round_trip_as_ranges);
    tcase_add_test(tc, frame_entries_are_read_back_and_checked);
    tcase_add_test(tc, headers_round_trip);
    tcase_add_test(tc, malformed_headers_are_refused_with_a_reason);
    return tc;
}
