/*
 * edges: behaviour that coverage (make coverage) showed no test reached:
 * argument checks of every call, the takeover's repairs of a crashed
 * writer's name index, a collection killed between its mark and its
 * rename, a writer whose process is a zombie, a collection on a full
 * /dev/shm, removal of what is not a segment, info and seek on hostile
 * record chains.
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "th.h"

START_TEST(null_and_bad_arguments_einval)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_reader *r = th_reader("s");
    void *p;
    speculo_chunk c;
    struct speculo_segment_info info;
    char buf[8];
    uint64_t id = 0;
    ck_assert_int_eq(speculo_writer_open("s", NULL, NULL), -EINVAL);
    ck_assert_int_eq(speculo_reader_open("s", NULL), -EINVAL);
    struct speculo_writer_options big = {.capacity = (size_t)1 << 47};
    speculo_writer *w2 = NULL;
    ck_assert_int_eq(speculo_writer_open("t", &big, &w2), -EINVAL);
    ck_assert_ptr_null(w2);
    ck_assert_int_eq(speculo_writer_alloc(NULL, 1, &p), -EINVAL);
    ck_assert_int_eq(speculo_writer_alloc(w, 1, NULL), -EINVAL);
    ck_assert_int_eq(speculo_writer_commit(NULL, NULL, &id), -EINVAL);
    ck_assert_int_eq(speculo_writer_put(NULL, "x", 1, NULL, &id), -EINVAL);
    ck_assert_int_eq(speculo_writer_put(w, NULL, 5, NULL, &id), -EINVAL);
    ck_assert_int_eq(speculo_writer_obsolete(NULL, 1), -EINVAL);
    ck_assert_int_eq(speculo_writer_obsolete(w, 0), -ENOENT);
    ck_assert_int_eq(speculo_writer_gc(NULL), -EINVAL);
    ck_assert_int_eq(speculo_reader_next(NULL, &c), -EINVAL);
    ck_assert_int_eq(speculo_reader_next(r, NULL), -EINVAL);
    ck_assert_int_eq(speculo_reader_get(NULL, "a", &c), -EINVAL);
    ck_assert_int_eq(speculo_reader_get(r, "a", NULL), -EINVAL);
    ck_assert_int_eq(speculo_reader_get_id(NULL, 1, &c), -EINVAL);
    ck_assert_int_eq(speculo_reader_get_id(r, 1, NULL), -EINVAL);
    ck_assert_int_eq(speculo_reader_seek(NULL, 0), -EINVAL);
    ck_assert_int_eq(speculo_reader_wait(NULL, 0), -EINVAL);
    ck_assert_int_eq(speculo_reader_info(NULL, &info), -EINVAL);
    ck_assert_int_eq(speculo_reader_info(r, NULL), -EINVAL);
    ck_assert_int_eq(speculo_segment_dir(NULL, 10), -EINVAL);
    ck_assert_int_eq(speculo_segment_dir(buf, 2), -ENAMETOOLONG);
    ck_assert_int_eq(speculo_segment_describe("s", NULL, 5), -EINVAL);
    ck_assert_int_gt(speculo_segment_describe("s", NULL, 0), 0); /* the length only */
    ck_assert_int_eq(speculo_segment_remove("s", 2), -EINVAL);
    ck_assert_uint_eq(speculo_chunk_replaces(NULL), 0);
    /* none of it left a chunk; an empty chunk with no data is fine */
    th_next_none(r);
    ck_assert_int_eq(speculo_writer_put(w, NULL, 0, NULL, &id), 0);
    th_next(r, id, "", 0);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

static struct name_slot *slot_at(struct t_seg_map *m, uint64_t off)
{
    struct seg_header *h = t_seg_hdr(m);
    struct name_slot *slots = (void *)(m->p + h->index_off);
    for (uint64_t i = 0; i < h->index_slots; i++)
        if (atomic_load(&slots[i].off) == off)
            return &slots[i];
    return NULL;
}

