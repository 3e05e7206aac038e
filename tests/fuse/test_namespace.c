/*
 * What the tree looks like: segments, chunk names, .info, attributes,
 * extended attributes, read-only-ness, shell tools, privacy of the mount.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "t_fuse.h"
#include "t_util.h"

static void make_file(const char *path, mode_t mode, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Segments show as directories; reserved dot files, bad names and
 * anything that is not a regular file do not. */
START_TEST(test_root_lists_segments)
{
    char p[PATH_MAX], names[4096];
    speculo_writer *a = tf_writer("alpha", 0, 0), *b = tf_writer("beta", 0, 0);
    struct stat st;

    tf_put_str(a, NULL, "a");
    tf_put_str(b, NULL, "b");
    make_file(tf_seg_path(p, ".gc-tmp"), 0600, "x");
    make_file(tf_seg_path(p, "bad name"), 0600, "x");
    ck_assert_int_eq(mkdir(tf_seg_path(p, "subdir"), 0700), 0);
    ck_assert_int_eq(tf_dir_names(tf_m.mnt, names, sizeof names), 2);
    ck_assert_str_eq(names, "alpha\nbeta");
    ck_assert_int_eq(stat(tf_path(p, "alpha", NULL), &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(tf_stat_err(tf_path(p, ".gc-tmp", NULL)), -ENOENT);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "bad name", NULL)), -ENOENT);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "subdir", NULL)), -ENOENT);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "gamma", NULL)), -ENOENT);
    speculo_writer_close(a);
    speculo_writer_close(b);
}
END_TEST

/* A segment is there as soon as it is created, gone moments after it is
 * removed (the kernel may cache its name until speculofs takes it back;
 * the listing, never cached, at once); created again, it is a new
 * directory whose chunk 1 is the new chunk 1 (not the old one from the
 * kernel's page cache). */
START_TEST(test_segment_appears_and_disappears)
{
    char p[PATH_MAX], id1[24], buf[64];
    struct stat st1, st2;

    for (int round = 0; round < 3; round++) {
        speculo_writer *w = tf_writer("comes-and-goes", 0, 0);
        char text[32];
        snprintf(text, sizeof text, "round %d", round);
        ck_assert_int_eq(stat(tf_path(p, "comes-and-goes", NULL), &st1), 0);
        ck_assert_int_eq(tf_dir_has(tf_m.mnt, "comes-and-goes"), 1);
        tf_put_str(w, NULL, text);
        tf_path(p, "comes-and-goes", tf_idname(id1, 1));
        ck_assert_int_eq(tf_read_file(p, buf, sizeof buf), (ssize_t)strlen(text));
        ck_assert(memcmp(buf, text, strlen(text)) == 0);
        ck_assert_int_eq(stat(p, &st2), 0);
        speculo_writer_close(w);
        ck_assert_int_eq(speculo_segment_remove("comes-and-goes", 0), 0);
        ck_assert_int_eq(tf_dir_has(tf_m.mnt, "comes-and-goes"), 0);
        ck_assert_int_eq(tf_wait_stat(tf_path(p, "comes-and-goes", NULL), -ENOENT, T_PATIENCE_MS,
                                      NULL),
                         -ENOENT);
    }
}
END_TEST

/* A re-created segment gets new inode numbers (moments after: the kernel
 * may show what it cached of the old one until speculofs takes it back). */
START_TEST(test_recreated_segment_is_new)
{
    char p[PATH_MAX], id1[24];
    struct stat d1, d2, c1, c2;
    speculo_writer *w = tf_writer("again", 0, 0);

    tf_put_str(w, NULL, "first");
    ck_assert_int_eq(stat(tf_path(p, "again", NULL), &d1), 0);
    ck_assert_int_eq(stat(tf_path(p, "again", tf_idname(id1, 1)), &c1), 0);
    speculo_writer_close(w);
    ck_assert_int_eq(speculo_segment_remove("again", 0), 0);
    w = tf_writer("again", 0, 0);
    tf_put_str(w, NULL, "second!");
    for (int64_t t0 = t_mono_ns(); t_ms_since(t0) < T_PATIENCE_MS; t_sleep_ms(1))
        if (stat(tf_path(p, "again", NULL), &d2) == 0 && d2.st_ino != d1.st_ino)
            break;
    ck_assert_int_eq(stat(tf_path(p, "again", NULL), &d2), 0);
    ck_assert_int_eq(stat(tf_path(p, "again", id1), &c2), 0);
    ck_assert(d1.st_ino != d2.st_ino);
    ck_assert(c1.st_ino != c2.st_ino);
    ck_assert_int_eq(c2.st_size, 7);
    speculo_writer_close(w);
}
END_TEST

