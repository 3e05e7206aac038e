/*
 * check_sfs: speculofs's operations called in-process, through the libfuse
 * reply stub of tests/fuzz (fuse_stub.c), with a writer in the same
 * process. For what a real mount cannot make happen on demand: the
 * collector dropping a version between the LOOKUP and the OPEN of one
 * open(2), the bounds on the segment files speculofs keeps mapped for
 * that (fusefs/holds.c), and a collection between two READDIRs of .all.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse_stub.h"
#include "sfs.h"
#include "t_seg.h"
#include "t_util.h"

/* ---- fixture ------------------------------------------------------------ */

static speculo_writer *W;

static void setup(void)
{
    struct speculo_writer_options o = {.capacity = 64 << 10, .gc_dead_percent = 100};

    ck_assert_ptr_nonnull(t_dir_setup());
    ck_assert_int_eq(segtab_init(t_dir()), 0);
    ck_assert_int_eq(nodes_init(), 0);
    ck_assert_int_eq(guard_install(), 0);
    ck_assert_int_eq(speculo_writer_open("s", &o, &W), 0);
}

static void teardown(void)
{
    speculo_writer_close(W);
    W = NULL;
    sfs_ops_cleanup();
    segtab_fini();
    nodes_fini();
    t_dir_teardown();
}

/* ---- requests ----------------------------------------------------------- */

/* LOOKUP @name in @parent: the inode, or 0 with *@err set. */
static fuse_ino_t lookup(fuse_ino_t parent, const char *name, int *err)
{
    struct fuse_req req;
    fuse_ino_t ino = 0;

    stub_req_begin(&req, STUB_LOOKUP, parent, 0, 0);
    sfs_ops.lookup(&req, parent, name);
    *err = req.kind == STUB_R_ERR ? req.err : 0;
    if (req.kind == STUB_R_ENTRY)
        ino = req.entry.ino;
    stub_req_end(&req);
    return ino;
}

static fuse_ino_t segdir(void)
{
    int err;
    fuse_ino_t ino = lookup(FUSE_ROOT_ID, "s", &err);

    ck_assert_int_eq(err, 0);
    return ino;
}

static fuse_ino_t lookup_ok(const char *name)
{
    int err;
    fuse_ino_t ino = lookup(segdir(), name, &err);

    ck_assert_msg(err == 0, "LOOKUP %s: %s", name, strerror(err));
    return ino;
}

/* OPEN: 0 and the handle in *@fh, or the errno of the reply. */
static int open_ino(fuse_ino_t ino, uint64_t *fh)
{
    struct fuse_file_info fi;
    struct fuse_req req;
    int err;

    memset(&fi, 0, sizeof fi);
    fi.flags = O_RDONLY;
    stub_req_begin(&req, STUB_OPEN, ino, 0, 0);
    sfs_ops.open(&req, ino, &fi);
    err = req.kind == STUB_R_OPEN ? 0 : req.err;
    *fh = req.fi.fh;
    stub_req_end(&req);
    return err;
}

/* The whole file, as one READ: asserts that it is @want. */
static void read_is(fuse_ino_t ino, uint64_t fh, const char *want)
{
    struct fuse_file_info fi;
    struct fuse_req req;

    memset(&fi, 0, sizeof fi);
    fi.fh = fh;
    stub_req_begin(&req, STUB_READ, ino, 4096, 0);
    sfs_ops.read(&req, ino, 4096, 0, &fi);
    ck_assert_int_eq(req.kind, STUB_R_BUF);
    ck_assert_uint_eq(req.len, strlen(want));
    ck_assert(memcmp(req.buf, want, req.len) == 0);
    stub_req_end(&req);
}

static void release(fuse_ino_t ino, uint64_t fh)
{
    struct fuse_file_info fi;
    struct fuse_req req;

    memset(&fi, 0, sizeof fi);
    fi.fh = fh;
    stub_req_begin(&req, STUB_RELEASE, ino, 0, 0);
    sfs_ops.release(&req, ino, &fi);
    stub_req_end(&req);
}

