/*
 * namespace: segment and chunk names, the segment directory and its
 * safety checks, segment files that are not what they should be, removal,
 * describe, strerror, file descriptors.
 */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "th.h"

#define OTHER_UID 65534
#define OTHER_GID 65534

static void make_name(char *buf, size_t len, char c)
{
    memset(buf, c, len);
    buf[len] = '\0';
}

/* A segment "s" holding one chunk "hello" named "greeting", writer closed. */
static uint64_t make_segment(const char *seg)
{
    speculo_writer *w = th_writer(seg, 0);
    uint64_t id = th_puts(w, "hello", "greeting");
    speculo_writer_close(w);
    return id;
}

/* A reader of seg must see exactly one chunk: "hello". */
static void reader_sees_hello(const char *seg, uint64_t id)
{
    speculo_reader *r = th_reader(seg);
    th_nexts(r, id, "hello");
    th_next_none(r);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "greeting", &c), 0);
    ck_assert_uint_eq(c.id, id);
    speculo_reader_close(r);
}

/* ---- names ---------------------------------------------------------- */

static const char *const bad_segment_names[] = {
    "", ".", "..", ".hidden", ".a.b", "a/b", "/abs", "a b", "a\n", "\x01" "a", "a\x7f",
    "tab\there", "caf\xc3\xa9", "a*", "a:b", "a\\b", "a,b", "~a",
};

START_TEST(segment_name_valid_accepted)
{
    char n200[SPECULO_SEGMENT_NAME_MAX + 1];
    make_name(n200, 200, 'x');
    const char *good[] = {"a", "A", "0", "9lives", "-dash", "_u", "a.b", "a..b", "a-b_c.D9",
                          "end.", n200};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(speculo_segment_name_check(good[i]) == 0, "name '%s' refused: %d",
                      good[i], speculo_segment_name_check(good[i]));
}
END_TEST

