/*
 * multiprocess: visibility across processes, many readers, the writer role
 * (-EBUSY, takeover after a crash, owner tokens), readers without write
 * access.
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "th.h"

#define OTHER_UID 65534

/* Chunk i of a test stream: 8 bytes of sequence number, then a pattern. */
static size_t stream_size(uint64_t i)
{
    return 8 + (size_t)((i * 37) % 3000);
}

static void stream_fill(void *p, uint64_t i)
{
    memcpy(p, &i, 8);
    t_fill((char *)p + 8, stream_size(i) - 8, i);
}

/* 0 when the chunk is stream chunk i. */
static int stream_check(const speculo_chunk *c, uint64_t i)
{
    if (c->size != stream_size(i))
        return 1;
    uint64_t seq;
    memcpy(&seq, c->data, 8);
    if (seq != i)
        return 2;
    if (t_check_fill((const char *)c->data + 8, c->size - 8, i))
        return 3;
    return 0;
}

static uint64_t stream_put(speculo_writer *w, uint64_t i)
{
    void *p;
    uint64_t id = 0;
    if (speculo_writer_alloc(w, stream_size(i), &p) < 0)
        return 0;
    stream_fill(p, i);
    if (speculo_writer_commit(w, NULL, &id) < 0)
        return 0;
    return id;
}

/*
 * next() must return stream chunks from .. to-1, whole, chunk i with the id
 * ids[i]. Returns `to` when they all came so, else the index of the first
 * that did not, after saying why on stderr: the test process asserts on it
 * with ck_assert, a child with T_CHILD_EQ.
 */
static uint64_t read_stream(speculo_reader *r, uint64_t from, uint64_t to, const uint64_t *ids)
{
    for (uint64_t i = from; i < to; i++) {
        speculo_chunk c;
        int rc = speculo_reader_next(r, &c);
        if (rc < 0) {
            fprintf(stderr, "stream chunk %llu: next = %d (%s)\n", (unsigned long long)i, rc,
                    speculo_strerror(rc));
            return i;
        }
        if (c.id != ids[i] || stream_check(&c, i) != 0) {
            fprintf(stderr, "stream chunk %llu: id %llu (expected %llu), check %d\n",
                    (unsigned long long)i, (unsigned long long)c.id,
                    (unsigned long long)ids[i], stream_check(&c, i));
            return i;
        }
    }
    return to;
}

START_TEST(commit_visible_across_processes)
{
    enum { N = 50 };
    speculo_writer *w0 = th_writer("s", 64 << 10);
    speculo_writer_close(w0);
    speculo_reader *r = th_reader("s");
    struct t_sync committed, go;
    ck_assert_int_eq(t_sync_init(&committed), 0);
    ck_assert_int_eq(t_sync_init(&go), 0);
    uint64_t *ids = t_shared_alloc(N * sizeof(uint64_t));
    ck_assert_ptr_nonnull(ids);
    struct th_child writer;
    if (th_fork(&writer)) {
        speculo_writer *w = th_child_writer("s", NULL);
        for (int i = 0; i < N; i++) {
            T_CHILD_EQ(t_sync_wait(&go, T_PATIENCE_MS), 'g');
            ids[i] = stream_put(w, (uint64_t)i);
            T_CHILD_ASSERT(ids[i] != 0);
            T_CHILD_EQ(t_sync_post(&committed, 'c'), 0);
        }
        speculo_writer_close(w);
        _exit(0);
    }
    for (int i = 0; i < N; i++) {
        th_next_none(r);
        ck_assert_int_eq(t_sync_post(&go, 'g'), 0);
        ck_assert_int_eq(t_sync_wait(&committed, T_PATIENCE_MS), 'c');
        /* Visible as soon as commit returned, complete. */
        ck_assert_uint_eq(read_stream(r, (uint64_t)i, (uint64_t)i + 1, ids), i + 1);
        if (i)
            ck_assert_uint_gt(ids[i], ids[i - 1]);
    }
    th_next_none(r);
    ck_assert_int_eq(t_wait(writer.pid, T_PATIENCE_MS), 0);
    speculo_reader_close(r);
    t_shared_free(ids, N * sizeof(uint64_t));
}
END_TEST

/* A reader child for many_readers: read the whole stream of n chunks,
 * following with wait, and note the ids. */