/* ---- the writer ----------------------------------------------------------- */

static uint64_t put(const char *text, const char *name)
{
    struct speculo_commit_options o = {.name = name};
    uint64_t id = 0;

    ck_assert_int_eq(speculo_writer_put(W, text, strlen(text), &o, &id), 0);
    return id;
}

/* A new version of "k", then a collection: the old version is in no file
 * a reader opening the segment now can map. */
static void update_and_collect(const char *text)
{
    put(text, "k");
    ck_assert_int_eq(speculo_writer_gc(W), 0);
}

static unsigned held_files(void)
{
    return holds_count(segtab_get(sfs_ino_slot(segdir())));
}

/* Look "k" up (holds are looked at then) until the segment holds @want
 * files; the count, once it is @want or T_PATIENCE_MS passed. */
static unsigned held_files_become(unsigned want)
{
    int64_t t0 = t_mono_ns();
    unsigned n;

    while ((n = held_files()) != want && t_ms_since(t0) < T_PATIENCE_MS) {
        t_sleep_ms(10);
        (void)lookup_ok("k");
    }
    return n;
}

/* The bounds on number and bytes are about files held within SFS_HOLD_NS
 * of each other, which nothing lets go for their age. A test of them is
 * conclusive when it ran within SFS_HOLD_NS (since @t0, CLOCK_MONOTONIC as
 * fusefs/holds.c); a machine too slow for that gets another attempt. */
#define HOLD_ATTEMPTS 5

static bool within_hold_time(int64_t t0, int attempt)
{
    bool in_time = t_mono_ns() - t0 < SFS_HOLD_NS;

    ck_assert_msg(in_time || attempt + 1 < HOLD_ATTEMPTS,
                  "%d attempts took longer than the hold time each", HOLD_ATTEMPTS);
    return in_time;
}

/* ---- .all ---------------------------------------------------------------- */

static fuse_ino_t alldir(void)
{
    return lookup_ok(".all");
}

/* LOOKUP of record @id in .all: the inode, or 0 with *@err set. */
static fuse_ino_t lookup_record(uint64_t id, int *err)
{
    char name[SFS_IDNAME_LEN + 1];

    sfs_idname(name, id);
    return lookup(alldir(), name, err);
}

static fuse_ino_t record_ok(uint64_t id)
{
    int err;
    fuse_ino_t ino = lookup_record(id, &err);

    ck_assert_msg(err == 0, "LOOKUP .all/%llu: %s", (unsigned long long)id, strerror(err));
    return ino;
}

/* The state xattr of @ino into @buf, or "" when it has none (ENODATA). */
static const char *state_of(fuse_ino_t ino, char *buf, size_t size)
{
    struct fuse_req req;

    stub_req_begin(&req, STUB_GETXATTR, ino, size - 1, 0);
    sfs_ops.getxattr(&req, ino, "user.speculo.state", size - 1);
    buf[0] = '\0';
    if (req.kind == STUB_R_BUF) {
        memcpy(buf, req.buf, req.len);
        buf[req.len] = '\0';
    } else {
        ck_assert_int_eq(req.err, ENODATA);
    }
    stub_req_end(&req);
    return buf;
}

/* One READDIR of @dir's handle @fh at @off in a buffer of @size: the ids
 * of the records listed are appended to @ids; the offset to go on from. */
static off_t list_ids(fuse_ino_t dir, uint64_t fh, off_t off, size_t size, uint64_t *ids,
                      int *n)
{
    struct fuse_file_info fi = {.fh = fh};
    struct stub_dirent e;
    struct fuse_req req;
    size_t pos = 0;

    stub_req_begin(&req, STUB_READDIR, dir, size, 0);
    sfs_ops.readdir(&req, dir, size, off, &fi);
    ck_assert_int_eq(req.kind, STUB_R_BUF);
    while (stub_dirent_next(req.buf, req.len, &pos, &e, 0) == 1) {
        off = (off_t)e.off;
        if (e.name[0] != '.')
            ids[(*n)++] = sfs_ino_id((fuse_ino_t)e.ino);
    }
    stub_req_end(&req);
    return off;
}