START_TEST(segment_name_200_bytes_usable)
{
    char n200[SPECULO_SEGMENT_NAME_MAX + 1];
    make_name(n200, 200, 'q');
    uint64_t id = make_segment(n200);
    reader_sees_hello(n200, id);
    /* Collected (its temporary file has a longer name) and removed. */
    speculo_writer *w = th_writer(n200, 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    speculo_writer_close(w);
    reader_sees_hello(n200, id);
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
    ck_assert_int_eq(speculo_segment_remove(n200, 0), 0);
    ck_assert_int_eq(t_dir_count(t_dir()), 0);
}
END_TEST

START_TEST(segment_name_201_bytes_too_long)
{
    char n201[256], n1000[1001];
    make_name(n201, 201, 'x');
    make_name(n1000, 1000, 'y');
    const char *names[] = {n201, n1000};
    for (int i = 0; i < 2; i++) {
        const char *n = names[i];
        speculo_writer *w = (speculo_writer *)&w;
        speculo_reader *r = (speculo_reader *)&r;
        char buf[64];
        ck_assert_int_eq(speculo_segment_name_check(n), -ENAMETOOLONG);
        ck_assert_int_eq(speculo_writer_open(n, NULL, &w), -ENAMETOOLONG);
        ck_assert_ptr_eq(w, (speculo_writer *)&w); /* untouched on failure */
        ck_assert_int_eq(speculo_reader_open(n, &r), -ENAMETOOLONG);
        ck_assert_ptr_eq(r, (speculo_reader *)&r);
        ck_assert_int_eq(speculo_segment_remove(n, 0), -ENAMETOOLONG);
        ck_assert_int_eq(speculo_segment_describe(n, buf, sizeof(buf)), -ENAMETOOLONG);
    }
    ck_assert_int_eq(t_dir_count(t_dir()), 0);
}
END_TEST

START_TEST(segment_name_invalid_rejected)
{
    for (size_t i = 0; i < sizeof(bad_segment_names) / sizeof(bad_segment_names[0]); i++) {
        const char *n = bad_segment_names[i];
        speculo_writer *w = NULL;
        speculo_reader *r = NULL;
        char buf[64];
        ck_assert_msg(speculo_segment_name_check(n) == -EINVAL, "check('%s') = %d", n,
                      speculo_segment_name_check(n));
        ck_assert_msg(speculo_writer_open(n, NULL, &w) == -EINVAL, "writer_open('%s')", n);
        ck_assert_ptr_null(w);
        ck_assert_msg(speculo_reader_open(n, &r) == -EINVAL, "reader_open('%s')", n);
        ck_assert_ptr_null(r);
        ck_assert_msg(speculo_segment_remove(n, SPECULO_REMOVE_FORCE) == -EINVAL,
                      "remove('%s')", n);
        ck_assert_msg(speculo_segment_describe(n, buf, sizeof(buf)) == -EINVAL,
                      "describe('%s')", n);
    }
    /* Nothing was created, not even through "a/b" or "..". */
    ck_assert_int_eq(t_dir_count(t_dir()), 0);
}
END_TEST

START_TEST(segment_name_null_rejected)
{
    speculo_writer *w = NULL;
    speculo_reader *r = NULL;
    ck_assert_int_eq(speculo_segment_name_check(NULL), -EINVAL);
    ck_assert_int_eq(speculo_writer_open(NULL, NULL, &w), -EINVAL);
    ck_assert_int_eq(speculo_reader_open(NULL, &r), -EINVAL);
    ck_assert_ptr_null(w);
    ck_assert_ptr_null(r);
}
END_TEST

static const char *const bad_chunk_names[] = {
    "", "1abc", "9", "0_", "-a", ".a", ".", "..", "a/b", "a b", "a\t", "a\n", "\x01x",
    "x\x7f", "caf\xc3\xa9", "a*b", "a:b",
};

START_TEST(chunk_name_valid_accepted)
{
    char n255[SPECULO_CHUNK_NAME_MAX + 1];
    make_name(n255, 255, 'n');
    const char *good[] = {"a", "_", "_1", "Z", "z.9-_", "a..b", "x-", n255};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(speculo_chunk_name_check(good[i]) == 0, "chunk name '%s' refused: %d",
                      good[i], speculo_chunk_name_check(good[i]));
}
END_TEST

START_TEST(chunk_name_invalid_rejected)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t keep = th_puts(w, "keep", "keep");
    speculo_reader *r = th_reader("s");
    for (size_t i = 0; i < sizeof(bad_chunk_names) / sizeof(bad_chunk_names[0]); i++) {
        const char *n = bad_chunk_names[i];
        struct speculo_commit_options o = {.name = n};
        uint64_t id = 12345;
        speculo_chunk c;
        ck_assert_msg(speculo_chunk_name_check(n) == -EINVAL, "check('%s') = %d", n,
                      speculo_chunk_name_check(n));
        ck_assert_msg(speculo_writer_put(w, "x", 1, &o, &id) == -EINVAL, "put('%s')", n);
        ck_assert_uint_eq(id, 12345);
        ck_assert_msg(speculo_reader_get(r, n, &c) == -EINVAL, "get('%s')", n);
    }
    ck_assert_int_eq(speculo_chunk_name_check(NULL), -EINVAL);
    /* None of the refused puts left a chunk behind. */
    th_nexts(r, keep, "keep");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(chunk_name_256_bytes_too_long)
{
    char n256[300], n1000[1001];
    make_name(n256, 256, 'a');
    make_name(n1000, 1000, 'b');
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    const char *names[] = {n256, n1000};
    for (int i = 0; i < 2; i++) {
        struct speculo_commit_options o = {.name = names[i]};
        speculo_chunk c;
        ck_assert_int_eq(speculo_chunk_name_check(names[i]), -ENAMETOOLONG);
        ck_assert_int_eq(speculo_writer_put(w, "x", 1, &o, NULL), -ENAMETOOLONG);
        ck_assert_int_eq(speculo_reader_get(r, names[i], &c), -ENAMETOOLONG);
    }
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(chunk_name_255_bytes_round_trip)
{
    char n255[SPECULO_CHUNK_NAME_MAX + 1];
    make_name(n255, 255, 'L');
    speculo_writer *w = th_writer("s", 0);
    uint64_t id = th_puts(w, "long", n255);
    /* A second version too: the name index and the replacement work with it. */
    uint64_t id2 = th_puts(w, "longer", n255);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, n255, &c), 0);
    ck_assert_uint_eq(c.id, id2);
    ck_assert_ptr_nonnull(c.name);
    ck_assert_str_eq(c.name, n255);
    th_chunk_is(&c, "longer", 6);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), id);
    ck_assert_int_eq(speculo_reader_get_id(r, id, &c), -ENOENT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* ---- the segment directory ----------------------------------------- */

START_TEST(segment_dir_from_env)
{
    char buf[PATH_MAX];
    int n = speculo_segment_dir(buf, sizeof(buf));
    ck_assert_int_eq(n, (int)strlen(t_dir()));
    ck_assert_str_eq(buf, t_dir());
    /* Too small a buffer. */
    char small[8];
    ck_assert_int_eq(speculo_segment_dir(small, sizeof(small)), -ENAMETOOLONG);
    ck_assert_int_eq(speculo_segment_dir(buf, strlen(t_dir())), -ENAMETOOLONG);
    ck_assert_int_eq(speculo_segment_dir(buf, strlen(t_dir()) + 1), n);
}
END_TEST

START_TEST(segment_dir_default_per_uid)
{
    char buf[PATH_MAX], want[64];
    unsetenv("SPECULO_DIR");
    snprintf(want, sizeof(want), "/dev/shm/speculo-%u", (unsigned)getuid());
    ck_assert_int_eq(speculo_segment_dir(buf, sizeof(buf)), (int)strlen(want));
    ck_assert_str_eq(buf, want);
    /* An empty SPECULO_DIR is not a directory name: the default applies, or
     * it is refused; it must never mean the current directory silently. */
    setenv("SPECULO_DIR", "", 1);
    int n = speculo_segment_dir(buf, sizeof(buf));
    if (n >= 0)
        ck_assert_msg(n > 0 && buf[0] == '/', "empty SPECULO_DIR gave '%s'", buf);
}
END_TEST

START_TEST(segment_file_made_in_speculo_dir)
{
    char path[PATH_MAX];
    speculo_writer *w = th_writer("seg-1", 0);
    ck_assert_int_eq(t_path(path, sizeof(path), "seg-1"), 0);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ck_assert_uint_eq(st.st_uid, geteuid());
    ck_assert_uint_eq((uint64_t)st.st_size, SPECULO_DEFAULT_CAPACITY);
    speculo_writer_close(w);
    /* Only the segment: nothing else left in the directory. */
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
}
END_TEST

START_TEST(writer_creates_missing_dir_0700)
{
    char sub[PATH_MAX];
    ck_assert_int_eq(t_path(sub, sizeof(sub), "sub"), 0);
    setenv("SPECULO_DIR", sub, 1);
    umask(0); /* the mode must not depend on the umask */

    /* A reader does not create it. */
    speculo_reader *r = NULL;
    ck_assert_int_eq(speculo_reader_open("s", &r), -ENOENT);
    struct stat st;
    ck_assert_int_eq(stat(sub, &st), -1);

    speculo_writer *w = th_writer("s", 0);
    ck_assert_int_eq(lstat(sub, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    ck_assert_uint_eq(st.st_uid, geteuid());
    uint64_t id = th_puts(w, "hello", "greeting");
    speculo_writer_close(w);
    reader_sees_hello("s", id);
}
END_TEST

START_TEST(symlink_dir_refused)
{
    char real[PATH_MAX], link[PATH_MAX];
    ck_assert_int_eq(t_path(real, sizeof(real), "real"), 0);
    ck_assert_int_eq(t_path(link, sizeof(link), "link"), 0);
    ck_assert_int_eq(mkdir(real, 0700), 0);
    setenv("SPECULO_DIR", real, 1);
    make_segment("s");
    ck_assert_int_eq(symlink(real, link), 0);
    setenv("SPECULO_DIR", link, 1);

    speculo_writer *w = NULL;
    speculo_reader *r = NULL;
    char buf[256];
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EPERM);
    ck_assert_int_eq(speculo_writer_open("new", NULL, &w), -EPERM);
    ck_assert_int_eq(speculo_reader_open("s", &r), -EPERM);
    ck_assert_int_eq(speculo_segment_remove("s", SPECULO_REMOVE_FORCE), -EPERM);
    ck_assert_int_eq(speculo_segment_describe("s", buf, sizeof(buf)), -EPERM);
    ck_assert_ptr_null(w);
    ck_assert_ptr_null(r);
    /* Nothing was made or removed behind the link. */
    ck_assert_int_eq(t_dir_count(real), 1);
}
END_TEST

/* "link/", "link/." and the like name the directory the link points to,
 * which open() with O_NOFOLLOW follows: every spelling is refused. */
START_TEST(symlink_dir_refused_however_spelled)
{
    char real[PATH_MAX], link[PATH_MAX], dir[PATH_MAX + 16], why[PATH_MAX + 64];
    ck_assert_int_eq(t_path(real, sizeof(real), "real"), 0);
    ck_assert_int_eq(t_path(link, sizeof(link), "link"), 0);
    ck_assert_int_eq(mkdir(real, 0700), 0);
    ck_assert_int_eq(mkdir(strcat(strcpy(dir, real), "/sub"), 0700), 0);
    setenv("SPECULO_DIR", real, 1);
    make_segment("s");
    ck_assert_int_eq(symlink(real, link), 0);
    const char *spellings[] = {"", "/", "/.", "//", "/./", "/./.", "/sub/..", "/sub/../"};
    for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
        snprintf(dir, sizeof dir, "%s%s", link, spellings[i]);
        setenv("SPECULO_DIR", dir, 1);
        speculo_writer *w = NULL;
        speculo_reader *r = NULL;
        ck_assert_msg(speculo_writer_open("s", NULL, &w) == -EPERM, "writer in %s", dir);
        ck_assert_msg(speculo_reader_open("s", &r) == -EPERM, "reader in %s", dir);
        ck_assert_msg(speculo_segment_remove("s", SPECULO_REMOVE_FORCE) == -EPERM, "rm in %s",
                      dir);
        ck_assert_msg(speculo_dir_check(dir, 0, why, sizeof why) == -EPERM, "check %s", dir);
        ck_assert_msg(strstr(why, "symbolic link") != NULL, "%s: %s", dir, why);
        ck_assert_msg(speculo_dir_check(NULL, 0, NULL, 0) == -EPERM, "check env %s", dir);
    }
    /* through a link to its parent and back: the link is the last name */
    snprintf(dir, sizeof dir, "%s/..", link);
    ck_assert_int_eq(speculo_dir_check(dir, 0, NULL, 0), -EPERM);
    /* the real directory, however spelled, is fine */
    const char *fine[] = {"/", "/.", "/sub/..", "/./sub/./../"};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        snprintf(dir, sizeof dir, "%s%s", real, fine[i]);
        setenv("SPECULO_DIR", dir, 1);
        ck_assert_msg(speculo_dir_check(dir, SPECULO_DIR_WRITER, why, sizeof why) == 0, "%s: %s",
                      dir, why);
        ck_assert_str_eq(why, "");
        reader_sees_hello("s", 1);
    }
    ck_assert_int_eq(t_dir_count(real), 2);
}
END_TEST