static void stream_reader_child(struct th_child *self, int n, uint64_t *ids)
{
    speculo_reader *r = th_child_reader("s");
    th_child_ready(self);
    uint64_t prev = 0;
    for (int i = 0; i < n;) {
        speculo_chunk c;
        int rc = speculo_reader_next(r, &c);
        if (rc == -EAGAIN) {
            T_CHILD_EQ(speculo_reader_wait(r, T_PATIENCE_MS), 0);
            continue;
        }
        T_CHILD_EQ(rc, 0);
        T_CHILD_ASSERT(c.id > prev);
        T_CHILD_EQ(stream_check(&c, (uint64_t)i), 0);
        prev = ids[i] = c.id;
        i++;
    }
    speculo_chunk c;
    T_CHILD_EQ(speculo_reader_next(r, &c), -EAGAIN);
    speculo_reader_close(r);
    _exit(0);
}

START_TEST(many_readers_see_all_in_order)
{
    enum { READERS = 4, N = 2000 };
    speculo_writer *w = th_writer("s", 256 << 10);
    uint64_t *ids = t_shared_alloc((READERS + 1) * N * sizeof(uint64_t));
    ck_assert_ptr_nonnull(ids);
    struct th_child readers[READERS];
    for (int k = 0; k < READERS; k++)
        if (th_fork(&readers[k]))
            stream_reader_child(&readers[k], N, ids + (size_t)(k + 1) * N);
    for (int k = 0; k < READERS; k++)
        th_await_ready(&readers[k]);
    for (int i = 0; i < N; i++) {
        ids[i] = stream_put(w, (uint64_t)i);
        ck_assert_uint_ne(ids[i], 0);
        if (i % 400 == 399)
            ck_assert_int_eq(speculo_writer_gc(w), 0);
        if (i % 97 == 0)
            t_sleep_ms(1); /* pacing: the readers sometimes catch up and wait */
    }
    for (int k = 0; k < READERS; k++)
        ck_assert_int_eq(t_wait(readers[k].pid, 60000), 0);
    for (int k = 0; k < READERS; k++)
        ck_assert_int_eq(memcmp(ids, ids + (size_t)(k + 1) * N, N * sizeof(uint64_t)), 0);
    speculo_writer_close(w);
    t_shared_free(ids, (READERS + 1) * N * sizeof(uint64_t));
}
END_TEST

START_TEST(second_writer_other_process_ebusy)
{
    struct t_sync quit;
    ck_assert_int_eq(t_sync_init(&quit), 0);
    struct th_child writer;
    if (th_fork(&writer)) {
        speculo_writer *w = th_child_writer("s", NULL);
        struct speculo_commit_options o = {.name = "child"};
        T_CHILD_EQ(speculo_writer_put(w, "c", 1, &o, NULL), 0);
        th_child_ready(&writer);
        T_CHILD_EQ(t_sync_wait(&quit, T_PATIENCE_MS), 'q');
        speculo_writer_close(w);
        _exit(0);
    }
    th_await_ready(&writer);
    speculo_writer *w = (speculo_writer *)&w;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EBUSY);
    ck_assert_ptr_eq(w, (speculo_writer *)&w);
    ck_assert_int_eq(speculo_segment_remove("s", 0), -EBUSY);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, writer.pid);
    ck_assert_int_eq(info.writer_alive, 1);
    ck_assert_int_eq(t_sync_post(&quit, 'q'), 0);
    ck_assert_int_eq(t_wait(writer.pid, T_PATIENCE_MS), 0);
    w = th_writer("s", 0);
    th_puts(w, "parent", NULL);
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, getpid());
    speculo_writer_close(w);
    speculo_reader_close(r);
}
END_TEST

