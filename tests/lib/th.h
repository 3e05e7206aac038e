/*
 * Helpers of the library test program (th_ prefix): they assert with Check,
 * so they belong here and not in tests/common.
 */
#ifndef TH_H
#define TH_H

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "speculo.h"
#include "t_seg.h"
#include "t_util.h"

/* The suites, one per module. */
Suite *namespace_suite(void);
Suite *format_suite(void);
Suite *writer_suite(void);
Suite *reader_suite(void);
Suite *gc_suite(void);
Suite *wait_suite(void);
Suite *multiprocess_suite(void);
Suite *hostile_suite(void);
Suite *adversary_suite(void);
Suite *edges_suite(void);
Suite *regress_suite(void);
Suite *stress_suite(void);
Suite *role_suite(void);
Suite *wait_many_suite(void);
Suite *replica_suite(void);
Suite *records_suite(void);
Suite *check_suite(void);

/* A test case with a fresh SPECULO_DIR per test and a timeout (seconds,
 * multiplied by CK_TIMEOUT_MULTIPLIER as Check does). */
TCase *th_tcase(const char *name, double timeout);
/* 1 when running as root (tests that change uid need it). */
int th_root(void);

/* Open a writer (capacity 0 = default), asserting success. */
#define th_writer(seg, cap) th_writer_at(__FILE__, __LINE__, (seg), (cap), 0)
speculo_writer *th_writer_at(const char *file, int line, const char *seg, size_t capacity,
                             mode_t mode);
/* Open a reader, asserting success. */
#define th_reader(seg) th_reader_at(__FILE__, __LINE__, (seg))
speculo_reader *th_reader_at(const char *file, int line, const char *seg);

/* Commit a copy of data, asserting success; returns the id. */
#define th_put(w, data, size, name, ttl, repl)                                            \
    th_put_at(__FILE__, __LINE__, (w), (data), (size), (name), (ttl), (repl))
uint64_t th_put_at(const char *file, int line, speculo_writer *w, const void *data, size_t size,
                   const char *name, int64_t ttl_ns, uint64_t replaces);
/* The same for a string (without its NUL). */
#define th_puts(w, s, name) th_put(w, s, strlen(s), name, 0, 0)

/* next must return the chunk (id, bytes); id 0 = any id, returned. */
#define th_next(r, id, data, size) th_next_at(__FILE__, __LINE__, (r), (id), (data), (size))
uint64_t th_next_at(const char *file, int line, speculo_reader *r, uint64_t id,
                    const void *data, size_t size);
#define th_nexts(r, id, s) th_next(r, id, s, strlen(s))
/* next must return -EAGAIN. */
#define th_next_none(r) th_next_none_at(__FILE__, __LINE__, (r))
void th_next_none_at(const char *file, int line, speculo_reader *r);

/* Assert that a chunk holds exactly the given bytes. */
#define th_chunk_is(c, data, size) th_chunk_is_at(__FILE__, __LINE__, (c), (data), (size))
void th_chunk_is_at(const char *file, int line, const speculo_chunk *c, const void *data,
                    size_t size);

/* speculo_reader_info, asserting success. */
#define th_info(r, info) ck_assert_int_eq(speculo_reader_info((r), (info)), 0)

/* ---- child processes ----------------------------------------------- */

/* A forked child of a test, and the pipe on which it tells the test that it
 * is ready (it holds what the test is about: an open reader, the writer
 * role, the chunks it was to read first, ...). Inside the child, check with
 * T_CHILD_ASSERT / T_CHILD_EQ (Check's assertions belong to the test
 * process) and leave with _exit(0). */
struct th_child {
    pid_t pid;
    struct t_sync ready;
};

/* Fork a child (t_fork: it dies with the test process), asserting success.
 * True in the child, false in the test process. */
#define th_fork(c) th_fork_at(__FILE__, __LINE__, (c))
bool th_fork_at(const char *file, int line, struct th_child *c);
/* In the child: tell the test process that it is ready. */
#define th_child_ready(c) th_child_ready_at(__FILE__, __LINE__, (c))
void th_child_ready_at(const char *file, int line, struct th_child *c);
/* In the test process: wait until the child is ready (T_PATIENCE_MS at
 * most). */
#define th_await_ready(c) th_await_ready_at(__FILE__, __LINE__, (c))
void th_await_ready_at(const char *file, int line, struct th_child *c);

/* In a child: open a reader, or a writer (opts may be NULL), or leave with
 * T_CHILD_FAILED saying why. */
#define th_child_reader(seg) th_child_reader_at(__FILE__, __LINE__, (seg))
speculo_reader *th_child_reader_at(const char *file, int line, const char *seg);
#define th_child_writer(seg, opts) th_child_writer_at(__FILE__, __LINE__, (seg), (opts))
speculo_writer *th_child_writer_at(const char *file, int line, const char *seg,
                                   const struct speculo_writer_options *opts);

/* Put the segment directory on a tmpfs of `kib` KiB in a mount namespace
 * of this test process only (it goes away with the process). 0 or -errno. */
int th_small_tmpfs(int kib);

#endif