START_TEST(takeover_repairs_index_of_crashed_writer)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t n1 = th_puts(w, "v1", "n");
    uint64_t n2 = th_puts(w, "v2", "n");
    uint64_t m1 = th_puts(w, "m1", "m");
    speculo_writer_close(w);
    /* The states a writer leaves when it dies right after a commit: the
     * index still at the previous version ("n"), or not yet holding a new
     * name at all ("m"). */
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    uint64_t offs[3];
    ck_assert_int_eq(t_seg_records(&m, offs, 3), 3);
    struct name_slot *sn = slot_at(&m, offs[1]), *sm = slot_at(&m, offs[2]);
    ck_assert_ptr_nonnull(sn);
    ck_assert_ptr_nonnull(sm);
    atomic_store(&sn->off, offs[0]);
    atomic_store(&t_seg_rec(&m, offs[0])->obsoleted_by, 0);
    atomic_store(&sm->off, 0);
    sm->hash = 0;
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "n", &c), 0);
    ck_assert_uint_eq(c.id, n1); /* what the index says until the repair */
    ck_assert_int_eq(speculo_reader_get(r, "m", &c), -ENOENT);

    w = th_writer("s", 0);
    ck_assert_int_eq(speculo_reader_get(r, "n", &c), 0);
    ck_assert_uint_eq(c.id, n2);
    th_chunk_is(&c, "v2", 2);
    ck_assert_int_eq(speculo_reader_get(r, "m", &c), 0);
    ck_assert_uint_eq(c.id, m1);
    ck_assert_int_eq(speculo_reader_get_id(r, n1, &c), -ENOENT);
    ck_assert_uint_eq(atomic_load(&t_seg_rec(&m, offs[0])->obsoleted_by), n2);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.obsolete_chunks, 1);
    ck_assert_uint_eq(info.live_chunks, 2);
    ck_assert_uint_eq(info.named_chunks, 2);
    th_nexts(r, n2, "v2");
    th_nexts(r, m1, "m1");
    th_next_none(r);
    /* the writer's own counts were rebuilt too: the next version replaces
     * the repaired one, and a reopen still counts one obsolete chunk */
    uint64_t n3 = th_puts(w, "v3", "n");
    ck_assert_int_eq(speculo_reader_get(r, "n", &c), 0);
    ck_assert_uint_eq(c.id, n3);
    ck_assert_uint_eq(speculo_chunk_replaces(&c), n2);
    speculo_writer_close(w);
    w = th_writer("s", 0);
    th_info(r, &info);
    ck_assert_uint_eq(info.obsolete_chunks, 2);
    ck_assert_uint_eq(info.dead_bytes, 2 * rec_length(2, 1));
    speculo_writer_close(w);
    speculo_reader_close(r);
    t_seg_unmap(&m);
}
END_TEST

START_TEST(takeover_clears_mark_of_gc_killed_before_rename)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t a = th_puts(w, "a", NULL);
    speculo_writer_close(w);
    speculo_reader *r = th_reader("s");
    /* A collection marked the file superseded and died before renaming its
     * successor in (which the next writer removes as a stale temporary). */
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    atomic_store(&t_seg_hdr(&m)->superseded, 2);
    th_nexts(r, a, "a");
    th_next_none(r);
    w = th_writer("s", 0);
    ck_assert_uint_eq(atomic_load(&t_seg_hdr(&m)->superseded), 0);
    uint64_t b = th_puts(w, "b", NULL);
    th_nexts(r, b, "b");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.generation, 1);
    speculo_writer_close(w);
    speculo_reader_close(r);
    t_seg_unmap(&m);
}
END_TEST