START_TEST(writer_killed_between_alloc_and_commit)
{
    enum { N = 5 };
    uint64_t *ids = t_shared_alloc(N * sizeof(uint64_t));
    ck_assert_ptr_nonnull(ids);
    struct th_child writer;
    if (th_fork(&writer)) {
        struct speculo_writer_options o = {.capacity = 64 << 10};
        speculo_writer *w = th_child_writer("s", &o);
        for (int i = 0; i < N; i++) {
            ids[i] = stream_put(w, (uint64_t)i);
            T_CHILD_ASSERT(ids[i] != 0);
        }
        void *p;
        T_CHILD_EQ(speculo_writer_alloc(w, 3000, &p), 0);
        memset(p, 0xee, 3000);
        th_child_ready(&writer);
        for (;;)
            pause();
    }
    th_await_ready(&writer);
    speculo_reader *r = th_reader("s");
    ck_assert_int_eq(t_kill_wait(writer.pid, SIGKILL), 128 + SIGKILL);

    ck_assert_uint_eq(read_stream(r, 0, N, ids), N);
    th_next_none(r);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, writer.pid);
    ck_assert_int_eq(info.writer_alive, 0);
    ck_assert_uint_eq(info.last_id, ids[N - 1]);

    /* A new writer takes over and continues after the last commit. */
    speculo_writer *w = th_writer("s", 0);
    uint64_t next = th_puts(w, "after the crash", NULL);
    ck_assert_uint_gt(next, ids[N - 1]);
    th_nexts(r, next, "after the crash");
    th_next_none(r);
    speculo_reader *r2 = th_reader("s");
    ck_assert_uint_eq(read_stream(r2, 0, N, ids), N);
    th_nexts(r2, next, "after the crash");
    th_next_none(r2);
    th_info(r2, &info);
    ck_assert_int_eq(info.writer_pid, getpid());
    ck_assert_int_eq(info.writer_alive, 1);
    speculo_reader_close(r2);
    speculo_reader_close(r);
    speculo_writer_close(w);
    t_shared_free(ids, N * sizeof(uint64_t));
}
END_TEST

START_TEST(writer_killed_after_commits_keeps_all)
{
    enum { N = 50 };
    uint64_t *ids = t_shared_alloc(N * sizeof(uint64_t));
    ck_assert_ptr_nonnull(ids);
    struct th_child writer;
    if (th_fork(&writer)) {
        speculo_writer *w = th_child_writer("s", NULL);
        for (int i = 0; i < N; i++) {
            char name[16];
            snprintf(name, sizeof(name), "n%d", i % 10);
            void *p;
            T_CHILD_EQ(speculo_writer_alloc(w, stream_size((uint64_t)i), &p), 0);
            stream_fill(p, (uint64_t)i);
            struct speculo_commit_options o = {.name = (i < 10) ? name : NULL};
            T_CHILD_EQ(speculo_writer_commit(w, &o, &ids[i]), 0);
        }
        th_child_ready(&writer);
        for (;;)
            pause();
    }
    th_await_ready(&writer);
    ck_assert_int_eq(t_kill_wait(writer.pid, SIGKILL), 128 + SIGKILL);
    speculo_reader *r = th_reader("s");
    ck_assert_uint_eq(read_stream(r, 0, N, ids), N);
    th_next_none(r);
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        speculo_chunk c;
        ck_assert_int_eq(speculo_reader_get(r, name, &c), 0);
        ck_assert_uint_eq(c.id, ids[i]);
    }
    speculo_writer *w = th_writer("s", 0);
    uint64_t next = th_puts(w, "next", "n0");
    ck_assert_uint_gt(next, ids[N - 1]);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "n0", &c), 0);
    ck_assert_uint_eq(c.id, next);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), ids[0]);
    speculo_writer_close(w);
    speculo_reader_close(r);
    t_shared_free(ids, N * sizeof(uint64_t));
}
END_TEST

static int count_dot_files(void)
{
    DIR *d = opendir(t_dir());
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] == '.' && strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Kill a writer that streams as fast as it can (collecting now and then)
 * at some instant after it committed `after` chunks (it stops at 20000);
 * the stream must be whole up to the last commit. */
