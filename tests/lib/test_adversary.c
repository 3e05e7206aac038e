/*
 * adversary: hostile input not covered by the hostile and namespace suites.
 *  - the segment's name replaced, under an open reader, by a symlink (to a
 *    good segment), a FIFO, a directory; the segment directory replaced by
 *    a symlink: the switch refuses them, never blocks, and resumes once a
 *    real segment is back;
 *  - names of 10 kB, and names with '/', "..", control characters, in
 *    every call that takes a segment or a chunk name (alloc + commit
 *    included, the reservation kept);
 *  - a segment truncated under a reader that has it mapped: SIGBUS reaches
 *    the reader (documented: the library installs no signal handler; only
 *    the segment's owner can truncate it).
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "th.h"

#define LONG_NAME 10240

/* A segment "s" with chunks "one", "two" (named "second"), "three"; the
 * reader has returned "one". */
struct fx {
    speculo_reader *r;
    uint64_t id[3];
};

static void fx_make(struct fx *f)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    f->id[0] = th_puts(w, "one", NULL);
    f->id[1] = th_puts(w, "two", "second");
    f->id[2] = th_puts(w, "three", NULL);
    speculo_writer_close(w);
    f->r = th_reader("s");
    th_nexts(f->r, f->id[0], "one");
}

/* Mark the mapped file superseded, as a collection does before renaming
 * its successor in: the reader looks at the name at its next call. */
static void mark_superseded(const char *seg)
{
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map(seg, &m), 0);
    atomic_store(&t_seg_hdr(&m)->superseded, 2);
    t_seg_unmap(&m);
}

/* Every reader call on a switched-to impostor fails with -EPERM, and wait
 * does not block: it has news (next() says what is wrong) even with a
 * timeout of 0, and nothing else would wake it, so a wait that blocked
 * would time out. */
static void calls_refuse(speculo_reader *r)
{
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), -EPERM);
    ck_assert_int_eq(speculo_reader_get(r, "second", &c), -EPERM);
    ck_assert_int_eq(speculo_reader_get_id(r, 1, &c), -EPERM);
    struct speculo_segment_info info;
    ck_assert_int_eq(speculo_reader_info(r, &info), -EPERM);
    ck_assert_int_eq(speculo_reader_seek(r, 0), -EPERM);
    ck_assert_int_eq(speculo_reader_wait(r, 0), 0);
    ck_assert_int_eq(speculo_reader_wait(r, 5000), 0);
}

/* Put a real successor back under the name: the reader carries on after
 * the last id it returned. */
static void successor_back(struct fx *f, const char *from)
{
    char a[PATH_MAX], b[PATH_MAX];
    ck_assert_int_eq(t_path(a, sizeof(a), from), 0);
    ck_assert_int_eq(t_path(b, sizeof(b), "s"), 0);
    ck_assert_int_eq(rename(a, b), 0);
    th_nexts(f->r, f->id[1], "two");
    th_nexts(f->r, f->id[2], "three");
    th_next_none(f->r);
    speculo_reader_close(f->r);
}

/* Move the segment aside as "saved" (the reader keeps its mapping). */
static void move_aside(void)
{
    char a[PATH_MAX], b[PATH_MAX];
    ck_assert_int_eq(t_path(a, sizeof(a), "s"), 0);
    ck_assert_int_eq(t_path(b, sizeof(b), "saved"), 0);
    ck_assert_int_eq(rename(a, b), 0);
}

/* A copy of the segment (a collection's output) under `name`. */
static void copy_segment(const char *name)
{
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("saved", &m), 0);
    char p[PATH_MAX];
    ck_assert_int_eq(t_path(p, sizeof(p), name), 0);
    int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, m.p, m.size), (ssize_t)m.size);
    close(fd);
    t_seg_unmap(&m);
}

START_TEST(switch_to_symlink_refused)
{
    struct fx f;
    fx_make(&f);
    move_aside();
    copy_segment("good");
    /* the successor is a symlink to a well-formed segment: not followed */
    char target[PATH_MAX], link[PATH_MAX];
    ck_assert_int_eq(t_path(target, sizeof(target), "good"), 0);
    ck_assert_int_eq(t_path(link, sizeof(link), "s"), 0);
    ck_assert_int_eq(symlink(target, link), 0);
    mark_superseded("saved");
    calls_refuse(f.r);
    ck_assert_int_eq(unlink(link), 0);
    successor_back(&f, "good");
}
END_TEST

