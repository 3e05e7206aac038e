/*
 * tail: the live chunks in commit order, -n, --from; and tail -f: follows
 * new chunks without using CPU while idle, ends on SIGPIPE and SIGINT,
 * waits for a segment that does not exist yet, follows one removed (by
 * `speculo rm`, or by unlinking its file) and created again.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "speculo.h"
#include "t_proc.h"

static void assert_tail(const char *want, ...)
{
    /* The arguments after `want` are passed to `speculo tail`. */
    const char *a[6] = {NULL};
    va_list ap;
    va_start(ap, want);
    for (int i = 0; i < 5 && (a[i] = va_arg(ap, const char *)); i++)
        ;
    va_end(ap);
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "tail", a[0], a[1], a[2], a[3], a[4], NULL);
    ck_assert_msg(tc_exit(&r) == 0, "tail: %s", r.err);
    ck_assert_str_eq(r.out, want);
    tc_result_free(&r);
}

static void five_chunks(const char *seg)
{
    tc_put(seg, NULL, "a\n");
    tc_put(seg, "named", "b\n");
    tc_put(seg, NULL, "c\n");
    tc_put(seg, NULL, "d\n");
    tc_put(seg, NULL, "e\n");
}

START_TEST(tail_prints_live_chunks_in_commit_order)
{
    five_chunks("t");
    tc_put("t", "named", "B\n"); /* obsoletes b, comes last */
    assert_tail("a\nc\nd\ne\nB\n", "t", NULL);
}
END_TEST

START_TEST(tail_n_prints_the_last_n)
{
    five_chunks("t");
    assert_tail("d\ne\n", "-n", "2", "t", NULL);
    assert_tail("e\n", "t", "--lines", "1", NULL);
    assert_tail("", "-n", "0", "t", NULL);
    assert_tail("a\nb\nc\nd\ne\n", "-n", "1000000", "t", NULL);
}
END_TEST

START_TEST(tail_from_starts_after_an_id)
{
    five_chunks("t");
    assert_tail("c\nd\ne\n", "--from", "2", "t", NULL);
    assert_tail("", "--from", "5", "t", NULL);
}
END_TEST

TCase *tc_case_tail(void)
{
    TCase *tc = tcase_create("tail");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, tail_prints_live_chunks_in_commit_order);
    tcase_add_test(tc, tail_n_prints_the_last_n);
    tcase_add_test(tc, tail_from_starts_after_an_id);
    return tc;
}

/* Read exactly `want` from a follower (within T_PATIENCE_MS: a bound for
 * a failure, not a speed). */
static void expect_output(struct tc_child *c, const char *want)
{
    char buf[256] = "";
    size_t n = strlen(want);
    ck_assert_uint_lt(n, sizeof buf);
    size_t got = tc_read(c, buf, n, T_PATIENCE_MS);
    ck_assert_msg(got == n && !memcmp(buf, want, n), "expected '%s', got '%.*s'", want, (int)got,
                  buf);
}

