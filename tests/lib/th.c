/*
 * Helpers of the library test program; see th.h.
 */
#include "th.h"

#include <errno.h>
#include <sched.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void th_setup(void)
{
    t_dir_setup();
}

static void th_teardown(void)
{
    t_dir_teardown();
}

TCase *th_tcase(const char *name, double timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, th_setup, th_teardown);
    tcase_set_timeout(tc, timeout);
    return tc;
}

int th_root(void)
{
    return geteuid() == 0;
}

speculo_writer *th_writer_at(const char *file, int line, const char *seg, size_t capacity,
                             mode_t mode)
{
    struct speculo_writer_options o;
    memset(&o, 0, sizeof(o));
    o.capacity = capacity;
    o.mode = mode;
    speculo_writer *w = NULL;
    int rc = speculo_writer_open(seg, &o, &w);
    ck_assert_msg(rc == 0, "%s:%d: speculo_writer_open(%s) = %d (%s)", file, line, seg, rc,
                  speculo_strerror(rc));
    ck_assert_msg(w != NULL, "%s:%d: writer handle is NULL", file, line);
    return w;
}

speculo_reader *th_reader_at(const char *file, int line, const char *seg)
{
    speculo_reader *r = NULL;
    int rc = speculo_reader_open(seg, &r);
    ck_assert_msg(rc == 0, "%s:%d: speculo_reader_open(%s) = %d (%s)", file, line, seg, rc,
                  speculo_strerror(rc));
    ck_assert_msg(r != NULL, "%s:%d: reader handle is NULL", file, line);
    return r;
}

uint64_t th_put_at(const char *file, int line, speculo_writer *w, const void *data, size_t size,
                   const char *name, int64_t ttl_ns, uint64_t replaces)
{
    struct speculo_commit_options o;
    memset(&o, 0, sizeof(o));
    o.name = name;
    o.ttl_ns = ttl_ns;
    o.replaces = replaces;
    uint64_t id = 0;
    int rc = speculo_writer_put(w, data, size, &o, &id);
    ck_assert_msg(rc == 0, "%s:%d: speculo_writer_put(%zu bytes, %s) = %d (%s)", file, line,
                  size, name ? name : "unnamed", rc, speculo_strerror(rc));
    ck_assert_msg(id >= 1, "%s:%d: put returned id %llu", file, line, (unsigned long long)id);
    return id;
}

void th_chunk_is_at(const char *file, int line, const speculo_chunk *c, const void *data,
                    size_t size)
{
    ck_assert_msg(c->size == size, "%s:%d: chunk %llu has %zu bytes, expected %zu", file, line,
                  (unsigned long long)c->id, c->size, size);
    ck_assert_msg(size == 0 || c->data != NULL, "%s:%d: chunk data is NULL", file, line);
    ck_assert_msg((uintptr_t)c->data % alignof(max_align_t) == 0,
                  "%s:%d: chunk data %p not aligned", file, line, c->data);
    ck_assert_msg(size == 0 || memcmp(c->data, data, size) == 0,
                  "%s:%d: chunk %llu bytes differ", file, line, (unsigned long long)c->id);
}

uint64_t th_next_at(const char *file, int line, speculo_reader *r, uint64_t id,
                    const void *data, size_t size)
{
    speculo_chunk c;
    memset(&c, 0, sizeof(c));
    int rc = speculo_reader_next(r, &c);
    ck_assert_msg(rc == 0, "%s:%d: speculo_reader_next = %d (%s), expected chunk %llu", file,
                  line, rc, speculo_strerror(rc), (unsigned long long)id);
    if (id)
        ck_assert_msg(c.id == id, "%s:%d: next returned id %llu, expected %llu", file, line,
                      (unsigned long long)c.id, (unsigned long long)id);
    th_chunk_is_at(file, line, &c, data, size);
    return c.id;
}

void th_next_none_at(const char *file, int line, speculo_reader *r)
{
    speculo_chunk c;
    memset(&c, 0, sizeof(c));
    int rc = speculo_reader_next(r, &c);
    ck_assert_msg(rc == -EAGAIN, "%s:%d: speculo_reader_next = %d (id %llu), expected -EAGAIN",
                  file, line, rc, (unsigned long long)c.id);
}

bool th_fork_at(const char *file, int line, struct th_child *c)
{
    ck_assert_msg(t_sync_init(&c->ready) == 0, "%s:%d: pipe: %s", file, line, strerror(errno));
    c->pid = t_fork();
    ck_assert_msg(c->pid >= 0, "%s:%d: fork: %s", file, line, strerror(errno));
    if (c->pid == 0)
        return true;
    /* Only the child writes: a child that dies unready is seen at once. */
    close(c->ready.fd[1]);
    c->ready.fd[1] = -1;
    return false;
}

/* Leave a child that failed: what T_CHILD_ASSERT does, for a helper that
 * reports its caller's file and line. */
static _Noreturn void child_failed(const char *file, int line, const char *what, int rc)
{
    fprintf(stderr, "%s:%d: child %d: %s = %d (%s)\n", file, line, (int)getpid(), what, rc,
            rc < 0 ? speculo_strerror(rc) : "?");
    _exit(T_CHILD_FAILED);
}

void th_child_ready_at(const char *file, int line, struct th_child *c)
{
    int rc = t_sync_post(&c->ready, 'r');
    if (rc < 0)
        child_failed(file, line, "telling the test it is ready", rc);
}

void th_await_ready_at(const char *file, int line, struct th_child *c)
{
    int rc = t_sync_wait(&c->ready, T_PATIENCE_MS);
    ck_assert_msg(rc != -EPIPE, "%s:%d: child %d ended before it was ready (see its message)",
                  file, line, (int)c->pid);
    ck_assert_msg(rc == 'r', "%s:%d: child %d not ready in %d ms (%d)", file, line, (int)c->pid,
                  T_PATIENCE_MS, rc);
}

speculo_reader *th_child_reader_at(const char *file, int line, const char *seg)
{
    speculo_reader *r = NULL;
    int rc = speculo_reader_open(seg, &r);
    if (rc < 0)
        child_failed(file, line, "speculo_reader_open", rc);
    return r;
}

speculo_writer *th_child_writer_at(const char *file, int line, const char *seg,
                                   const struct speculo_writer_options *opts)
{
    speculo_writer *w = NULL;
    int rc = speculo_writer_open(seg, opts, &w);
    if (rc < 0)
        child_failed(file, line, "speculo_writer_open", rc);
    return w;
}

int th_small_tmpfs(int kib)
{
    if (unshare(CLONE_NEWNS) < 0)
        return -errno;
    if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -errno;
    char dir[256], opts[64];
    ck_assert_int_eq(t_path(dir, sizeof(dir), "small"), 0);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(opts, sizeof(opts), "size=%dk,mode=0700", kib);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) < 0)
        return -errno;
    setenv("SPECULO_DIR", dir, 1);
    return 0;
}