static void kill_streaming_writer(const char *seg, uint64_t after)
{
    struct { _Atomic uint64_t last; } *shared = t_shared_alloc(4096);
    ck_assert_ptr_nonnull(shared);
    atomic_store(&shared->last, UINT64_MAX);
    struct th_child writer;
    if (th_fork(&writer)) {
        struct speculo_writer_options o = {.capacity = 64 << 10};
        speculo_writer *w = th_child_writer(seg, &o);
        th_child_ready(&writer);
        for (uint64_t i = 0;; i++) {
            T_CHILD_ASSERT(stream_put(w, i) != 0);
            atomic_store(&shared->last, i);
            if (i % 64 == 63)
                T_CHILD_EQ(speculo_writer_gc(w), 0);
            if (i == 20000)
                for (;;)
                    pause();
        }
    }
    th_await_ready(&writer);
    int64_t t0 = t_mono_ns();
    uint64_t last;
    while ((last = atomic_load(&shared->last)) == UINT64_MAX || last < after) {
        ck_assert_msg(t_ms_since(t0) < 60000, "%llu commits of %llu in 60 s",
                      (unsigned long long)(last + 1), (unsigned long long)after);
        sched_yield();
    }
    ck_assert_int_eq(t_kill_wait(writer.pid, SIGKILL), 128 + SIGKILL);
    last = atomic_load(&shared->last);

    speculo_reader *r = th_reader(seg);
    uint64_t n = 0, prev = 0;
    speculo_chunk c;
    int rc;
    while ((rc = speculo_reader_next(r, &c)) == 0) {
        ck_assert_uint_gt(c.id, prev);
        ck_assert_msg(stream_check(&c, n) == 0, "chunk %llu (id %llu) damaged",
                      (unsigned long long)n, (unsigned long long)c.id);
        prev = c.id;
        n++;
    }
    ck_assert_int_eq(rc, -EAGAIN);
    /* All that was committed, and at most the one being noted. */
    ck_assert_msg(n == last + 1 || n == last + 2, "read %llu chunks, last committed %llu",
                  (unsigned long long)n, (unsigned long long)last);
    speculo_writer *w = th_writer(seg, 0);
    /* The new writer cleaned up what a collection killed midway left. */
    ck_assert_int_eq(count_dot_files(), 0);
    uint64_t id = stream_put(w, n);
    ck_assert_uint_gt(id, prev);
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    ck_assert_uint_eq(c.id, id);
    ck_assert_int_eq(stream_check(&c, n), 0);
    speculo_writer_close(w);
    speculo_reader_close(r);
    t_shared_free(shared, 4096);
    t_sync_close(&writer.ready);
}

START_TEST(writer_killed_at_any_instant)
{
    const uint64_t after[] = {0, 50, 300, 1000, 3000};
    char seg[16];
    for (int i = 0; i < 5; i++) {
        snprintf(seg, sizeof(seg), "s%d", i);
        kill_streaming_writer(seg, after[i]);
    }
}
END_TEST

static void forge_owner(const char *seg, uint64_t token)
{
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map(seg, &m), 0);
    atomic_store(&t_seg_hdr(&m)->owner, token);
    t_seg_unmap(&m);
}

static uint64_t token_of(pid_t pid, uint64_t ticks)
{
    return (uint64_t)pid | (ticks << OWNER_PID_BITS);
}

START_TEST(dead_owner_recognised)
{
    struct th_child writer;
    if (th_fork(&writer)) {
        speculo_writer *w = th_child_writer("s", NULL);
        T_CHILD_EQ(speculo_writer_put(w, "x", 1, NULL, NULL), 0);
        _exit(0); /* without closing: the role is left to a dead process */
    }
    ck_assert_int_eq(t_wait(writer.pid, T_PATIENCE_MS), 0);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, writer.pid);
    ck_assert_int_eq(info.writer_alive, 0);
    char buf[2048];
    ck_assert_int_gt(speculo_segment_describe("s", buf, sizeof(buf)), 0);
    /* A dead writer does not block removal, nor a new writer. */
    speculo_writer *w = th_writer("s", 0);
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, getpid());
    ck_assert_int_eq(info.writer_alive, 1);
    speculo_writer_close(w);
    speculo_reader_close(r);
}
END_TEST

/* The owner word only names the writer: a token that names a live
 * process, or a dead one, or ours, neither holds nor blocks the role
 * (only the role's lock does, see the role suite). */
START_TEST(owner_word_alone_does_not_hold_role)
{
    speculo_writer *w = th_writer("s", 0);
    uint64_t a = th_puts(w, "a", NULL);
    speculo_writer_close(w);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;

    /* pid 1 with its real start time: a live process, but no lock */
    uint64_t t1 = t_proc_start_ticks(1);
    ck_assert_uint_gt(t1, 0);
    forge_owner("s", token_of(1, t1));
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, 1);
    ck_assert_int_eq(info.writer_alive, 0);
    w = th_writer("s", 0);
    uint64_t b = th_puts(w, "b", NULL);
    ck_assert_uint_gt(b, a);
    speculo_writer_close(w);

    /* our own token, as if an earlier handle of ours had not closed */
    forge_owner("s", token_of(getpid(), t_proc_start_ticks(getpid())));
    w = th_writer("s", 0);
    speculo_writer_close(w);

    th_nexts(r, a, "a");
    th_nexts(r, b, "b");
    th_next_none(r);
    speculo_reader_close(r);
}
END_TEST