START_TEST(dir_check_says_what_is_wrong)
{
    char why[PATH_MAX + 64];
    ck_assert_int_eq(chmod(t_dir(), 0770), 0);
    ck_assert_int_eq(speculo_dir_check(NULL, 0, why, sizeof why), -EPERM);
    ck_assert_str_eq(why, "writable by its group (chmod g-w it)");
    ck_assert_int_eq(chmod(t_dir(), 0702), 0);
    ck_assert_int_eq(speculo_dir_check(t_dir(), 0, why, sizeof why), -EPERM);
    ck_assert_str_eq(why, "writable by others (chmod go-w it)");
    ck_assert_int_eq(chmod(t_dir(), 0700), 0);
    ck_assert_int_eq(speculo_dir_check(t_dir(), 0, why, sizeof why), 0);
    char file[PATH_MAX];
    ck_assert_int_eq(t_path(file, sizeof file, "plain"), 0);
    int fd = open(file, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(speculo_dir_check(file, 0, why, sizeof why), -EPERM);
    ck_assert_str_eq(why, "not a directory");
    ck_assert_int_eq(t_path(file, sizeof file, "missing"), 0);
    ck_assert_int_eq(speculo_dir_check(file, 0, why, sizeof why), -ENOENT);
    ck_assert_int_eq(speculo_dir_check(file, 2, why, sizeof why), -EINVAL);
}
END_TEST

START_TEST(symlink_to_missing_dir_refused)
{
    /* A writer must not create the directory through a dangling link. */
    char link[PATH_MAX], target[PATH_MAX];
    ck_assert_int_eq(t_path(link, sizeof(link), "link"), 0);
    ck_assert_int_eq(t_path(target, sizeof(target), "target"), 0);
    ck_assert_int_eq(symlink(target, link), 0);
    setenv("SPECULO_DIR", link, 1);
    speculo_writer *w = NULL;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EPERM);
    struct stat st;
    ck_assert_int_eq(lstat(target, &st), -1);
}
END_TEST