/* Unnamed chunks by 20-digit id, named ones by name only, in commit order. */
START_TEST(test_chunk_names)
{
    char p[PATH_MAX], id[24], names[4096];
    speculo_writer *w = tf_writer("names", 0, 0);
    DIR *d;
    struct dirent *de;
    const char *want[] = {".", "..", ".info", ".all", "00000000000000000001",
                          "00000000000000000002", "config", "00000000000000000004"};
    size_t n = 0;

    tf_put_str(w, NULL, "one");
    tf_put_str(w, NULL, "two");
    ck_assert_uint_eq(tf_put_str(w, "config", "three"), 3);
    tf_put_str(w, NULL, "four");
    d = opendir(tf_path(p, "names", NULL));
    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL) {
        ck_assert_uint_lt(n, sizeof want / sizeof want[0]);
        ck_assert_str_eq(de->d_name, want[n]);
        n++;
    }
    closedir(d);
    ck_assert_uint_eq(n, sizeof want / sizeof want[0]);
    ck_assert_int_eq(tf_dir_names(tf_path(p, "names", NULL), names, sizeof names), 6);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "names", tf_idname(id, 3))), -ENOENT);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "names", "1")), -ENOENT);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "names", "0000000000000000001")), -ENOENT);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "names", ".hidden")), -ENOENT);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "names", "nope")), -ENOENT);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "names", "config")), 0);
    speculo_writer_close(w);
}
END_TEST

/* .info is speculo_segment_describe()'s text; its size is the text's;
 * reading at an offset works. */
START_TEST(test_info_file)
{
    char p[PATH_MAX], want[8192], got[8192];
    speculo_writer *w = tf_writer("described", 0, 0);
    struct stat st;
    int len;
    int fd;

    tf_put_str(w, "x", "y");
    speculo_writer_close(w);
    len = speculo_segment_describe("described", want, sizeof want);
    ck_assert_int_gt(len, 0);
    tf_path(p, "described", ".info");
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, len);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(tf_read_file(p, got, sizeof got), len);
    ck_assert(memcmp(got, want, (size_t)len) == 0);
    ck_assert_ptr_nonnull(strstr(got, "generation"));
    fd = open(p, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, got, 10, 5), 10);
    ck_assert(memcmp(got, want + 5, 10) == 0);
    ck_assert_int_eq(pread(fd, got, 10, len), 0);
    close(fd);
}
END_TEST