/* ---- opens after the collector ------------------------------------------ */

START_TEST(open_of_version_collected_after_lookup_succeeds)
{
    uint64_t fh;

    put("version 1", "k");
    fuse_ino_t ino = lookup_ok("k");
    update_and_collect("version 2");
    ck_assert_int_eq(open_ino(ino, &fh), 0);
    read_is(ino, fh, "version 1");
    release(ino, fh);
    /* the name itself now gives the new version */
    fuse_ino_t now = lookup_ok("k");
    ck_assert_uint_ne(now, ino);
    ck_assert_int_eq(open_ino(now, &fh), 0);
    read_is(now, fh, "version 2");
    release(now, fh);
}
END_TEST

START_TEST(open_of_unnamed_chunk_collected_is_estale)
{
    char name[SFS_IDNAME_LEN + 1];
    uint64_t fh;
    uint64_t id = put("unnamed", NULL);

    sfs_idname(name, id);
    fuse_ino_t ino = lookup_ok(name);
    ck_assert_int_eq(speculo_writer_obsolete(W, id), 0);
    ck_assert_int_eq(speculo_writer_gc(W), 0);
    ck_assert_int_eq(open_ino(ino, &fh), ESTALE);
}
END_TEST

/* Obsoleted in the file after the one its LOOKUP read: the current file
 * has the record, dead, and decides, whatever an older held file says. */
START_TEST(open_of_name_obsoleted_after_switch_is_estale)
{
    uint64_t fh;
    uint64_t id = put("version 1", "k");

    fuse_ino_t ino = lookup_ok("k");
    ck_assert_int_eq(speculo_writer_gc(W), 0);
    ck_assert_int_eq(speculo_writer_obsolete(W, id), 0);
    ck_assert_int_eq(open_ino(ino, &fh), ESTALE);
}
END_TEST

START_TEST(open_file_reads_after_its_file_is_let_go)
{
    uint64_t fh;

    put("version 1", "k");
    fuse_ino_t ino = lookup_ok("k");
    ck_assert_int_eq(open_ino(ino, &fh), 0);
    for (int i = 0; i < 3 * SFS_HOLD_MAX; i++) {
        update_and_collect("newer");
        (void)lookup_ok("k");
    }
    ck_assert_uint_eq(held_files_become(1), 1); /* the open one too, a while after */
    read_is(ino, fh, "version 1");
    release(ino, fh);
}
END_TEST

/* ---- what is held --------------------------------------------------------- */

START_TEST(held_files_bounded_in_number)
{
    for (int attempt = 0;; attempt++) {
        int64_t t0 = t_mono_ns();
        unsigned most = 0;
        for (int i = 0; i < 3 * SFS_HOLD_MAX; i++) {
            update_and_collect("v");
            (void)lookup_ok("k");
            ck_assert_uint_le(held_files(), SFS_HOLD_MAX);
            most = held_files() > most ? held_files() : most;
        }
        if (within_hold_time(t0, attempt)) {
            ck_assert_uint_eq(most, SFS_HOLD_MAX);
            break;
        }
    }
}
END_TEST

/* Three files held (each LOOKUP after a collection holds the new file):
 * the older two are let go, SFS_HOLD_NS after the newer ones were held and
 * not before. */