static void check_dir_mode_refused(mode_t mode)
{
    uint64_t id = make_segment("s");
    ck_assert_int_eq(chmod(t_dir(), mode), 0);
    speculo_writer *w = NULL;
    speculo_reader *r = NULL;
    ck_assert_msg(speculo_writer_open("s", NULL, &w) == -EPERM, "writer, dir mode %o", mode);
    ck_assert_msg(speculo_writer_open("other", NULL, &w) == -EPERM, "new, dir mode %o", mode);
    ck_assert_msg(speculo_reader_open("s", &r) == -EPERM, "reader, dir mode %o", mode);
    ck_assert_msg(speculo_segment_remove("s", SPECULO_REMOVE_FORCE) == -EPERM,
                  "remove, dir mode %o", mode);
    ck_assert_ptr_null(w);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
    /* Back to safe: all is well again. */
    ck_assert_int_eq(chmod(t_dir(), 0700), 0);
    reader_sees_hello("s", id);
}

START_TEST(group_writable_dir_refused)
{
    check_dir_mode_refused(0770);
}
END_TEST

START_TEST(group_write_bit_alone_refused)
{
    check_dir_mode_refused(0720);
}
END_TEST

START_TEST(world_writable_dir_refused)
{
    check_dir_mode_refused(0707);
}
END_TEST