/* `speculo ARGS...` must succeed. */
#define run_ok(...)                                                                                \
    do {                                                                                           \
        struct tc_result r_;                                                                       \
        tc_speculo(&r_, NULL, 0, __VA_ARGS__, NULL);                                               \
        ck_assert_msg(tc_exit(&r_) == 0, "speculo %s: %s", #__VA_ARGS__, r_.err);                  \
        tc_result_free(&r_);                                                                       \
    } while (0)

/* The path of a segment's file (or of another name) in the test's SPECULO_DIR. */
#define SEG_PATH_SIZE (TC_PATH + 64)
static void seg_path(char *buf, const char *name)
{
    snprintf(buf, SEG_PATH_SIZE, "%s/%s", tc_segdir, name);
}

/*
 * What a follower is doing, seen from outside. Its reader registers in the
 * segment file's header while it blocks in speculo_reader_wait(): with the
 * header mapped (map_segment(), before the file is removed or moved), the
 * test knows that the follower caught up and blocks, so that what it does
 * next is news to it. Waiting for a segment to exist, it sleeps elsewhere
 * (inotify): t_await_asleep_again() tells that it handled an event and
 * sleeps again.
 */
static void map_segment(struct t_seg_map *m, const char *segment)
{
    char path[SEG_PATH_SIZE];
    seg_path(path, segment);
    ck_assert_int_eq(t_seg_map_path(path, m), 0);
}

static void await_blocked(const struct t_seg_map *m)
{
    ck_assert_msg(t_seg_await_waiters(m, 1, T_PATIENCE_MS) == 0, "tail -f did not block in wait()");
}

/* `tail -f SEG` of a segment holding one chunk, seen printed; with @m
 * (may be NULL), the segment's file mapped, and the follower blocked. */
static void start_following(struct tc_child *c, const char *segment, const char *first,
                            struct t_seg_map *m)
{
    tc_put(segment, NULL, first);
    tc_spawn(c, "tail", "-f", segment, NULL);
    expect_output(c, first);
    if (m) {
        map_segment(m, segment);
        await_blocked(m);
    }
}

/* Remove the segment's file as rm(1) does, behind the library's back. */
static void unlink_segment(const char *segment)
{
    char path[SEG_PATH_SIZE];
    seg_path(path, segment);
    ck_assert_msg(unlink(path) == 0, "unlink %s", path);
}

/* The follower, asleep, woke for what the test did, handled it and sleeps
 * again (waiting for the segment to come back, or for news). */
static void await_handled(struct tc_child *c, long sleeps)
{
    ck_assert_msg(t_await_asleep_again(c->pid, sleeps, T_PATIENCE_MS) == 0,
                  "tail -f did not handle the change");
}

/* A follower at rest uses no CPU: every thread of it is blocked in a call
 * that only an event ends (no timer, no polling), which a loaded machine
 * cannot change. */
static void assert_idle(struct tc_child *c)
{
    ck_assert_msg(t_await_idle(c->pid, T_PATIENCE_MS) == 0,
                  "tail -f is not blocked without a timeout in every thread");
}

START_TEST(follow_prints_new_chunks_and_ends_on_sigpipe)
{
    tc_put("f", NULL, "old\n");
    struct tc_child c;
    struct t_seg_map m;
    map_segment(&m, "f");
    tc_spawn(&c, "tail", "-f", "-n", "0", "f", NULL);
    await_blocked(&m); /* positioned after "old" */
    tc_put("f", NULL, "one\n");
    expect_output(&c, "one\n");
    tc_put("f", NULL, "two\n");
    tc_put("f", "blk", "three\n");
    expect_output(&c, "two\nthree\n");

    /* Blocked in the wait: no CPU while idle. */
    await_blocked(&m);
    assert_idle(&c);

    /* The reader of its output goes away: it ends at once, cleanly,
     * without waiting for a chunk to write. */
    close(c.out);
    c.out = -1;
    int status;
    ck_assert_msg(tc_wait(&c, T_PATIENCE_MS, &status),
                  "tail -f still running after its reader left");
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    tc_kill(&c);
    t_seg_unmap(&m);
}
END_TEST

START_TEST(follow_ends_on_sigint)
{
    struct tc_child c;
    struct t_seg_map m;
    start_following(&c, "f", "x\n", &m);
    kill(c.pid, SIGINT);
    int status;
    ck_assert_msg(tc_wait(&c, T_PATIENCE_MS, &status), "tail -f ignored SIGINT");
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGINT);
    tc_kill(&c);
    t_seg_unmap(&m);
}
END_TEST

/* SPECULO_DIR itself does not exist yet when tail -f starts. */
START_TEST(follow_waits_for_a_segment_created_later)
{
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "tail", "later", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    ck_assert_str_eq(r.err, "speculo: later: no such segment\n");
    tc_result_free(&r);

    struct tc_child c;
    tc_spawn(&c, "tail", "-f", "later", NULL);
    ck_assert_int_eq(t_await_asleep(c.pid, T_PATIENCE_MS), 0); /* waiting for it */
    long sleeps = t_proc_sleeps(c.pid);
    tc_put("other", NULL, "not this one\n");
    await_handled(&c, sleeps);
    tc_put("later", NULL, "first\n");
    expect_output(&c, "first\n");
    tc_put("later", NULL, "second\n");
    expect_output(&c, "second\n");
    tc_kill(&c);
}
END_TEST

START_TEST(follow_continues_after_remove_and_recreate)
{
    struct tc_child c;
    struct t_seg_map m;
    start_following(&c, "re", "a\n", &m);
    long sleeps = t_proc_sleeps(c.pid);
    run_ok("rm", "re");
    await_handled(&c, sleeps); /* waits for a segment of that name */
    tc_put("re", NULL, "b\n"); /* a new segment of that name: id 1 again */
    expect_output(&c, "b\n");
    tc_put("re", NULL, "c\n");
    expect_output(&c, "c\n");
    tc_kill(&c);
    t_seg_unmap(&m);
}
END_TEST

/* rm(1) of the file does not mark it removed nor wake the readers as
 * `speculo rm` does; tail -f notices it all the same (inotify), waits
 * without using CPU, and follows the segment created again. */