/* Size, times, owner and modes as speculofs(1) says. */
START_TEST(test_attributes)
{
    char p[PATH_MAX], id[24];
    speculo_writer *w = tf_writer("shared", 0, 0640);
    speculo_reader *r;
    speculo_chunk c;
    struct stat st, seg, again;
    uint64_t cid = tf_put(w, NULL, "12345", 5, 0);

    ck_assert_int_eq(speculo_reader_open("shared", &r), 0);
    ck_assert_int_eq(speculo_reader_get_id(r, cid, &c), 0);
    ck_assert_int_eq(stat(tf_seg_path(p, "shared"), &seg), 0);
    ck_assert_int_eq(stat(tf_path(p, "shared", tf_idname(id, cid)), &st), 0);
    ck_assert_int_eq(st.st_mode, S_IFREG | 0440);
    ck_assert_int_eq(st.st_size, 5);
    ck_assert_int_eq(st.st_nlink, 1);
    ck_assert_int_eq(st.st_uid, seg.st_uid);
    ck_assert_int_eq(st.st_gid, seg.st_gid);
    ck_assert_int_eq((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, c.committed_ns);
    ck_assert_int_eq((int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec, c.committed_ns);
    ck_assert_int_eq(stat(tf_path(p, "shared", id), &again), 0);
    ck_assert_uint_eq(again.st_ino, st.st_ino);
    ck_assert_int_eq(stat(tf_path(p, "shared", NULL), &st), 0);
    ck_assert_int_eq(st.st_mode, S_IFDIR | 0550);
    /* a mode change reaches what the kernel cached moments later */
    ck_assert_int_eq(chmod(tf_seg_path(p, "shared"), 0600), 0);
    for (int64_t t0 = t_mono_ns(); t_ms_since(t0) < T_PATIENCE_MS; t_sleep_ms(1)) {
        struct stat f;
        ck_assert_int_eq(stat(tf_path(p, "shared", NULL), &st), 0);
        ck_assert_int_eq(stat(tf_path(p, "shared", id), &f), 0);
        if (st.st_mode == (S_IFDIR | 0500) && f.st_mode == (S_IFREG | 0400))
            break;
    }
    ck_assert_int_eq(stat(tf_path(p, "shared", NULL), &st), 0);
    ck_assert_int_eq(st.st_mode, S_IFDIR | 0500);
    ck_assert_int_eq(stat(tf_path(p, "shared", id), &st), 0);
    ck_assert_int_eq(st.st_mode, S_IFREG | 0400);
    ck_assert_int_eq(stat(tf_m.mnt, &st), 0);
    ck_assert_int_eq(st.st_mode, S_IFDIR | 0500); /* the segment dir is 0700 */
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* user.speculo.{id,expires,replaces}: decimal text, absent when there is
 * nothing to say; listxattr agrees; ERANGE and size queries work. */
START_TEST(test_xattrs)
{
    char p[PATH_MAX], id[24], want[32], list[256];
    speculo_writer *w = tf_writer("attrs", 0, 0);
    speculo_reader *r;
    speculo_chunk c;
    struct speculo_commit_options o = {.replaces = 0};
    uint64_t plain = tf_put_str(w, NULL, "plain");
    uint64_t ttl = tf_put(w, NULL, "ttl", 3, 100 * INT64_C(1000000000));
    uint64_t v1 = tf_put_str(w, "cfg", "v1");
    uint64_t v2 = tf_put_str(w, "cfg", "v2"), v3;
    ssize_t n;

    o.replaces = ttl;
    ck_assert_int_eq(speculo_writer_put(w, "r", 1, &o, &v3), 0);

    tf_path(p, "attrs", tf_idname(id, plain));
    snprintf(want, sizeof want, "%" PRIu64, plain);
    tf_check_xattr(p, "user.speculo.id", want);
    tf_check_xattr(p, "user.speculo.expires", NULL);
    tf_check_xattr(p, "user.speculo.replaces", NULL);
    tf_check_xattr(p, "user.other", NULL);
    n = listxattr(p, list, sizeof list);
    ck_assert_int_eq(n, (ssize_t)sizeof "user.speculo.id");
    ck_assert_str_eq(list, "user.speculo.id");
    ck_assert_int_eq(getxattr(p, "user.speculo.id", NULL, 0), (ssize_t)strlen(want));

    /* the chunk with a ttl was obsoleted by v3; look at v2 and v3 */
    tf_path(p, "attrs", "cfg");
    snprintf(want, sizeof want, "%" PRIu64, v2);
    tf_check_xattr(p, "user.speculo.id", want);
    snprintf(want, sizeof want, "%" PRIu64, v1);
    tf_check_xattr(p, "user.speculo.replaces", want);
    n = listxattr(p, list, sizeof list);
    ck_assert_int_eq(n, (ssize_t)(sizeof "user.speculo.id" + sizeof "user.speculo.replaces"));
    ck_assert_int_eq(listxattr(p, NULL, 0), n);
    ck_assert_int_eq(listxattr(p, list, 3), -1);
    ck_assert_int_eq(errno, ERANGE);

    tf_path(p, "attrs", tf_idname(id, v3));
    snprintf(want, sizeof want, "%" PRIu64, ttl);
    tf_check_xattr(p, "user.speculo.replaces", want);

    /* expiry, on a chunk that is still live */
    ttl = tf_put(w, NULL, "ttl2", 4, 100 * INT64_C(1000000000));
    ck_assert_int_eq(speculo_reader_open("attrs", &r), 0);
    ck_assert_int_eq(speculo_reader_get_id(r, ttl, &c), 0);
    snprintf(want, sizeof want, "%" PRId64, c.expires_ns);
    tf_check_xattr(tf_path(p, "attrs", tf_idname(id, ttl)), "user.speculo.expires", want);
    ck_assert_int_eq(getxattr(p, "user.speculo.expires", NULL, 0), (ssize_t)strlen(want));
    ck_assert_int_eq(getxattr(p, "user.speculo.expires", list, 5), -1);
    ck_assert_int_eq(errno, ERANGE);
    speculo_reader_close(r);
    tf_check_xattr(tf_path(p, "attrs", NULL), "user.speculo.id", NULL);
    speculo_writer_close(w);
}
END_TEST

/* Nothing can be changed, by root either. */
START_TEST(test_read_only)
{
    char p[PATH_MAX], q[PATH_MAX], dir[PATH_MAX], buf[16];
    speculo_writer *w = tf_writer("ro", 0, 0);
    struct timeval tv[2] = {{0, 0}, {0, 0}};

    if (geteuid() != 0)
        printf("read_only: not root: EROFS for root not tested\n");
    tf_put_str(w, "name", "contents");
    tf_path(p, "ro", "name");
    tf_path(q, "ro", "other");
    tf_path(dir, "ro", NULL);
    tf_expect_erofs(open(p, O_WRONLY), "open O_WRONLY");
    tf_expect_erofs(open(p, O_RDWR), "open O_RDWR");
    tf_expect_erofs(open(p, O_RDONLY | O_TRUNC), "open O_TRUNC");
    tf_expect_erofs(open(p, O_WRONLY | O_APPEND), "open O_APPEND");
    tf_expect_erofs(open(q, O_WRONLY | O_CREAT, 0644), "creat");
    tf_expect_erofs(unlink(p), "unlink");
    tf_expect_erofs(rename(p, q), "rename");
    tf_expect_erofs(link(p, q), "link");
    tf_expect_erofs(symlink("x", q), "symlink");
    tf_expect_erofs(mkdir(tf_path(q, "newseg", NULL), 0700), "mkdir in root");
    tf_expect_erofs(mkdir(tf_path(q, "ro", "sub"), 0700), "mkdir in segment");
    tf_expect_erofs(rmdir(dir), "rmdir");
    tf_expect_erofs(chmod(p, 0777), "chmod");
    tf_expect_erofs(chown(p, 1, 1), "chown");
    tf_expect_erofs(truncate(p, 0), "truncate");
    tf_expect_erofs(utimes(p, tv), "utimes");
    tf_expect_erofs(setxattr(p, "user.x", "1", 1, 0), "setxattr");
    tf_expect_erofs(removexattr(p, "user.speculo.id"), "removexattr");
    tf_expect_erofs(mknod(q, S_IFIFO | 0600, 0), "mknod");
    ck_assert_int_eq(tf_read_file(p, buf, sizeof buf), 8);
    ck_assert(memcmp(buf, "contents", 8) == 0);
    speculo_writer_close(w);
}
END_TEST

/* ls, cat, grep, stat, find from a shell. */
START_TEST(test_shell_tools)
{
    char cmd[4 * PATH_MAX], out[8192], want[1024];
    speculo_writer *w = tf_writer("logs", 0, 0);

    tf_put_str(w, NULL, "alpha line\n");
    tf_put_str(w, NULL, "needle in here\n");
    tf_put_str(w, "status", "all good\n");
    snprintf(cmd, sizeof cmd, "export LC_ALL=C; cd '%s' && ls logs && cat logs/status && grep -l needle logs/* "
             "&& stat -c '%%s %%a' logs/status && find . -type f | sort && wc -c < logs/.info "
             "| tr -d ' ' | grep -q '^[1-9]'", tf_m.mnt);
    ck_assert_int_eq(tf_sh(cmd, out, sizeof out), 0);
    snprintf(want, sizeof want,
             "00000000000000000001\n00000000000000000002\nstatus\n"
             "all good\n"
             "logs/00000000000000000002\n"
             "9 400\n"
             "./logs/.all/00000000000000000001\n./logs/.all/00000000000000000002\n"
             "./logs/.all/00000000000000000003\n"
             "./logs/.info\n./logs/00000000000000000001\n./logs/00000000000000000002\n"
             "./logs/status\n");
    ck_assert_str_eq(out, want);
    speculo_writer_close(w);
}
END_TEST

/* Only the mounting user sees the mount (no allow_other); the kernel
 * checks permissions; the mount is read-only. */
START_TEST(test_private_mount)
{
    char out[8192], cmd[PATH_MAX + 64];
    pid_t pid;

    snprintf(cmd, sizeof cmd, "grep ' %s ' /proc/self/mountinfo", tf_m.mnt);
    ck_assert_int_eq(tf_sh(cmd, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, " ro,"));
    ck_assert_ptr_nonnull(strstr(out, "default_permissions"));
    ck_assert_ptr_null(strstr(out, "allow_other"));
    ck_assert_ptr_nonnull(strstr(out, "fuse.speculofs"));
    if (geteuid() != 0) {
        printf("private_mount: not root: access by another user not tested\n");
        return;
    }
    pid = t_fork();
    if (pid == 0) {
        struct stat st;
        T_CHILD_ASSERT(t_become(65534, 65534) == 0);
        T_CHILD_ASSERT(stat(tf_m.mnt, &st) == -1 && errno == EACCES);
        _exit(0);
    }
    ck_assert_int_eq(t_wait(pid, T_PATIENCE_MS), 0);
}
END_TEST

Suite *tf_suite_namespace(void)
{
    Suite *s = suite_create("namespace");

    suite_add_tcase(s, tf_tcase("root_lists_segments", test_root_lists_segments, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("segment_appears_and_disappears", test_segment_appears_and_disappears, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("recreated_segment_is_new", test_recreated_segment_is_new, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("chunk_names", test_chunk_names, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("info_file", test_info_file, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("attributes", test_attributes, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("xattrs", test_xattrs, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("read_only", test_read_only, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("shell_tools", test_shell_tools, tf_setup, 20));
    suite_add_tcase(s, tf_tcase("private_mount", test_private_mount, tf_setup, 20));
    return s;
}