START_TEST(live_writer_busy_until_killed)
{
    struct th_child owner;
    if (th_fork(&owner)) {
        speculo_writer *w = th_child_writer("s", NULL);
        T_CHILD_EQ(speculo_writer_put(w, "x", 1, NULL, NULL), 0);
        th_child_ready(&owner);
        for (;;)
            pause();
    }
    th_await_ready(&owner);
    /* even with a forged owner word that names a dead process */
    forge_owner("s", token_of(1, t_proc_start_ticks(1) + 12345));
    speculo_writer *w = (speculo_writer *)&w;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), -EBUSY);
    ck_assert_ptr_eq(w, (speculo_writer *)&w);
    ck_assert_int_eq(speculo_segment_remove("s", 0), -EBUSY);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(info.writer_alive, 1);
    ck_assert_int_eq(t_kill_wait(owner.pid, SIGKILL), 128 + SIGKILL);
    th_info(r, &info);
    ck_assert_int_eq(info.writer_alive, 0);
    w = th_writer("s", 0);
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, getpid());
    ck_assert_int_eq(info.writer_alive, 1);
    speculo_writer_close(w);
    speculo_reader_close(r);
}
END_TEST

START_TEST(read_only_reader_reads_everything)
{
    enum { N = 300 };
    speculo_writer *w = th_writer_at(__FILE__, __LINE__, "s", 128 << 10, 0640);
    uint64_t *ids = t_shared_alloc(2 * N * sizeof(uint64_t));
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++)
        ids[i] = stream_put(w, (uint64_t)i);
    th_puts(w, "named value", "cfg");
    char path[256];
    ck_assert_int_eq(t_path(path, sizeof(path), "s"), 0);
    ck_assert_int_eq(chmod(path, 0440), 0);
    ck_assert_int_eq(chmod(t_dir(), 0750), 0);

    struct t_sync gcd;
    ck_assert_int_eq(t_sync_init(&gcd), 0);
    struct th_child reader;
    if (th_fork(&reader)) {
        T_CHILD_EQ(t_become(OTHER_UID, 0), 0);
        speculo_reader *r = th_child_reader("s");
        T_CHILD_EQ(read_stream(r, 0, N / 2, ids), N / 2);
        speculo_chunk c;
        T_CHILD_EQ(speculo_reader_get(r, "cfg", &c), 0);
        T_CHILD_ASSERT(c.size == 11 && memcmp(c.data, "named value", 11) == 0);
        T_CHILD_EQ(speculo_reader_get_id(r, ids[7], &c), 0);
        T_CHILD_EQ(stream_check(&c, 7), 0);
        struct speculo_segment_info info;
        T_CHILD_EQ(speculo_reader_info(r, &info), 0);
        T_CHILD_EQ(info.live_chunks, N + 1);
        char buf[2048];
        T_CHILD_ASSERT(speculo_segment_describe("s", buf, sizeof(buf)) > 0);
        th_child_ready(&reader); /* half read */
        /* The writer collects and adds more: the reader follows. */
        T_CHILD_EQ(t_sync_wait(&gcd, T_PATIENCE_MS), 'g');
        T_CHILD_EQ(read_stream(r, N / 2, N, ids), N);
        T_CHILD_EQ(speculo_reader_next(r, &c), 0);
        T_CHILD_ASSERT(c.name && strcmp(c.name, "cfg") == 0);
        T_CHILD_EQ(read_stream(r, N, 2 * N, ids), 2 * N);
        T_CHILD_EQ(speculo_reader_next(r, &c), -EAGAIN);
        T_CHILD_EQ(speculo_reader_info(r, &info), 0);
        T_CHILD_ASSERT(info.generation >= 2);
        speculo_reader_close(r);
        _exit(0);
    }
    th_await_ready(&reader);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    for (int i = N; i < 2 * N; i++)
        ids[i] = stream_put(w, (uint64_t)i);
    ck_assert_int_eq(t_sync_post(&gcd, 'g'), 0);
    ck_assert_int_eq(t_wait(reader.pid, 20000), 0);
    speculo_writer_close(w);
    t_shared_free(ids, 2 * N * sizeof(uint64_t));
}
END_TEST