START_TEST(follow_notices_its_file_unlinked)
{
    struct tc_child c;
    struct t_seg_map m;
    start_following(&c, "u", "a\n", &m);
    long sleeps = t_proc_sleeps(c.pid);
    unlink_segment("u");
    await_handled(&c, sleeps);
    ck_assert_uint_eq(atomic_load(&t_seg_hdr(&m)->waiters), 0); /* left the old file */
    int status;
    ck_assert_msg(!tc_wait(&c, 0, &status), "tail -f ended (status 0x%x) on an unlink", status);
    assert_idle(&c);
    tc_put("u", NULL, "b\n");
    expect_output(&c, "b\n");
    tc_put("u", NULL, "c\n");
    expect_output(&c, "c\n");
    tc_kill(&c);
    t_seg_unmap(&m);
}
END_TEST

/* Unlinked and created again at once: the name holds another segment by
 * the time tail -f looks, and it moves to it. */
START_TEST(follow_notices_its_file_unlinked_and_recreated_at_once)
{
    struct tc_child c;
    start_following(&c, "u", "a\n", NULL);
    unlink_segment("u");
    tc_put("u", NULL, "b\n");
    expect_output(&c, "b\n");
    tc_put("u", NULL, "c\n");
    expect_output(&c, "c\n");
    tc_kill(&c);
}
END_TEST

/* Renamed away and back: the same segment, followed on from where it was
 * (nothing printed twice). */
START_TEST(follow_keeps_its_place_when_its_file_is_moved_back)
{
    struct tc_child c;
    struct t_seg_map m;
    start_following(&c, "m", "a\n", &m);
    char path[SEG_PATH_SIZE], aside[SEG_PATH_SIZE];
    seg_path(path, "m");
    seg_path(aside, "m.aside");
    long sleeps = t_proc_sleeps(c.pid);
    ck_assert_int_eq(rename(path, aside), 0);
    await_handled(&c, sleeps); /* waits for a segment of that name */
    ck_assert_int_eq(rename(aside, path), 0);
    await_blocked(&m); /* back in the wait, on the same file */
    tc_put("m", NULL, "b\n");
    expect_output(&c, "b\n");
    tc_kill(&c);
    t_seg_unmap(&m);
}
END_TEST

/* A writer still alive on the unlinked file goes on committing into it:
 * removed is removed, as with `speculo rm --force`; tail -f does not print
 * those chunks and follows the new segment of that name. (That it knows
 * of the unlink before the next commit is the test's doing: it waits for
 * tail -f to have handled it.) */
START_TEST(follow_leaves_an_unlinked_file_to_its_writer)
{
    speculo_writer *w = NULL;
    ck_assert_int_eq(speculo_writer_open("w", NULL, &w), 0);
    ck_assert_int_eq(speculo_writer_put(w, "a\n", 2, NULL, NULL), 0);
    struct tc_child c;
    struct t_seg_map m;
    tc_spawn(&c, "tail", "-f", "w", NULL);
    expect_output(&c, "a\n");
    map_segment(&m, "w");
    await_blocked(&m);
    long sleeps = t_proc_sleeps(c.pid);
    unlink_segment("w");
    await_handled(&c, sleeps);
    ck_assert_int_eq(speculo_writer_put(w, "ghost\n", 6, NULL, NULL), 0);
    tc_put("w", NULL, "new\n");
    expect_output(&c, "new\n");
    speculo_writer_close(w);
    tc_kill(&c);
    t_seg_unmap(&m);
}
END_TEST

/* The follower keeps up across a garbage-collection switch. */
START_TEST(follow_carries_on_across_gc)
{
    tc_put("g", "k", "1\n");
    struct tc_child c;
    tc_spawn(&c, "tail", "-f", "g", NULL);
    expect_output(&c, "1\n");
    tc_put("g", "k", "2\n");
    expect_output(&c, "2\n");
    run_ok("gc", "g");
    tc_put("g", "k", "3\n");
    expect_output(&c, "3\n");
    tc_kill(&c);
}
END_TEST

TCase *tc_case_follow(void)
{
    TCase *tc = tcase_create("follow");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, follow_prints_new_chunks_and_ends_on_sigpipe);
    tcase_add_test(tc, follow_ends_on_sigint);
    tcase_add_test(tc, follow_waits_for_a_segment_created_later);
    tcase_add_test(tc, follow_continues_after_remove_and_recreate);
    tcase_add_test(tc, follow_notices_its_file_unlinked);
    tcase_add_test(tc, follow_notices_its_file_unlinked_and_recreated_at_once);
    tcase_add_test(tc, follow_keeps_its_place_when_its_file_is_moved_back);
    tcase_add_test(tc, follow_leaves_an_unlinked_file_to_its_writer);
    tcase_add_test(tc, follow_carries_on_across_gc);
    return tc;
}