START_TEST(sticky_world_writable_dir_refused)
{
    check_dir_mode_refused(01777);
}
END_TEST

START_TEST(group_readable_dir_accepted)
{
    /* Readable and searchable by others is fine (group sharing). */
    uint64_t id = make_segment("s");
    ck_assert_int_eq(chmod(t_dir(), 0755), 0);
    reader_sees_hello("s", id);
    speculo_writer *w = th_writer("s", 0);
    speculo_writer_close(w);
}
END_TEST

START_TEST(dir_of_other_owner_refused_to_writer)
{
    uint64_t id = make_segment("s");
    ck_assert_int_eq(chmod(t_dir(), 0755), 0);
    ck_assert_int_eq(chown(t_dir(), OTHER_UID, OTHER_GID), 0);
    speculo_writer *w = NULL;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EPERM);
    ck_assert_int_eq(speculo_writer_open("new", NULL, &w), -EPERM);
    ck_assert_ptr_null(w);
    /* A reader may read another user's directory when its modes allow. */
    reader_sees_hello("s", id);
    char buf[1024];
    ck_assert_int_gt(speculo_segment_describe("s", buf, sizeof(buf)), 0);
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
}
END_TEST

START_TEST(segment_symlink_refused)
{
    uint64_t id = make_segment("real");
    char real[PATH_MAX], link[PATH_MAX];
    ck_assert_int_eq(t_path(real, sizeof(real), "real"), 0);
    ck_assert_int_eq(t_path(link, sizeof(link), "link"), 0);
    ck_assert_int_eq(symlink(real, link), 0);
    speculo_writer *w = NULL;
    speculo_reader *r = NULL;
    ck_assert_int_eq(speculo_writer_open("link", NULL, &w), -EPERM);
    ck_assert_int_eq(speculo_reader_open("link", &r), -EPERM);
    ck_assert_ptr_null(w);
    ck_assert_ptr_null(r);
    /* A dangling link is no invitation to create the target either. */
    char dangling[PATH_MAX], target[PATH_MAX];
    ck_assert_int_eq(t_path(dangling, sizeof(dangling), "dangling"), 0);
    ck_assert_int_eq(t_path(target, sizeof(target), "target"), 0);
    ck_assert_int_eq(symlink(target, dangling), 0);
    ck_assert_int_eq(speculo_writer_open("dangling", NULL, &w), -EPERM);
    struct stat st;
    ck_assert_int_eq(lstat(target, &st), -1);
    reader_sees_hello("real", id);
}
END_TEST

START_TEST(segment_fifo_refused)
{
    char path[PATH_MAX];
    ck_assert_int_eq(t_path(path, sizeof(path), "fifo"), 0);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    speculo_writer *w = NULL;
    speculo_reader *r = NULL;
    /* Must not block in open(2) waiting for the other end, either. */
    ck_assert_int_eq(speculo_reader_open("fifo", &r), -EPERM);
    ck_assert_int_eq(speculo_writer_open("fifo", NULL, &w), -EPERM);
    ck_assert_ptr_null(w);
    ck_assert_ptr_null(r);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
}
END_TEST

START_TEST(segment_directory_refused)
{
    char path[PATH_MAX];
    ck_assert_int_eq(t_path(path, sizeof(path), "adir"), 0);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    speculo_writer *w = NULL;
    speculo_reader *r = NULL;
    ck_assert_int_eq(speculo_writer_open("adir", NULL, &w), -EPERM);
    ck_assert_int_eq(speculo_reader_open("adir", &r), -EPERM);
    ck_assert_ptr_null(w);
    ck_assert_ptr_null(r);
}
END_TEST

START_TEST(segment_file_writable_by_others_refused)
{
    make_segment("s");
    char path[PATH_MAX];
    ck_assert_int_eq(t_path(path, sizeof(path), "s"), 0);
    ck_assert_int_eq(chmod(path, 0666), 0);
    speculo_writer *w = NULL;
    speculo_reader *r = NULL;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EPERM);
    ck_assert_int_eq(speculo_reader_open("s", &r), -EPERM);
    ck_assert_ptr_null(w);
    ck_assert_ptr_null(r);
}
END_TEST

START_TEST(segment_file_of_other_owner_refused_to_writer)
{
    uint64_t id = make_segment("s");
    char path[PATH_MAX];
    ck_assert_int_eq(t_path(path, sizeof(path), "s"), 0);
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(chown(path, OTHER_UID, OTHER_GID), 0);
    speculo_writer *w = NULL;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EPERM);
    ck_assert_ptr_null(w);
    reader_sees_hello("s", id);
}
END_TEST