START_TEST(takeover_from_zombie_writer)
{
    struct th_child writer;
    if (th_fork(&writer)) {
        speculo_writer *w = th_child_writer("s", NULL);
        T_CHILD_EQ(speculo_writer_put(w, "z", 1, NULL, NULL), 0);
        th_child_ready(&writer);
        for (;;)
            pause();
    }
    th_await_ready(&writer);
    ck_assert_int_eq(kill(writer.pid, SIGKILL), 0);
    /* dead, not reaped: a zombie still holding its pid */
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    ck_assert_int_eq(waitid(P_PID, (id_t)writer.pid, &si, WEXITED | WNOWAIT), 0);
    ck_assert_int_eq(si.si_code, CLD_KILLED);
    ck_assert_int_eq(kill(writer.pid, 0), 0);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, writer.pid);
    ck_assert_int_eq(info.writer_alive, 0);
    speculo_writer *w = NULL;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), 0); /* at once, no -EBUSY */
    uint64_t id = th_puts(w, "after", NULL);
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_next(r, &c), 0);
    th_chunk_is(&c, "z", 1);
    th_nexts(r, id, "after");
    ck_assert_int_eq(t_wait(writer.pid, T_PATIENCE_MS), 128 + SIGKILL);
    speculo_writer_close(w);
    speculo_reader_close(r);
    t_sync_close(&writer.ready);
}
END_TEST

START_TEST(owner_token_with_pid_0_is_dead)
{
    speculo_writer *w = th_writer("s", 0);
    th_puts(w, "x", NULL);
    speculo_writer_close(w);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    atomic_store(&t_seg_hdr(&m)->owner, UINT64_C(12345) << OWNER_PID_BITS);
    t_seg_unmap(&m);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_int_eq(info.writer_pid, 0);
    ck_assert_int_eq(info.writer_alive, 0);
    w = th_writer("s", 0);
    speculo_writer_close(w);
    speculo_reader_close(r);
}
END_TEST

/* Fill the filesystem of the segment directory, leaving about @room
 * bytes free; returns the filler's path (static). */
static const char *fill_fs(size_t room)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/filler", getenv("SPECULO_DIR"));
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    char block[4096];
    memset(block, 1, sizeof block);
    while (write(fd, block, sizeof block) == (ssize_t)sizeof block)
        ;
    close(fd);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(truncate(path, st.st_size - (off_t)room), 0);
    return path;
}

/* What readers and writers of a missing segment get on a full filesystem:
 * an error, never SIGBUS (the test dies of it otherwise). */
static void assert_clean_errors(const char *seg, int reader_rc)
{
    speculo_reader *r;
    int rc = speculo_reader_open(seg, &r);
    ck_assert_msg(rc == reader_rc || (reader_rc == 0 && rc == 0), "reader_open = %d", rc);
    if (rc == 0)
        speculo_reader_close(r);
    char buf[2048];
    rc = speculo_segment_describe(seg, buf, sizeof buf);
    ck_assert_msg(rc == -ENOENT || rc > 0, "describe = %d", rc);
}

/* The first put into a new segment on a full filesystem fails with an
 * error and leaves no segment behind; once there is space again all is
 * well. */