START_TEST(switch_to_fifo_refused)
{
    struct fx f;
    fx_make(&f);
    move_aside();
    copy_segment("good");
    char p[PATH_MAX];
    ck_assert_int_eq(t_path(p, sizeof(p), "s"), 0);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    mark_superseded("saved");
    calls_refuse(f.r); /* and no open(2) blocked on the FIFO */
    ck_assert_int_eq(unlink(p), 0);
    successor_back(&f, "good");
}
END_TEST

START_TEST(switch_to_directory_refused)
{
    struct fx f;
    fx_make(&f);
    move_aside();
    copy_segment("good");
    char p[PATH_MAX];
    ck_assert_int_eq(t_path(p, sizeof(p), "s"), 0);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    mark_superseded("saved");
    calls_refuse(f.r);
    ck_assert_int_eq(rmdir(p), 0);
    successor_back(&f, "good");
}
END_TEST

START_TEST(switch_through_symlinked_directory_refused)
{
    struct fx f;
    fx_make(&f);
    mark_superseded("s");
    /* the segment directory itself becomes a symlink to the real one */
    char real[PATH_MAX];
    snprintf(real, sizeof(real), "%s.real", t_dir());
    ck_assert_int_eq(rename(t_dir(), real), 0);
    ck_assert_int_eq(symlink(real, t_dir()), 0);
    calls_refuse(f.r);
    speculo_writer *w = NULL;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EPERM);
    ck_assert_int_eq(unlink(t_dir()), 0);
    ck_assert_int_eq(rename(real, t_dir()), 0);
    /* the same file, marked but not replaced: it carries on in it */
    th_nexts(f.r, f.id[1], "two");
    speculo_reader_close(f.r);
}
END_TEST

/* ---- names ------------------------------------------------------------- */

static char *long_name(char c, size_t len)
{
    char *n = malloc(len + 1);
    ck_assert_ptr_nonnull(n);
    memset(n, c, len);
    n[len] = '\0';
    return n;
}

/* Every call that takes a segment name refuses `name` with `err` and
 * creates nothing. */
static void segment_calls_refuse(const char *name, int err)
{
    speculo_writer *w = (speculo_writer *)&w;
    speculo_reader *r = (speculo_reader *)&r;
    char buf[64];
    ck_assert_int_eq(speculo_segment_name_check(name), err);
    ck_assert_int_eq(speculo_writer_open(name, NULL, &w), err);
    ck_assert_ptr_eq(w, (speculo_writer *)&w);
    ck_assert_int_eq(speculo_reader_open(name, &r), err);
    ck_assert_ptr_eq(r, (speculo_reader *)&r);
    ck_assert_int_eq(speculo_segment_remove(name, 0), err);
    ck_assert_int_eq(speculo_segment_remove(name, SPECULO_REMOVE_FORCE), err);
    ck_assert_int_eq(speculo_segment_describe(name, buf, sizeof(buf)), err);
}

/* Every call that takes a chunk name refuses it with `err`; a refused
 * commit keeps the reservation. */
static void chunk_calls_refuse(speculo_writer *w, speculo_reader *r, const char *name, int err)
{
    speculo_chunk c;
    struct speculo_commit_options o = {.name = name};
    uint64_t id = 777;
    ck_assert_int_eq(speculo_chunk_name_check(name), err);
    ck_assert_int_eq(speculo_writer_put(w, "x", 1, &o, &id), err);
    void *p;
    ck_assert_int_eq(speculo_writer_alloc(w, 5, &p), 0);
    memcpy(p, "kept!", 5);
    ck_assert_int_eq(speculo_writer_commit(w, &o, &id), err);
    ck_assert_uint_eq(id, 777);
    ck_assert_int_eq(speculo_reader_get(r, name, &c), err);
    /* the reservation is still there, with its bytes */
    ck_assert_int_eq(speculo_writer_commit(w, NULL, &id), 0);
    th_next(r, id, "kept!", 5);
    th_next_none(r);
}