START_TEST(missing_segment_is_enoent)
{
    speculo_reader *r = NULL;
    char buf[64];
    ck_assert_int_eq(speculo_reader_open("nope", &r), -ENOENT);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(speculo_segment_remove("nope", 0), -ENOENT);
    ck_assert_int_eq(speculo_segment_remove("nope", SPECULO_REMOVE_FORCE), -ENOENT);
    ck_assert_int_eq(speculo_segment_describe("nope", buf, sizeof(buf)), -ENOENT);
    /* Also when the directory itself is missing. */
    char sub[PATH_MAX];
    ck_assert_int_eq(t_path(sub, sizeof(sub), "missing"), 0);
    setenv("SPECULO_DIR", sub, 1);
    ck_assert_int_eq(speculo_reader_open("nope", &r), -ENOENT);
    ck_assert_ptr_null(r);
}
END_TEST

/* ---- removal ---------------------------------------------------------- */

START_TEST(remove_refused_while_writer_alive)
{
    char path[PATH_MAX];
    ck_assert_int_eq(t_path(path, sizeof(path), "s"), 0);
    speculo_writer *w = th_writer("s", 0);
    th_puts(w, "x", NULL);
    ck_assert_int_eq(speculo_segment_remove("s", 0), -EBUSY);
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_int_eq(speculo_segment_remove("s", SPECULO_REMOVE_FORCE), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(speculo_segment_remove("s", 0), -ENOENT);
    speculo_writer_close(w);
    /* The closed writer did not bring the file back. */
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(t_dir_count(t_dir()), 0);
}
END_TEST

START_TEST(remove_after_writer_closed)
{
    char path[PATH_MAX];
    ck_assert_int_eq(t_path(path, sizeof(path), "s"), 0);
    make_segment("s");
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    ck_assert_int_eq(access(path, F_OK), -1);
    speculo_reader *r = NULL;
    ck_assert_int_eq(speculo_reader_open("s", &r), -ENOENT);
    ck_assert_int_eq(t_dir_count(t_dir()), 0);
}
END_TEST

START_TEST(remove_keeps_held_chunk_then_enoent)
{
    char data[5000];
    t_fill(data, sizeof(data), 7);
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_put(w, data, sizeof(data), "a", 0, 0);
    th_puts(w, "second", NULL);
    speculo_writer_close(w);

    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, a);
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    /* The held chunk is still there, unchanged. */
    ck_assert_uint_eq(c.size, sizeof(data));
    ck_assert_uint_eq(t_check_fill(c.data, c.size, 7), 0);
    ck_assert_str_eq(c.name, "a");
    /* The next call learns of the removal, and keeps saying so. */
    speculo_chunk d;
    ck_assert_int_eq(speculo_reader_next(r, &d), -ENOENT);
    ck_assert_int_eq(speculo_reader_next(r, &d), -ENOENT);

    /* A new segment of that name: the reader starts at its first chunk. */
    w = th_writer("s", 0);
    uint64_t n1 = th_puts(w, "new-1", NULL);
    uint64_t n2 = th_puts(w, "new-2", NULL);
    th_nexts(r, n1, "new-1");
    th_nexts(r, n2, "new-2");
    th_next_none(r);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* ---- describe, strerror, descriptors ------------------------------ */

static const char *find_key_line(const char *text, const char *word)
{
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (colon) {
            for (const char *k = p; k + strlen(word) <= colon; k++)
                if (strncasecmp(k, word, strlen(word)) == 0)
                    return colon + 1;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    return NULL;
}

START_TEST(describe_has_keys)
{
    speculo_writer *w = th_writer("s", 0);
    th_puts(w, "one", NULL);
    th_puts(w, "two", "n");
    char buf[4096];
    int n = speculo_segment_describe("s", buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    ck_assert_int_lt(n, (int)sizeof(buf));
    ck_assert_uint_eq(strlen(buf), (size_t)n);
    /* Every line is "key: value". */
    for (char *p = buf; *p;) {
        char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        ck_assert_msg(len == 0 || memmem(p, len, ": ", 2) != NULL ||
                          (len > 0 && p[len - 1] == ':'),
                      "line without 'key: value': %.*s", (int)len, p);
        if (!eol)
            break;
        p = eol + 1;
    }
    const char *keys[] = {"version", "generation", "capacity", "used", "live",
                          "expired", "obsolete", "pid"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_msg(find_key_line(buf, keys[i]) != NULL, "no '%s' key in:\n%s", keys[i],
                      buf);
    const char *gen = find_key_line(buf, "generation");
    ck_assert_int_eq(strtol(gen, NULL, 10), 1);
    const char *ver = find_key_line(buf, "version");
    ck_assert_int_eq(strtol(ver, NULL, 10), SPECULO_FORMAT_VERSION);
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    ck_assert_msg(strstr(buf, pid) != NULL, "writer pid %s not in:\n%s", pid, buf);
    ck_assert_msg(strstr(buf, "error:") == NULL, "error line for a good segment:\n%s", buf);

    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(speculo_segment_describe("s", buf, sizeof(buf)), (int)strlen(buf));
    gen = find_key_line(buf, "generation");
    ck_assert_ptr_nonnull(gen);
    ck_assert_int_eq(strtol(gen, NULL, 10), 2);
    speculo_writer_close(w);
}
END_TEST

START_TEST(describe_truncates_like_snprintf)
{
    make_segment("s");
    char full[4096], small[16];
    int n = speculo_segment_describe("s", full, sizeof(full));
    ck_assert_int_gt(n, 16);
    memset(small, 'Z', sizeof(small));
    ck_assert_int_eq(speculo_segment_describe("s", small, sizeof(small)), n);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
    ck_assert_int_eq(memcmp(small, full, sizeof(small) - 1), 0);
    /* size 0: nothing written, the length still returned. */
    char none = 'Q';
    ck_assert_int_eq(speculo_segment_describe("s", &none, 0), n);
    ck_assert_int_eq(none, 'Q');
    ck_assert_int_eq(speculo_segment_describe("s", NULL, 0), n);
}
END_TEST

START_TEST(describe_reports_unreadable_segment)
{
    /* A file that is not a segment: the text says what is wrong, the call
     * succeeds. */
    char path[PATH_MAX];
    ck_assert_int_eq(t_path(path, sizeof(path), "junk"), 0);
    int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    char junk[8192];
    t_fill(junk, sizeof(junk), 3);
    ck_assert_int_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    char buf[4096];
    int n = speculo_segment_describe("junk", buf, sizeof(buf));
    ck_assert_int_gt(n, 0);
    ck_assert_msg(strstr(buf, "error:") != NULL, "no error line:\n%s", buf);
}
END_TEST

START_TEST(strerror_every_code)
{
    for (int e = -4200; e <= 4200; e++) {
        const char *m = speculo_strerror(e);
        ck_assert_msg(m != NULL, "strerror(%d) is NULL", e);
        ck_assert_msg(m[0] != '\0', "strerror(%d) is empty", e);
    }
    const int extremes[] = {INT_MIN, INT_MIN + 1, INT_MAX, -INT_MAX};
    for (size_t i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(speculo_strerror(extremes[i]));
    const int codes[] = {EINVAL, ENAMETOOLONG, ENOENT, EBUSY, EPERM, EBADMSG,
                         EPROTO, EFBIG, ENOMEM, EAGAIN, ETIMEDOUT, EINTR};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *neg = speculo_strerror(-codes[i]);
        ck_assert_str_eq(neg, speculo_strerror(codes[i]));
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(neg, speculo_strerror(-codes[j])) != 0,
                          "same message for %d and %d", codes[i], codes[j]);
    }
}
END_TEST

/* Readers keep no descriptor; a writer keeps exactly one, the segment
 * file that holds the role's lock, also across collections. */
START_TEST(only_the_writer_keeps_one_fd)
{
    int none = t_count_fds();
    ck_assert_int_gt(none, 0);
    speculo_writer *w = th_writer("s", 64 << 10);
    int base = none + 1;
    ck_assert_int_eq(t_count_fds(), base);
    uint64_t id = th_puts(w, "abc", "n");
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 100, &p), 0);
    memset(p, 1, 100);
    ck_assert_int_eq(speculo_writer_commit(w, NULL, NULL), 0);
    ck_assert_int_eq(t_count_fds(), base);
    speculo_reader *r = th_reader("s");
    ck_assert_int_eq(t_count_fds(), base);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_int_eq(speculo_reader_get(r, "n", &c), 0);
    ck_assert_int_eq(speculo_reader_get_id(r, id, &c), 0);
    ck_assert_int_eq(speculo_reader_seek(r, 0), 0);
    ck_assert_int_eq(speculo_reader_wait(r, 0), 0);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(t_count_fds(), base);
    /* Across a GC switch, on both sides. */
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    ck_assert_int_eq(t_count_fds(), base);
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_int_eq(speculo_reader_next(r, &c), -EAGAIN);
    int wrc = speculo_reader_wait(r, 1);
    ck_assert_msg(wrc == -ETIMEDOUT || wrc == 0, "wait = %d", wrc);
    ck_assert_int_eq(t_count_fds(), base);
    /* Growth (a chunk bigger than the file). */
    char *big = malloc(256 << 10);
    ck_assert_ptr_nonnull(big);
    th_put(w, big, 256 << 10, NULL, 0, 0);
    free(big);
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_int_eq(t_count_fds(), base);
    char buf[2048];
    ck_assert_int_gt(speculo_segment_describe("s", buf, sizeof(buf)), 0);
    ck_assert_int_eq(t_count_fds(), base);
    speculo_reader_close(r);
    ck_assert_int_eq(t_count_fds(), base);
    speculo_writer_close(w);
    ck_assert_int_eq(t_count_fds(), none);
}
END_TEST

START_TEST(close_null_is_noop)
{
    speculo_writer_close(NULL);
    speculo_reader_close(NULL);
}
END_TEST

START_TEST(remove_and_recreate_restarts_reader)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t last = 0;
    for (int i = 0; i < 10; i++)
        last = th_puts(w, "old", "same");
    th_puts(w, "old-unnamed", NULL);
    speculo_writer_close(w);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    while (speculo_reader_next(r, &c) == 0)
        ;
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    /* Made again before the reader looks: its ids start low again. */
    w = th_writer("s", 0);
    uint64_t n1 = th_puts(w, "new-1", NULL);
    uint64_t n2 = th_puts(w, "new-2", "same");
    ck_assert_uint_lt(n1, last);
    int rc = speculo_reader_next(r, &c);
    if (rc == -ENOENT)
        rc = speculo_reader_next(r, &c);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(c.id, n1);
    th_chunk_is(&c, "new-1", 5);
    th_nexts(r, n2, "new-2");
    th_next_none(r);
    ck_assert_int_eq(speculo_reader_get(r, "same", &c), 0);
    ck_assert_uint_eq(c.id, n2);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), 0);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