START_TEST(held_files_let_go_a_while_after_newer_one)
{
    for (int attempt = 0;; attempt++) {
        unsigned before = held_files(), held; /* 0, or 1 after an attempt */
        int64_t t0 = t_mono_ns();
        for (int i = 0; i < 3; i++) {
            update_and_collect("v");
            (void)lookup_ok("k");
        }
        held = held_files();
        if (within_hold_time(t0, attempt)) {
            ck_assert_uint_eq(held, before + 3);
            /* the same file: no new hold, a look at the old */
            ck_assert_uint_eq(held_files_become(1), 1);
            ck_assert_int_ge(t_mono_ns() - t0, SFS_HOLD_NS);
            break;
        }
        ck_assert_uint_eq(held_files_become(1), 1);
    }
}
END_TEST

/* Big files: the newest and the latest superseded one are held, and older
 * ones only while they add up to SFS_HOLD_BYTES at most. */
START_TEST(held_files_bounded_in_bytes)
{
    struct speculo_writer_options o = {.capacity = 24 << 20, .gc_dead_percent = 100};
    speculo_writer *w;
    int64_t size;
    unsigned want;

    for (int attempt = 0;; attempt++) {
        int64_t t0;
        unsigned held;
        speculo_writer_close(W);
        W = NULL;
        ck_assert_int_eq(speculo_segment_remove("s", 0), 0);
        ck_assert_int_eq(speculo_writer_open("s", &o, &w), 0);
        W = w;
        t0 = t_mono_ns();
        for (int i = 0; i < 8; i++) {
            update_and_collect("v");
            (void)lookup_ok("k");
        }
        held = held_files();
        if (!within_hold_time(t0, attempt))
            continue;
        size = t_seg_file_size("s");
        ck_assert_int_ge(size, 24 << 20);
        want = 2 + (unsigned)(SFS_HOLD_BYTES / (uint64_t)size);
        ck_assert_uint_lt(want, 8);
        ck_assert_uint_eq(held, want);
        break;
    }
}
END_TEST

START_TEST(segment_removed_lets_go_of_held_files)
{
    int err;

    put("version 1", "k");
    fuse_ino_t dir = segdir();
    (void)lookup_ok("k");
    ck_assert_uint_eq(held_files(), 1);
    ck_assert_int_eq(speculo_segment_remove("s", SPECULO_REMOVE_FORCE), 0);
    ck_assert_uint_eq(lookup(dir, "k", &err), 0);
    ck_assert_int_eq(err, ESTALE);
    ck_assert_uint_eq(holds_count(segtab_get(sfs_ino_slot(dir))), 0);
}
END_TEST

/* ---- .all ------------------------------------------------------------------ */

START_TEST(record_of_dead_chunk_opens_and_reads)
{
    char state[64];
    uint64_t fh;
    uint64_t id = put("gone", NULL);

    ck_assert_int_eq(speculo_writer_obsolete(W, id), 0);
    fuse_ino_t ino = record_ok(id);
    ck_assert_str_eq(state_of(ino, state, sizeof state), "obsolete");
    ck_assert_int_eq(open_ino(ino, &fh), 0);
    read_is(ino, fh, "gone");
    release(ino, fh);
}
END_TEST

/* Computed at each call: the kernel caches no extended attribute. */
START_TEST(record_state_follows_the_chunk)
{
    char state[64], want[64];
    fuse_ino_t ino = record_ok(put("v1", "k"));

    ck_assert_str_eq(state_of(ino, state, sizeof state), "live");
    snprintf(want, sizeof want, "obsolete>%llu", (unsigned long long)put("v2", "k"));
    ck_assert_str_eq(state_of(ino, state, sizeof state), want);
}
END_TEST

START_TEST(open_record_reads_to_its_end_after_collection)
{
    char state[64];
    uint64_t fh, fh2;
    int err;
    uint64_t id = put("dead bytes", NULL);

    ck_assert_int_eq(speculo_writer_obsolete(W, id), 0);
    fuse_ino_t ino = record_ok(id);
    ck_assert_int_eq(open_ino(ino, &fh), 0);
    ck_assert_int_eq(speculo_writer_gc(W), 0);
    ck_assert_uint_eq(lookup_record(id, &err), 0);
    ck_assert_int_eq(err, ENOENT);
    ck_assert_int_eq(open_ino(ino, &fh2), ENOENT); /* never ESTALE */
    read_is(ino, fh, "dead bytes");
    ck_assert_str_eq(state_of(ino, state, sizeof state), "");
    release(ino, fh);
}
END_TEST