START_TEST(names_of_10_kb_everywhere)
{
    char *valid = long_name('a', LONG_NAME);
    char *slashes = long_name('/', LONG_NAME);
    char *dots = long_name('.', LONG_NAME);
    /* letters then one '/': the bytes are judged before the length */
    char *tail_slash = long_name('b', LONG_NAME);
    tail_slash[LONG_NAME - 1] = '/';
    segment_calls_refuse(valid, -ENAMETOOLONG);
    segment_calls_refuse(slashes, -EINVAL);
    segment_calls_refuse(dots, -ENAMETOOLONG); /* dots are valid bytes */
    segment_calls_refuse(tail_slash, -EINVAL);

    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    chunk_calls_refuse(w, r, valid, -ENAMETOOLONG);
    chunk_calls_refuse(w, r, slashes, -EINVAL);
    chunk_calls_refuse(w, r, tail_slash, -EINVAL);
    speculo_reader_close(r);
    speculo_writer_close(w);
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
    free(valid);
    free(slashes);
    free(dots);
    free(tail_slash);
}
END_TEST

START_TEST(traversal_and_control_names_everywhere)
{
    static const char *const seg[] = {"..", "../s", "s/..", "./s", "a/../../etc", "s\n",
                                      "\x1b[2J", "s\r", "s\x7f", "\x01", "s\xff", "s t"};
    static const char *const chunk[] = {"..", "../x", "x/..", "a/b", "x\n", "\x1b[31mred",
                                        "x\r", "x\x7f", "x\xc3\xa9", "x y", "x\t", "_\x01"};
    for (size_t i = 0; i < sizeof(seg) / sizeof(seg[0]); i++)
        segment_calls_refuse(seg[i], -EINVAL);
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    for (size_t i = 0; i < sizeof(chunk) / sizeof(chunk[0]); i++)
        chunk_calls_refuse(w, r, chunk[i], -EINVAL);
    speculo_reader_close(r);
    speculo_writer_close(w);
    /* nothing made anywhere but "s", in the test directory */
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
}
END_TEST

/* ---- truncation under a mapping ---------------------------------------- */

START_TEST(truncated_while_mapped_raises_sigbus)
{
    /* Documented behaviour, not a wish: the owner truncating a segment that
     * a reader has mapped makes the reader's next touch of a lost page
     * raise SIGBUS; the library installs no handler (it never owns
     * process-wide state). Nobody but the owner can truncate: segments are
     * never writable by others. */
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t id = th_puts(w, "one", NULL);
    th_puts(w, "two", NULL);
    speculo_writer_close(w);
    struct t_sync go;
    ck_assert_int_eq(t_sync_init(&go), 0);
    struct th_child reader;
    if (th_fork(&reader)) {
        speculo_reader *r = th_child_reader("s");
        speculo_chunk c;
        T_CHILD_EQ(speculo_reader_next(r, &c), 0);
        T_CHILD_EQ(c.id, id);
        th_child_ready(&reader);
        T_CHILD_EQ(t_sync_wait(&go, T_PATIENCE_MS), 'g');
        signal(SIGBUS, SIG_DFL); /* as in a program that set no handler */
        speculo_reader_next(r, &c); /* touches the record area: gone */
        _exit(0);
    }
    th_await_ready(&reader);
    ck_assert_int_eq(t_seg_truncate("s", SEG_HEADER_SIZE), 0);
    ck_assert_int_eq(t_sync_post(&go, 'g'), 0);
    ck_assert_int_eq(t_wait(reader.pid, T_PATIENCE_MS), 128 + SIGBUS);
    /* A reader opened after the truncation is refused, no signal. */
    speculo_reader *r = NULL;
    ck_assert_int_eq(speculo_reader_open("s", &r), -EBADMSG);
    t_sync_close(&reader.ready);
    t_sync_close(&go);
}
END_TEST

Suite *adversary_suite(void)
{
    Suite *s = suite_create("adversary");
    TCase *tc = th_tcase("switch", 10);
    tcase_add_test(tc, switch_to_symlink_refused);
    tcase_add_test(tc, switch_to_fifo_refused);
    tcase_add_test(tc, switch_to_directory_refused);
    tcase_add_test(tc, switch_through_symlinked_directory_refused);
    suite_add_tcase(s, tc);
    tc = th_tcase("names", 10);
    tcase_add_test(tc, names_of_10_kb_everywhere);
    tcase_add_test(tc, traversal_and_control_names_everywhere);
    suite_add_tcase(s, tc);
    tc = th_tcase("truncation", 10);
    tcase_add_test(tc, truncated_while_mapped_raises_sigbus);
    suite_add_tcase(s, tc);
    return s;
}
