/*
 * SEG/.all: every record still in the segment file, live or dead, by its
 * id, with its state in user.speculo.state; gone once the collector drops
 * it, but a file open on it reads to its end; not shown by ls without -a,
 * and read-only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "t_fuse.h"
#include "t_util.h"

#define MS INT64_C(1000000)

/* MNT/@seg/.all/ID */
static const char *record_path(char *buf, const char *seg, uint64_t id)
{
    char id20[24], name[32];

    snprintf(name, sizeof name, ".all/%s", tf_idname(id20, id));
    return tf_path(buf, seg, name);
}

static void check_state(const char *seg, uint64_t id, const char *want)
{
    char p[PATH_MAX];

    tf_check_xattr(record_path(p, seg, id), "user.speculo.state", want);
}

static void check_bytes(const char *seg, uint64_t id, const char *want)
{
    char p[PATH_MAX], buf[256];
    ssize_t n = tf_read_file(record_path(p, seg, id), buf, sizeof buf);

    ck_assert_msg(n == (ssize_t)strlen(want), "%s: %zd bytes, want %zu", p, n, strlen(want));
    ck_assert(memcmp(buf, want, strlen(want)) == 0);
}

/* The ids of @ids as 20-digit names, sorted, joined by '\n' (as
 * tf_dir_names() gives them). */
static const char *idnames(char *buf, size_t size, const uint64_t *ids, size_t n)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char name[24];
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "\n" : "",
                                 tf_idname(name, ids[i]));
        ck_assert_uint_lt(used, size);
    }
    return buf;
}

/* A record of each state: live, expired, obsoleted by a newer version of
 * its name, by a chunk's `replaces`, and explicitly. */
struct states {
    uint64_t live, brief, v1, v2, old, new, gone;
};

static speculo_writer *make_states(const char *seg, struct states *s)
{
    speculo_writer *w = tf_writer(seg, 0, 0);
    struct speculo_commit_options o = {0};
    int64_t expired;

    s->live = tf_put_str(w, NULL, "live");
    s->brief = tf_put(w, NULL, "brief", 5, MS);
    expired = t_expired_by(MS);
    s->v1 = tf_put_str(w, "status", "v1");
    s->v2 = tf_put_str(w, "status", "v2");
    s->old = tf_put_str(w, NULL, "old");
    o.replaces = s->old;
    ck_assert_int_eq(speculo_writer_put(w, "new", 3, &o, &s->new), 0);
    s->gone = tf_put_str(w, NULL, "gone");
    ck_assert_int_eq(speculo_writer_obsolete(w, s->gone), 0);
    t_sleep_until_real(expired);
    return w;
}

START_TEST(test_each_state_visible)
{
    char p[PATH_MAX], want[32], names[1024], expect[1024];
    struct states s;
    speculo_writer *w = make_states("dbg", &s);
    uint64_t all[] = {s.live, s.brief, s.v1, s.v2, s.old, s.new, s.gone};

    ck_assert_int_eq(tf_dir_names(tf_path(p, "dbg", ".all"), names, sizeof names), 7);
    ck_assert_str_eq(names, idnames(expect, sizeof expect, all, 7));
    check_state("dbg", s.live, "live");
    check_state("dbg", s.brief, "expired");
    snprintf(want, sizeof want, "obsolete>%" PRIu64, s.v2);
    check_state("dbg", s.v1, want);
    check_state("dbg", s.v2, "live");
    snprintf(want, sizeof want, "obsolete>%" PRIu64, s.new);
    check_state("dbg", s.old, want);
    check_state("dbg", s.new, "live");
    check_state("dbg", s.gone, "obsolete");
    /* the other attributes, as on chunk files */
    snprintf(want, sizeof want, "%" PRIu64, s.v1);
    tf_check_xattr(record_path(p, "dbg", s.v1), "user.speculo.id", want);
    tf_check_xattr(record_path(p, "dbg", s.v2), "user.speculo.replaces", want);
    ck_assert_int_gt(getxattr(record_path(p, "dbg", s.brief), "user.speculo.expires", NULL, 0), 0);
    ck_assert_int_eq(listxattr(record_path(p, "dbg", s.gone), names, sizeof names),
                     (ssize_t)(sizeof "user.speculo.id" + sizeof "user.speculo.state"));
    /* the bytes of the dead ones */
    check_bytes("dbg", s.brief, "brief");
    check_bytes("dbg", s.v1, "v1");
    check_bytes("dbg", s.old, "old");
    check_bytes("dbg", s.gone, "gone");
    speculo_writer_close(w);
}
END_TEST