START_TEST(reader_without_any_access_refused)
{
    speculo_writer *w = th_writer("s", 0);
    th_puts(w, "secret", NULL);
    speculo_writer_close(w);
    ck_assert_int_eq(chmod(t_dir(), 0755), 0);
    struct th_child stranger;
    if (th_fork(&stranger)) {
        T_CHILD_EQ(t_become(OTHER_UID, OTHER_UID), 0);
        speculo_reader *r = NULL;
        T_CHILD_EQ(speculo_reader_open("s", &r), -EACCES);
        T_CHILD_ASSERT(r == NULL);
        speculo_writer *wr = NULL;
        int rc = speculo_writer_open("s", NULL, &wr);
        T_CHILD_ASSERT(rc == -EPERM || rc == -EACCES);
        _exit(0);
    }
    ck_assert_int_eq(t_wait(stranger.pid, T_PATIENCE_MS), 0);
}
END_TEST

/* `n` children try to become the writer of `seg` at the same instant;
 * returns how many succeeded (a winner holds the role until every child
 * has tried, then closes). */
static int race_for_role(const char *seg, int n)
{
    struct t_sync go[16];
    struct th_child racers[16];
    struct race {
        int results[16];
        _Atomic int tried;
    } *race = t_shared_alloc(sizeof *race);
    ck_assert_ptr_nonnull(race);
    ck_assert_int_le(n, 16);
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(t_sync_init(&go[k]), 0);
        if (th_fork(&racers[k])) {
            th_child_ready(&racers[k]);
            T_CHILD_EQ(t_sync_wait(&go[k], T_PATIENCE_MS), 'g');
            speculo_writer *w = NULL;
            race->results[k] = speculo_writer_open(seg, NULL, &w);
            atomic_fetch_add(&race->tried, 1);
            if (race->results[k] == 0) {
                T_CHILD_EQ(speculo_writer_put(w, "mine", 4, NULL, NULL), 0);
                int64_t t0 = t_mono_ns();
                while (atomic_load(&race->tried) < n) {
                    T_CHILD_ASSERT(t_ms_since(t0) < T_PATIENCE_MS);
                    t_sleep_ms(1);
                }
                speculo_writer_close(w);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < n; k++)
        th_await_ready(&racers[k]);
    for (int k = 0; k < n; k++)
        ck_assert_int_eq(t_sync_post(&go[k], 'g'), 0);
    int winners = 0;
    for (int k = 0; k < n; k++) {
        ck_assert_int_eq(t_wait(racers[k].pid, 2 * T_PATIENCE_MS), 0);
        ck_assert_msg(race->results[k] == 0 || race->results[k] == -EBUSY,
                      "child %d: writer_open = %d", k, race->results[k]);
        winners += race->results[k] == 0;
        t_sync_close(&go[k]);
        t_sync_close(&racers[k].ready);
    }
    t_shared_free(race, sizeof *race);
    return winners;
}

START_TEST(concurrent_creation_one_writer)
{
    for (int round = 0; round < 5; round++) {
        char seg[16];
        snprintf(seg, sizeof(seg), "race%d", round);
        ck_assert_int_eq(race_for_role(seg, 8), 1);
        speculo_reader *r = th_reader(seg);
        th_nexts(r, 0, "mine");
        th_next_none(r);
        speculo_reader_close(r);
    }
    /* No temporary file left behind. */
    ck_assert_int_eq(t_dir_count(t_dir()), 5);
}
END_TEST

START_TEST(concurrent_takeover_one_writer)
{
    for (int round = 0; round < 5; round++) {
        char seg[16];
        snprintf(seg, sizeof(seg), "dead%d", round);
        struct th_child writer;
        if (th_fork(&writer)) {
            speculo_writer *w = th_child_writer(seg, NULL);
            T_CHILD_EQ(speculo_writer_put(w, "dead", 4, NULL, NULL), 0);
            _exit(0);
        }
        ck_assert_int_eq(t_wait(writer.pid, T_PATIENCE_MS), 0);
        t_sync_close(&writer.ready);
        ck_assert_int_eq(race_for_role(seg, 8), 1);
        speculo_reader *r = th_reader(seg);
        th_nexts(r, 0, "dead");
        th_nexts(r, 0, "mine");
        th_next_none(r);
        speculo_reader_close(r);
    }
}
END_TEST

/* The writer collects after every few commits and obsoletes every odd
 * chunk when it commits the next one; a reader in another process must see
 * every even chunk, in order, whole, and nothing twice. */
START_TEST(stream_with_constant_gc_and_obsolete)
{
    enum { N = 3000 };
    speculo_writer *w0 = th_writer("s", 64 << 10);
    speculo_writer_close(w0);
    struct th_child reader;
    if (th_fork(&reader)) {
        speculo_reader *r = th_child_reader("s");
        th_child_ready(&reader);
        uint64_t prev_id = 0, expect = 0;
        while (expect < N) {
            speculo_chunk c;
            int rc = speculo_reader_next(r, &c);
            if (rc == -EAGAIN) {
                T_CHILD_EQ(speculo_reader_wait(r, T_PATIENCE_MS), 0);
                continue;
            }
            T_CHILD_EQ(rc, 0);
            T_CHILD_ASSERT(c.id > prev_id);
            prev_id = c.id;
            T_CHILD_ASSERT(c.size >= 8);
            uint64_t seq;
            memcpy(&seq, c.data, 8);
            /* An odd one may be missed (obsoleted before we got there),
             * an even one never. */
            if (seq != expect) {
                T_CHILD_ASSERT(expect % 2 == 1 && seq == expect + 1);
                expect = seq;
            }
            T_CHILD_EQ(stream_check(&c, seq), 0);
            expect++;
        }
        speculo_reader_close(r);
        _exit(0);
    }
    th_await_ready(&reader);
    speculo_writer *w = th_writer("s", 0);
    uint64_t prev = 0;
    for (uint64_t i = 0; i < N; i++) {
        void *p;
        ck_assert_int_eq(speculo_writer_alloc(w, stream_size(i), &p), 0);
        stream_fill(p, i);
        struct speculo_commit_options o = {.replaces = (i % 2 == 0 && i > 0) ? prev : 0};
        ck_assert_int_eq(speculo_writer_commit(w, &o, &prev), 0);
        if (i % 7 == 0)
            ck_assert_int_eq(speculo_writer_gc(w), 0);
    }
    ck_assert_int_eq(t_wait(reader.pid, 30000), 0);
    speculo_writer_close(w);
}
END_TEST

/*
 * A live chunk is found by id and by name at every instant, also while the
 * collector switches files under the reader: a reader that follows the
 * name to the new file must find it complete (its id table counted)
 * before the switch is visible.
 */
START_TEST(get_finds_live_chunk_across_gc_switches)
{
    enum { CHUNKS = 1500, SWITCHES = 1500 };
    speculo_writer *w0 = th_writer("s", 256 << 10);
    uint64_t mid = 0, last = 0;
    for (int i = 0; i < CHUNKS; i++) {
        last = th_puts(w0, "payload", NULL);
        if (i == CHUNKS / 2)
            mid = last;
    }
    th_puts(w0, "named", "k");
    speculo_writer_close(w0);
    int *done = t_shared_alloc(sizeof *done);
    ck_assert_ptr_nonnull(done);
    struct th_child gc;
    if (th_fork(&gc)) {
        speculo_writer *w = th_child_writer("s", NULL);
        th_child_ready(&gc);
        for (int i = 0; i < SWITCHES; i++)
            T_CHILD_EQ(speculo_writer_gc(w), 0);
        speculo_writer_close(w);
        __atomic_store_n(done, 1, __ATOMIC_RELEASE);
        _exit(0);
    }
    th_await_ready(&gc);
    speculo_reader *r = th_reader("s");
    uint64_t reads = 0, missed = 0, first_gen = 0, gen = 0;
    while (!__atomic_load_n(done, __ATOMIC_ACQUIRE)) {
        speculo_chunk c;
        struct speculo_segment_ident id;
        for (int k = 0; k < 64; k++, reads += 3) {
            missed += speculo_reader_get_id(r, mid, &c) != 0;
            missed += speculo_reader_get_id(r, last, &c) != 0;
            missed += speculo_reader_get(r, "k", &c) != 0;
        }
        ck_assert_int_eq(speculo_reader_ident(r, &id), 0);
        first_gen = first_gen ? first_gen : id.generation;
        gen = id.generation;
    }
    ck_assert_int_eq(t_wait(gc.pid, T_PATIENCE_MS), 0);
    t_shared_free(done, sizeof *done);
    ck_assert_msg(missed == 0, "%llu of %llu lookups of live chunks failed",
                  (unsigned long long)missed, (unsigned long long)reads);
    ck_assert_uint_gt(gen, first_gen); /* the reads did span switches */
    speculo_reader_close(r);
}
END_TEST

/* One process, a writer thread and reader threads, each with its own
 * handle: handles are independent. */
struct thread_reader {
    pthread_t th;
    int n;
    int failed_at;
    int rc;
};

static void *thread_read(void *arg)
{
    struct thread_reader *t = arg;
    speculo_reader *r = NULL;
    t->failed_at = -1;
    if ((t->rc = speculo_reader_open("s", &r)) < 0) {
        t->failed_at = 0;
        return NULL;
    }
    uint64_t prev = 0;
    for (int i = 0; i < t->n;) {
        speculo_chunk c;
        int rc = speculo_reader_next(r, &c);
        if (rc == -EAGAIN) {
            if ((rc = speculo_reader_wait(r, T_PATIENCE_MS)) < 0) {
                t->rc = rc;
                t->failed_at = i;
                break;
            }
            continue;
        }
        if (rc < 0 || c.id <= prev || stream_check(&c, (uint64_t)i) != 0) {
            t->rc = rc;
            t->failed_at = i;
            break;
        }
        prev = c.id;
        i++;
    }
    speculo_reader_close(r);
    return NULL;
}

START_TEST(threads_with_own_handles)
{
    enum { READERS = 3, N = 3000 };
    speculo_writer *w = th_writer("s", 128 << 10);
    struct thread_reader t[READERS];
    for (int k = 0; k < READERS; k++) {
        t[k].n = N;
        ck_assert_int_eq(pthread_create(&t[k].th, NULL, thread_read, &t[k]), 0);
    }
    for (uint64_t i = 0; i < N; i++) {
        ck_assert_uint_ne(stream_put(w, i), 0);
        if (i % 500 == 499)
            ck_assert_int_eq(speculo_writer_gc(w), 0);
    }
    for (int k = 0; k < READERS; k++) {
        pthread_join(t[k].th, NULL);
        ck_assert_msg(t[k].failed_at < 0, "reader thread %d failed at chunk %d (rc %d)", k,
                      t[k].failed_at, t[k].rc);
    }
    speculo_writer_close(w);
}
END_TEST

START_TEST(replaces_completed_after_crash)
{
    /* The writer dies after publishing Y (replaces X) but before marking X
     * obsolete. Y is committed, so its effect must hold once a new writer
     * takes over. The crash state is made by hand: X's mark cleared. */
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t x = th_puts(w, "x", NULL);
    uint64_t y = th_put(w, "y", 1, NULL, 0, x);
    speculo_writer_close(w);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    uint64_t offs[2];
    ck_assert_int_eq(t_seg_records(&m, offs, 2), 2);
    struct rec_header *rx = t_seg_rec(&m, offs[0]);
    ck_assert_uint_eq(rx->id, x);
    ck_assert_uint_eq(atomic_load(&rx->obsoleted_by), y);
    atomic_store(&rx->obsoleted_by, 0);
    atomic_store(&t_seg_hdr(&m)->obsolete_count, 0);
    atomic_store(&t_seg_hdr(&m)->dead_bytes, 0);
    t_seg_unmap(&m);

    w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    th_nexts(r, y, "y");
    th_next_none(r);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get_id(r, x, &c), -ENOENT);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

Suite *multiprocess_suite(void)
{
    Suite *s = suite_create("multiprocess");
    TCase *tc = th_tcase("visibility", 60);
    tcase_add_test(tc, commit_visible_across_processes);
    tcase_add_test(tc, many_readers_see_all_in_order);
    tcase_add_test(tc, stream_with_constant_gc_and_obsolete);
    tcase_add_test(tc, get_finds_live_chunk_across_gc_switches);
    tcase_add_test(tc, threads_with_own_handles);
    suite_add_tcase(s, tc);

    tc = th_tcase("writer_role", 30);
    tcase_add_test(tc, second_writer_other_process_ebusy);
    tcase_add_test(tc, writer_killed_between_alloc_and_commit);
    tcase_add_test(tc, writer_killed_after_commits_keeps_all);
    tcase_add_test(tc, writer_killed_at_any_instant);
    tcase_add_test(tc, dead_owner_recognised);
    tcase_add_test(tc, owner_word_alone_does_not_hold_role);
    tcase_add_test(tc, live_writer_busy_until_killed);
    tcase_add_test(tc, concurrent_creation_one_writer);
    tcase_add_test(tc, concurrent_takeover_one_writer);
    tcase_add_test(tc, replaces_completed_after_crash);
    suite_add_tcase(s, tc);

    if (th_root()) {
        tc = th_tcase("permissions", 30);
        tcase_add_test(tc, read_only_reader_reads_everything);
        tcase_add_test(tc, reader_without_any_access_refused);
        suite_add_tcase(s, tc);
    }
    return s;
}