/* A collection between two READDIRs: nothing listed twice, nothing that
 * lives throughout skipped, what it dropped no longer listed. */
START_TEST(all_listing_goes_on_across_collection)
{
    uint64_t ids[32], want[] = {1, 2, 3, 5, 7, 8};
    struct fuse_file_info fi;
    struct fuse_req req;
    fuse_ino_t dir = alldir();
    int n = 0;
    off_t off, next;

    for (int i = 1; i <= 8; i++)
        put("x", NULL);
    ck_assert_int_eq(speculo_writer_obsolete(W, 2), 0);
    ck_assert_int_eq(speculo_writer_obsolete(W, 4), 0);
    ck_assert_int_eq(speculo_writer_obsolete(W, 6), 0);
    memset(&fi, 0, sizeof fi);
    stub_req_begin(&req, STUB_OPENDIR, dir, 0, 0);
    sfs_ops.opendir(&req, dir, &fi);
    ck_assert_int_eq(req.kind, STUB_R_OPEN);
    fi.fh = req.fi.fh;
    stub_req_end(&req);
    /* room for ".", ".." and three records (an entry: 24 bytes and the
     * name, padded to 8) */
    off = list_ids(dir, fi.fh, 0, 2 * 32 + 3 * 48, ids, &n);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(speculo_writer_gc(W), 0);
    while ((next = list_ids(dir, fi.fh, off, 4096, ids, &n)) != off)
        off = next;
    ck_assert_int_eq(n, 6);
    for (int i = 0; i < n; i++)
        ck_assert_uint_eq(ids[i], want[i]);
    stub_req_begin(&req, STUB_RELEASEDIR, dir, 0, 0);
    sfs_ops.releasedir(&req, dir, &fi);
    stub_req_end(&req);
}
END_TEST

static Suite *sfs_suite(void)
{
    Suite *s = suite_create("sfs");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"open_of_version_collected_after_lookup_succeeds",
         open_of_version_collected_after_lookup_succeeds},
        {"open_of_unnamed_chunk_collected_is_estale", open_of_unnamed_chunk_collected_is_estale},
        {"open_of_name_obsoleted_after_switch_is_estale",
         open_of_name_obsoleted_after_switch_is_estale},
        {"open_file_reads_after_its_file_is_let_go", open_file_reads_after_its_file_is_let_go},
        {"held_files_bounded_in_number", held_files_bounded_in_number},
        {"held_files_let_go_a_while_after_newer_one", held_files_let_go_a_while_after_newer_one},
        {"held_files_bounded_in_bytes", held_files_bounded_in_bytes},
        {"segment_removed_lets_go_of_held_files", segment_removed_lets_go_of_held_files},
        {"record_of_dead_chunk_opens_and_reads", record_of_dead_chunk_opens_and_reads},
        {"record_state_follows_the_chunk", record_state_follows_the_chunk},
        {"open_record_reads_to_its_end_after_collection",
         open_record_reads_to_its_end_after_collection},
        {"all_listing_goes_on_across_collection", all_listing_goes_on_across_collection},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *c = tcase_create(cases[i].name);
        tcase_add_checked_fixture(c, setup, teardown);
        tcase_add_test(c, cases[i].test);
        tcase_set_timeout(c, 30);
        suite_add_tcase(s, c);
    }
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    if (t_base_init("sfs") != 0) {
        fprintf(stderr, "check_sfs: cannot make a temporary directory\n");
        return 1;
    }
    sr = srunner_create(sfs_suite());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    t_base_cleanup();
    return failed == 0 ? 0 : 1;
}