START_TEST(create_on_full_fs_leaves_nothing)
{
    int rc = th_small_tmpfs(1024);
    if (rc < 0) {
        fprintf(stderr, "create_on_full_fs_leaves_nothing: no tmpfs (%d), skipped\n", rc);
        return;
    }
    const char *filler = fill_fs(8 << 10);
    speculo_writer *w;
    rc = speculo_writer_open("s", NULL, &w);
    ck_assert_msg(rc == -ENOSPC || rc == -ENOMEM, "writer_open on a full fs = %d", rc);
    ck_assert_int_eq(t_dir_count(getenv("SPECULO_DIR")), 1); /* the filler alone */
    assert_clean_errors("s", -ENOENT);
    rc = speculo_writer_open("s", NULL, &w);
    ck_assert_msg(rc == -ENOSPC || rc == -ENOMEM, "second writer_open = %d", rc);
    ck_assert_int_eq(unlink(filler), 0);
    w = th_writer("s", 0);
    uint64_t id = th_puts(w, "hello", "n");
    speculo_reader *r = th_reader("s");
    th_nexts(r, id, "hello");
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

/* A segment an older library left half-made on a full filesystem: its
 * header written, the pages after it never allocated. Touching those would
 * raise SIGBUS: every call gives an error instead, and once space is freed
 * the segment works again. */
START_TEST(half_made_segment_on_full_fs_gives_errors)
{
    int rc = th_small_tmpfs(1024);
    if (rc < 0) {
        fprintf(stderr, "half_made_segment_on_full_fs_gives_errors: no tmpfs (%d), skipped\n",
                rc);
        return;
    }
    speculo_writer *w = th_writer("s", 256 << 10);
    speculo_writer_close(w);
    char path[256], header[4096];
    snprintf(path, sizeof path, "%s/s", getenv("SPECULO_DIR"));
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, header, sizeof header, 0), (ssize_t)sizeof header);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    size_t size = (size_t)st.st_size;
    close(fd);
    ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
    snprintf(path, sizeof path, "%s/h", getenv("SPECULO_DIR"));
    fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    ck_assert_int_eq(pwrite(fd, header, sizeof header, 0), (ssize_t)sizeof header);
    close(fd);
    const char *filler = fill_fs(0);
    assert_clean_errors("h", -ENOSPC);
    char text[2048];
    ck_assert_int_gt(speculo_segment_describe("h", text, sizeof text), 0);
    ck_assert_msg(strstr(text, "status: error") != NULL, "%s", text);
    rc = speculo_writer_open("h", NULL, &w);
    ck_assert_msg(rc == -ENOSPC || rc == -ENOMEM, "writer_open = %d", rc);
    ck_assert_int_eq(unlink(filler), 0);
    assert_clean_errors("h", 0);
    w = th_writer("h", 0);
    uint64_t id = th_puts(w, "again", "n");
    speculo_reader *r = th_reader("h");
    th_nexts(r, id, "again");
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(gc_on_full_shm_fails_cleanly)
{
    int rc = th_small_tmpfs(1024);
    if (rc < 0) {
        fprintf(stderr, "gc_on_full_shm_fails_cleanly: no tmpfs (%d), skipped\n", rc);
        return;
    }
    speculo_writer *w = th_writer("s", 256 << 10);
    uint64_t first = th_puts(w, "first", "name");
    char path[256];
    snprintf(path, sizeof(path), "%s/filler", getenv("SPECULO_DIR"));
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    char block[4096];
    memset(block, 1, sizeof(block));
    while (write(fd, block, sizeof(block)) == (ssize_t)sizeof(block))
        ;
    close(fd);
    /* no room for the new file: an error, no SIGBUS, nothing left behind,
     * the segment as it was */
    rc = speculo_writer_gc(w);
    ck_assert_msg(rc == -ENOMEM || rc == -ENOSPC, "gc on a full tmpfs = %d", rc);
    ck_assert_int_eq(t_dir_count(getenv("SPECULO_DIR")), 2);
    speculo_reader *r = th_reader("s");
    speculo_chunk c;
    ck_assert_int_eq(speculo_reader_get(r, "name", &c), 0);
    ck_assert_uint_eq(c.id, first);
    uint64_t second = th_puts(w, "second", NULL);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(speculo_writer_gc(w), 0);
    th_nexts(r, first, "first");
    th_nexts(r, second, "second");
    th_next_none(r);
    struct speculo_segment_info info;
    th_info(r, &info);
    ck_assert_uint_eq(info.generation, 2);
    speculo_reader_close(r);
    speculo_writer_close(w);
}
END_TEST

