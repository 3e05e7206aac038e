/*
 * Bad segments: corrupt, of another version, truncated at rest, truncated
 * under an open file. Each shows as a directory holding .info, which says
 * what is wrong; its chunks give EIO; the server keeps serving the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "t_fuse.h"
#include "t_seg.h"
#include "t_util.h"

#define KiB ((size_t)1024)

static void write_file(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
    close(fd);
}

/* A copy of a valid segment's file, cut to @keep bytes (0: whole). */
static void copy_segment(const char *from, const char *to, size_t keep)
{
    char src[PATH_MAX], dst[PATH_MAX];
    struct stat st;
    char *buf;
    ssize_t n;

    tf_seg_path(src, from);
    ck_assert_int_eq(stat(src, &st), 0);
    buf = malloc((size_t)st.st_size);
    ck_assert_ptr_nonnull(buf);
    n = tf_read_file(src, buf, (size_t)st.st_size);
    ck_assert_int_eq(n, st.st_size);
    write_file(tf_seg_path(dst, to), buf, keep ? keep : (size_t)n);
    free(buf);
}

static void good_segment(const char *name, const char *chunk, const char *text)
{
    speculo_writer *w = tf_writer(name, 0, 0);

    tf_put_str(w, chunk, text);
    speculo_writer_close(w);
}

/* A bad segment: listed, holds only .info, which says "status: error";
 * its chunks give EIO. */
static void check_bad(const char *seg)
{
    char p[PATH_MAX], names[1024], text[4096];
    ssize_t n;

    ck_assert_int_eq(tf_dir_has(tf_m.mnt, seg), 1);
    ck_assert_int_eq(tf_dir_names(tf_path(p, seg, NULL), names, sizeof names), 1);
    ck_assert_str_eq(names, ".info");
    n = tf_read_file(tf_path(p, seg, ".info"), text, sizeof text - 1);
    ck_assert_int_gt(n, 0);
    text[n] = '\0';
    ck_assert_msg(strstr(text, "status: error") != NULL, "%s/.info:\n%s", seg, text);
    ck_assert_ptr_nonnull(strstr(text, "error: "));
    ck_assert_int_eq(tf_stat_err(tf_path(p, seg, "00000000000000000001")), -EIO);
    ck_assert_int_eq(tf_stat_err(tf_path(p, seg, "hello")), -EIO);
}

static void check_good(const char *seg, const char *chunk, const char *text)
{
    char p[PATH_MAX], buf[256];

    ck_assert_int_eq(tf_read_file(tf_path(p, seg, chunk), buf, sizeof buf), (ssize_t)strlen(text));
    ck_assert(memcmp(buf, text, strlen(text)) == 0);
}

START_TEST(test_corrupt_next_to_good)
{
    char garbage[64 * KiB], p[PATH_MAX], names[1024];
    uint32_t version = SPECULO_FORMAT_VERSION + 41;

    good_segment("good", "hello", "still served");
    good_segment("model", "hello", "x");
    t_fill(garbage, sizeof garbage, 3);
    write_file(tf_seg_path(p, "garbage"), garbage, sizeof garbage);
    write_file(tf_seg_path(p, "empty"), "", 0);
    copy_segment("model", "short", 100);
    copy_segment("model", "cut", 8192);
    copy_segment("model", "future", 0);
    ck_assert_int_eq(t_seg_pwrite("future", offsetof(struct seg_header, version), &version,
                                  sizeof version), 0);
    ck_assert_int_eq(speculo_segment_remove("model", 0), 0);

    ck_assert_int_eq(tf_dir_names(tf_m.mnt, names, sizeof names), 6);
    ck_assert_str_eq(names, "cut\nempty\nfuture\ngarbage\ngood\nshort");
    check_bad("garbage");
    check_bad("empty");
    check_bad("short");
    check_bad("cut");
    check_bad("future");
    check_good("good", "hello", "still served");
}
END_TEST

/* The segment file is truncated by someone else while the server has it
 * mapped for open files: their reads fail with EIO, a large one (spliced
 * from the file) and a small one (from the mapping) alike, nothing else
 * does, and the server lives on. */