Suite *namespace_suite(void)
{
    Suite *s = suite_create("namespace");
    TCase *tc;

    tc = th_tcase("names", 10);
    tcase_add_test(tc, segment_name_valid_accepted);
    tcase_add_test(tc, segment_name_200_bytes_usable);
    tcase_add_test(tc, segment_name_201_bytes_too_long);
    tcase_add_test(tc, segment_name_invalid_rejected);
    tcase_add_test(tc, segment_name_null_rejected);
    tcase_add_test(tc, chunk_name_valid_accepted);
    tcase_add_test(tc, chunk_name_invalid_rejected);
    tcase_add_test(tc, chunk_name_256_bytes_too_long);
    tcase_add_test(tc, chunk_name_255_bytes_round_trip);
    suite_add_tcase(s, tc);

    tc = th_tcase("directory", 10);
    tcase_add_test(tc, segment_dir_from_env);
    tcase_add_test(tc, segment_dir_default_per_uid);
    tcase_add_test(tc, segment_file_made_in_speculo_dir);
    tcase_add_test(tc, writer_creates_missing_dir_0700);
    tcase_add_test(tc, symlink_dir_refused);
    tcase_add_test(tc, symlink_to_missing_dir_refused);
    tcase_add_test(tc, symlink_dir_refused_however_spelled);
    tcase_add_test(tc, dir_check_says_what_is_wrong);
    tcase_add_test(tc, group_writable_dir_refused);
    tcase_add_test(tc, group_write_bit_alone_refused);
    tcase_add_test(tc, world_writable_dir_refused);
    tcase_add_test(tc, sticky_world_writable_dir_refused);
    tcase_add_test(tc, group_readable_dir_accepted);
    if (th_root())
        tcase_add_test(tc, dir_of_other_owner_refused_to_writer);
    tcase_add_test(tc, missing_segment_is_enoent);
    suite_add_tcase(s, tc);

    tc = th_tcase("segment_file", 10);
    tcase_add_test(tc, segment_symlink_refused);
    tcase_add_test(tc, segment_fifo_refused);
    tcase_add_test(tc, segment_directory_refused);
    tcase_add_test(tc, segment_file_writable_by_others_refused);
    if (th_root())
        tcase_add_test(tc, segment_file_of_other_owner_refused_to_writer);
    suite_add_tcase(s, tc);

    tc = th_tcase("remove", 10);
    tcase_add_test(tc, remove_refused_while_writer_alive);
    tcase_add_test(tc, remove_after_writer_closed);
    tcase_add_test(tc, remove_keeps_held_chunk_then_enoent);
    tcase_add_test(tc, remove_and_recreate_restarts_reader);
    suite_add_tcase(s, tc);

    tc = th_tcase("misc", 10);
    tcase_add_test(tc, describe_has_keys);
    tcase_add_test(tc, describe_truncates_like_snprintf);
    tcase_add_test(tc, describe_reports_unreadable_segment);
    tcase_add_test(tc, strerror_every_code);
    tcase_add_test(tc, only_the_writer_keeps_one_fd);
    tcase_add_test(tc, close_null_is_noop);
    suite_add_tcase(s, tc);
    return s;
}