START_TEST(describe_and_remove_odd_files)
{
    speculo_writer *w = th_writer("s", 0);
    speculo_writer_close(w);
    char buf[2048];
    ck_assert_int_gt(speculo_segment_describe("s", buf, sizeof(buf)), 0);
    ck_assert_ptr_nonnull(strstr(buf, "last_commit: -\n"));
    ck_assert_ptr_nonnull(strstr(buf, "last_id: 0\n"));
    /* a file that is no segment is removed all the same */
    char p[512], link[512];
    ck_assert_int_eq(t_path(p, sizeof(p), "junk"), 0);
    int fd = open(p, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    char junk[8192];
    t_fill(junk, sizeof(junk), 3);
    ck_assert_int_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    ck_assert_int_eq(speculo_segment_remove("junk", 0), 0);
    struct stat st;
    ck_assert_int_eq(lstat(p, &st), -1);
    /* a symlink under a segment's name: the link goes, not its target */
    ck_assert_int_eq(t_path(p, sizeof(p), "s"), 0);
    ck_assert_int_eq(t_path(link, sizeof(link), "link"), 0);
    ck_assert_int_eq(symlink(p, link), 0);
    ck_assert_int_eq(speculo_segment_remove("link", 0), 0);
    ck_assert_int_eq(lstat(link, &st), -1);
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
}
END_TEST

START_TEST(info_and_seek_on_hostile_chains)
{
    speculo_writer *w = th_writer("s", 64 << 10);
    uint64_t id[3];
    id[0] = th_puts(w, "one", NULL);
    id[1] = th_puts(w, "two", NULL);
    id[2] = th_puts(w, "three", NULL);
    speculo_writer_close(w);
    struct t_seg_map m;
    ck_assert_int_eq(t_seg_map("s", &m), 0);
    struct seg_header *h = t_seg_hdr(&m);
    uint64_t offs[3];
    ck_assert_int_eq(t_seg_records(&m, offs, 3), 3);
    speculo_reader *r = th_reader("s");
    struct speculo_segment_info info;

    /* a header that lags: info counts from the records */
    atomic_store(&h->last_id, 0);
    th_info(r, &info);
    ck_assert_uint_eq(info.last_id, id[2]);
    ck_assert_uint_eq(info.first_id, id[0]);

    /* an id table whose entries skip a record */
    uint64_t *table = (uint64_t *)(m.p + h->table_off);
    table[1] = offs[2];
    ck_assert_int_eq(speculo_reader_seek(r, id[0]), -EBADMSG);
    table[1] = offs[1];

    /* ids that stop increasing past the counted records */
    atomic_store(&h->nrecords, 1);
    t_seg_rec(&m, offs[2])->id = id[1];
    ck_assert_int_eq(speculo_reader_seek(r, id[1]), -EBADMSG);
    ck_assert_int_eq(speculo_reader_info(r, &info), -EBADMSG);
    t_seg_rec(&m, offs[2])->id = id[2];
    ck_assert_int_eq(speculo_reader_seek(r, id[1]), 0);
    th_nexts(r, id[2], "three");
    speculo_reader_close(r);
    t_seg_unmap(&m);
}
END_TEST

Suite *edges_suite(void)
{
    Suite *s = suite_create("edges");
    TCase *tc = th_tcase("api", 10);
    tcase_add_test(tc, null_and_bad_arguments_einval);
    tcase_add_test(tc, describe_and_remove_odd_files);
    tcase_add_test(tc, info_and_seek_on_hostile_chains);
    suite_add_tcase(s, tc);
    tc = th_tcase("takeover", 10);
    tcase_add_test(tc, takeover_repairs_index_of_crashed_writer);
    tcase_add_test(tc, takeover_clears_mark_of_gc_killed_before_rename);
    tcase_add_test(tc, takeover_from_zombie_writer);
    tcase_add_test(tc, owner_token_with_pid_0_is_dead);
    suite_add_tcase(s, tc);
    if (th_root()) {
        tc = th_tcase("resources", 20);
        tcase_add_test(tc, gc_on_full_shm_fails_cleanly);
        tcase_add_test(tc, create_on_full_fs_leaves_nothing);
        tcase_add_test(tc, half_made_segment_on_full_fs_gives_errors);
        suite_add_tcase(s, tc);
    }
    return s;
}