START_TEST(test_truncated_under_reader)
{
    const size_t size = 1024 * KiB;
    char p[PATH_MAX], text[4096], *buf = malloc(size);
    speculo_writer *w = tf_writer("doomed", 0, 0);
    int fd, small;
    ssize_t n;

    ck_assert_ptr_nonnull(buf);
    good_segment("bystander", "hello", "unharmed");
    t_fill(buf, size, 9);
    tf_put(w, "big", buf, size, 0);
    tf_put_str(w, "small", "small");
    speculo_writer_close(w); /* the writer's mapping must not be touched after */

    fd = open(tf_path(p, "doomed", "big"), O_RDONLY);
    ck_assert_int_ge(fd, 0);
    small = open(tf_path(p, "doomed", "small"), O_RDONLY);
    ck_assert_int_ge(small, 0);
    ck_assert_int_eq(t_seg_truncate("doomed", 8192), 0);
    n = read(fd, buf, size);
    ck_assert_msg(n == -1 && errno == EIO, "read: %zd %s", n, strerror(errno));
    n = read(fd, buf, 4096);
    ck_assert_msg(n == -1 && errno == EIO, "second read: %zd %s", n, strerror(errno));
    n = read(small, buf, 4096);
    ck_assert_msg(n == -1 && errno == EIO, "small read: %zd %s", n, strerror(errno));
    close(fd);
    close(small);

    check_good("bystander", "hello", "unharmed");
    ck_assert_int_eq(tf_stat_err(tf_path(p, "doomed", NULL)), 0);
    n = tf_read_file(tf_path(p, "doomed", ".info"), text, sizeof text - 1);
    ck_assert_int_gt(n, 0);
    text[n] = '\0';
    ck_assert_msg(strstr(text, "status: error") != NULL, ".info:\n%s", text);
    n = tf_read_file(tf_path(p, "doomed", "big"), buf, size);
    ck_assert_int_lt(n, 0);
    ck_assert_int_ge(tf_dir_names(tf_path(p, "doomed", NULL), text, sizeof text), 1);
    ck_assert_int_eq(tf_dir_has(tf_m.mnt, "bystander"), 1);
    check_good("bystander", "hello", "unharmed");
    free(buf);
}
END_TEST

/* The same, with the file opened after the server mapped the segment for
 * lookups (its pooled readers fault, not only an open file's). */
START_TEST(test_truncated_under_lookups)
{
    char p[PATH_MAX], names[1024];
    speculo_writer *w = tf_writer("shrinking", 0, 0);

    good_segment("bystander", "hello", "unharmed");
    for (int i = 0; i < 1000; i++)
        tf_put_str(w, NULL, "some chunk text of some length");
    tf_put_str(w, "last", "last one");
    speculo_writer_close(w);
    check_good("shrinking", "last", "last one");
    ck_assert_int_eq(t_seg_truncate("shrinking", 8192), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_ne(tf_stat_err(tf_path(p, "shrinking", "last")), 0);
        tf_dir_names(tf_path(p, "shrinking", NULL), names, sizeof names);
        check_good("bystander", "hello", "unharmed");
    }
}
END_TEST

/* The segment file is rewritten in place (same inode, same size, as by
 * `cat junk > SEG` or `cp OTHER SEG`) while the server has it mapped for
 * lookups and for an open file. The server must keep to the layout it
 * checked when it mapped the file, not read the new header's: it died of
 * SIGSEGV here (found by fuzz_fs; docs/RELIABILITY.md, bug 4). Lookups and
 * reads of that segment may then fail; the server serves the rest. */
START_TEST(test_rewritten_in_place)
{
    char p[PATH_MAX], names[1024], buf[64], *junk;
    speculo_writer *w = tf_writer("rewritten", 64 * KiB, 0);
    struct stat st;
    int fd;

    good_segment("bystander", "hello", "unharmed");
    for (int i = 0; i < 200; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i % 40);
        tf_put_str(w, name, "data");
    }
    speculo_writer_close(w);
    check_good("rewritten", "n1", "data");
    fd = open(tf_path(p, "rewritten", "n2"), O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(stat(tf_seg_path(p, "rewritten"), &st), 0);
    junk = malloc((size_t)st.st_size);
    ck_assert_ptr_nonnull(junk);
    t_fill(junk, (size_t)st.st_size, 5);
    write_file(p, junk, (size_t)st.st_size);
    for (int i = 0; i < 3; i++) {
        (void)tf_stat_err(tf_path(p, "rewritten", "n1"));
        (void)tf_stat_err(tf_path(p, "rewritten", "00000000000000000003"));
        (void)tf_dir_names(tf_path(p, "rewritten", NULL), names, sizeof names);
        (void)pread(fd, buf, sizeof buf, 0);
        check_good("bystander", "hello", "unharmed");
    }
    close(fd);
    free(junk);
}
END_TEST

Suite *tf_suite_faults(void)
{
    Suite *s = suite_create("faults");

    suite_add_tcase(s, tf_tcase("corrupt_next_to_good", test_corrupt_next_to_good, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("truncated_under_reader", test_truncated_under_reader, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("truncated_under_lookups", test_truncated_under_lookups, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("rewritten_in_place", test_rewritten_in_place, tf_setup, 20));
    return s;
}