/* .all adds nothing to what SEG/ shows without -a. */
START_TEST(test_hidden_from_ls)
{
    char cmd[2 * PATH_MAX], out[4096], p[PATH_MAX];
    struct states s;
    speculo_writer *w = make_states("dbg", &s);
    struct stat st;

    snprintf(cmd, sizeof cmd, "export LC_ALL=C; cd '%s' && ls dbg && ls -l dbg | wc -l && ls -a dbg",
             tf_m.mnt);
    ck_assert_int_eq(tf_sh(cmd, out, sizeof out), 0);
    ck_assert_str_eq(out, "00000000000000000001\n00000000000000000006\nstatus\n"
                          "4\n"
                          ".\n..\n.all\n.info\n00000000000000000001\n00000000000000000006\nstatus\n");
    ck_assert_int_eq(stat(tf_path(p, "dbg", ".all"), &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0500); /* a 0600 segment's */
    speculo_writer_close(w);
}
END_TEST

/* Dead records are gone from .all after a collection; live ones stay. */
START_TEST(test_collection_drops_dead)
{
    char p[PATH_MAX], names[1024], expect[1024];
    struct states s;
    speculo_writer *w = make_states("dbg", &s);

    ck_assert_int_eq(speculo_writer_gc(w), 0);
    uint64_t live[] = {s.live, s.v2, s.new};
    ck_assert_int_eq(tf_dir_names(tf_path(p, "dbg", ".all"), names, sizeof names), 3);
    ck_assert_str_eq(names, idnames(expect, sizeof expect, live, 3));
    ck_assert_int_eq(tf_stat_err(record_path(p, "dbg", s.brief)), -ENOENT);
    ck_assert_int_eq(tf_stat_err(record_path(p, "dbg", s.v1)), -ENOENT);
    ck_assert_int_eq(tf_stat_err(record_path(p, "dbg", s.old)), -ENOENT);
    ck_assert_int_eq(open(record_path(p, "dbg", s.gone), O_RDONLY), -1);
    ck_assert_int_eq(errno, ENOENT);
    check_state("dbg", s.v2, "live");
    check_bytes("dbg", s.v2, "v2");
    check_bytes("dbg", s.new, "new");
    speculo_writer_close(w);
}
END_TEST

/* A dead record opened before the collection reads to its end after it,
 * page by page from the server (no read-ahead, nothing cached). */
START_TEST(test_open_record_survives_collection)
{
    enum { SIZE = 256 << 10 };
    char p[PATH_MAX];
    speculo_writer *w = tf_writer("big", 0, 0);
    unsigned char *want = malloc(SIZE), *got = malloc(SIZE);
    uint64_t id;
    size_t done = 0;
    int fd;

    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    t_fill(want, SIZE, 7);
    id = tf_put(w, NULL, want, SIZE, 0);
    ck_assert_int_eq(speculo_writer_obsolete(w, id), 0);
    fd = open(record_path(p, "big", id), O_RDONLY);
    ck_assert_msg(fd >= 0, "%s: %s", p, strerror(errno));
    ck_assert_int_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(tf_stat_err(p), -ENOENT);
    while (done < SIZE) {
        ssize_t n = pread(fd, got + done, 4096, (off_t)done);
        ck_assert_msg(n > 0, "pread at %zu: %zd (%s)", done, n, strerror(errno));
        done += (size_t)n;
    }
    ck_assert_int_eq(pread(fd, got, 1, SIZE), 0);
    ck_assert(memcmp(got, want, SIZE) == 0);
    close(fd);
    free(want);
    free(got);
    speculo_writer_close(w);
}
END_TEST

START_TEST(test_read_only)
{
    char p[PATH_MAX], q[PATH_MAX], dir[PATH_MAX];
    speculo_writer *w = tf_writer("ro", 0, 0);
    uint64_t id = tf_put_str(w, NULL, "contents");

    ck_assert_int_eq(speculo_writer_obsolete(w, id), 0);
    record_path(p, "ro", id);
    tf_path(q, "ro", ".all/other");
    tf_path(dir, "ro", ".all");
    tf_expect_erofs(open(p, O_WRONLY), "open O_WRONLY");
    tf_expect_erofs(open(p, O_RDWR), "open O_RDWR");
    tf_expect_erofs(open(p, O_RDONLY | O_TRUNC), "open O_TRUNC");
    tf_expect_erofs(open(q, O_WRONLY | O_CREAT, 0644), "creat");
    tf_expect_erofs(unlink(p), "unlink");
    tf_expect_erofs(rename(p, q), "rename");
    tf_expect_erofs(mkdir(q, 0700), "mkdir");
    tf_expect_erofs(rmdir(dir), "rmdir");
    tf_expect_erofs(chmod(p, 0777), "chmod");
    tf_expect_erofs(chmod(dir, 0777), "chmod .all");
    tf_expect_erofs(truncate(p, 0), "truncate");
    tf_expect_erofs(setxattr(p, "user.speculo.state", "live", 4, 0), "setxattr");
    check_bytes("ro", id, "contents");
    speculo_writer_close(w);
}
END_TEST

Suite *tf_suite_all(void)
{
    Suite *s = suite_create("all");

    suite_add_tcase(s, tf_tcase("each_state_visible", test_each_state_visible, tf_setup, 30));
    suite_add_tcase(s, tf_tcase("hidden_from_ls", test_hidden_from_ls, tf_setup, 30));
    suite_add_tcase(s, tf_tcase("collection_drops_dead", test_collection_drops_dead, tf_setup, 30));
    suite_add_tcase(s, tf_tcase("open_record_survives_collection",
                                test_open_record_survives_collection, tf_setup, 30));
    suite_add_tcase(s, tf_tcase("read_only", test_read_only, tf_setup, 30));
    return s;
}
