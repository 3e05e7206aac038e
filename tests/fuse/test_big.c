/*
 * Size: a 64 MiB chunk reads back byte-exact, and so does any range of a
 * chunk, read as one request of any size, in requests made large by a
 * wide readahead window; a segment of 100,000 chunks
 * lists completely and correctly while chunks vanish under the listing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "t_fuse.h"
#include "t_util.h"

#define MiB ((size_t)1 << 20)

static double secs_since(int64_t t0)
{
    return (double)(t_mono_ns() - t0) / 1e9;
}

static void read_all_check(const char *path, size_t size, uint64_t seed, double *secs)
{
    unsigned char *buf = malloc(size);
    size_t got = 0;
    int64_t t0 = t_mono_ns();
    int fd = open(path, O_RDONLY);

    ck_assert_ptr_nonnull(buf);
    ck_assert_int_ge(fd, 0);
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got < MiB ? size - got : MiB);
        ck_assert_msg(n > 0, "read at %zu: %s", got, n < 0 ? strerror(errno) : "EOF");
        got += (size_t)n;
    }
    ck_assert_int_eq(read(fd, buf, 1), 0);
    *secs = secs_since(t0);
    close(fd);
    ck_assert_uint_eq(t_check_fill(buf, size, seed), 0);
    free(buf);
}

START_TEST(test_chunk_64mib)
{
    const size_t size = 64 * MiB;
    char p[PATH_MAX];
    speculo_writer *w = tf_writer("huge", 0, 0);
    void *data;
    uint64_t id;
    struct stat st;
    double first, second;

    ck_assert_int_eq(speculo_writer_alloc(w, size, &data), 0);
    t_fill(data, size, 64);
    ck_assert_int_eq(speculo_writer_commit(w, &(struct speculo_commit_options){.name = "blob"}, &id), 0);
    speculo_writer_close(w);
    tf_path(p, "huge", "blob");
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, (off_t)size);
    read_all_check(p, size, 64, &first);
    read_all_check(p, size, 64, &second);
    printf("chunk_64mib: first read %.3f s (%.0f MiB/s), second %.3f s\n", first,
           64 / first, second);
}
END_TEST

/* With O_DIRECT each read reaches the server as READs of exactly its
 * range (split at the largest request): small ones are answered from the
 * mapping, larger ones spliced from the segment file, from offsets inside
 * pages; every one gives the chunk's bytes, short at its end, none past. */
START_TEST(test_reads_exact_at_any_size_and_offset)
{
    const size_t size = 3 * MiB + 1234;
    const size_t offs[] = {0,       1,        4095,         4096,        4097,        12345,
                           65535,   MiB / 2,  MiB / 2 + 1,  MiB + 3,     size - 8193, size - 4096,
                           size - 1, size,    size + 1};
    const size_t lens[] = {1,       100,      4095,         4096,        4097,        8191,
                           8192,    8193,     65536,        128 * 1024 + 5, MiB / 2 - 1, MiB / 2,
                           MiB / 2 + 1, MiB + 17, 3 * MiB};
    unsigned char *want = malloc(size), *got = malloc(3 * MiB);
    speculo_writer *w = tf_writer("exact", 8 * MiB, 0);
    char p[PATH_MAX];
    int fd;

    ck_assert_ptr_nonnull(want);
    ck_assert_ptr_nonnull(got);
    tf_put_str(w, NULL, "a small chunk first: the next payload starts inside a page");
    t_fill(want, size, 11);
    tf_put(w, "odd", want, size, 0);
    speculo_writer_close(w);
    fd = open(tf_path(p, "exact", "odd"), O_RDONLY | O_DIRECT);
    ck_assert_msg(fd >= 0, "open: %s", strerror(errno));
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++)
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            size_t off = offs[i], len = lens[j];
            size_t expect = off >= size ? 0 : size - off < len ? size - off : len;
            ssize_t n = pread(fd, got, len, (off_t)off);
            ck_assert_msg(n == (ssize_t)expect, "pread %zu at %zu: %zd (%s)", len, off, n,
                          n < 0 ? strerror(errno) : "short");
            ck_assert_msg(expect == 0 || memcmp(got, want + off, expect) == 0,
                          "pread %zu at %zu: wrong bytes", len, off);
        }
    close(fd);
    free(want);
    free(got);
}
END_TEST

/* Run by root, the server widens the mount's readahead window to 1 MiB:
 * large chunks are read in requests of 512 KiB, not 128. */
START_TEST(test_readahead_widened_by_root)
{
    char path[128], text[32] = "";
    struct stat st;

    ck_assert_int_eq(stat(tf_m.mnt, &st), 0);
    snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev),
             minor(st.st_dev));
    ck_assert_int_gt(tf_read_file(path, text, sizeof text - 1), 0);
    if (geteuid() != 0) {
        printf("readahead_widened_by_root: not root: %s is %s", path, text);
        return;
    }
    ck_assert_int_eq(atoi(text), 1024);
}
END_TEST

#define NCHUNKS 100000

/* The churn: obsolete every odd chunk, in batches with short pauses so
 * that it overlaps the listing, with a garbage collection half-way. */
static void churn(struct t_sync *go)
{
    speculo_writer *w = NULL;
    int rc = speculo_writer_open("many", NULL, &w);

    T_CHILD_ASSERT(rc == 0);
    T_CHILD_ASSERT(t_sync_wait(go, T_PATIENCE_MS) >= 0);
    for (uint64_t id = 1; id <= NCHUNKS; id += 2) {
        T_CHILD_ASSERT(speculo_writer_obsolete(w, id) == 0);
        if (id % 1000 == 1)
            t_sleep_ms(1);
        if (id == NCHUNKS / 2 + 1)
            T_CHILD_ASSERT(speculo_writer_gc(w) == 0);
    }
    speculo_writer_close(w);
    _exit(0);
}

/* List @dir, checking each chunk id appears at most once; returns the
 * number of chunk entries, marks them in @seen. */
static size_t list_ids(const char *dir, unsigned char *seen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    ck_assert_ptr_nonnull(d);
    memset(seen, 0, NCHUNKS + 1);
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        char *end;
        unsigned long long id;
        if (de->d_name[0] == '.')
            continue;
        id = strtoull(de->d_name, &end, 10);
        ck_assert_msg(*end == '\0' && id >= 1 && id <= NCHUNKS, "odd entry %s", de->d_name);
        ck_assert_msg(!seen[id], "chunk %llu listed twice", id);
        seen[id] = 1;
        n++;
        errno = 0;
    }
    ck_assert_msg(errno == 0, "readdir: %s", strerror(errno));
    closedir(d);
    return n;
}

START_TEST(test_listing_100k_under_churn)
{
    char dir[PATH_MAX], cmd[PATH_MAX + 64], out[256];
    unsigned char *seen = malloc(NCHUNKS + 1);
    speculo_writer *w = tf_writer("many", 32 * MiB, 0);
    struct t_sync go;
    size_t n;
    pid_t pid;
    int64_t t0;

    ck_assert_ptr_nonnull(seen);
    for (uint64_t i = 1; i <= NCHUNKS; i++)
        ck_assert_uint_eq(tf_put(w, NULL, &i, sizeof i, 0), i);
    speculo_writer_close(w);
    tf_path(dir, "many", NULL);

    t0 = t_mono_ns();
    ck_assert_uint_eq(list_ids(dir, seen), NCHUNKS);
    printf("listing_100k: readdir of %d chunks: %.3f s\n", NCHUNKS, secs_since(t0));
    snprintf(cmd, sizeof cmd, "ls '%s' | wc -l", dir);
    t0 = t_mono_ns();
    ck_assert_int_eq(tf_sh(cmd, out, sizeof out), 0);
    printf("listing_100k: ls of %d chunks: %.3f s\n", NCHUNKS, secs_since(t0));
    ck_assert_int_eq(atoi(out), NCHUNKS);

    ck_assert_int_eq(t_sync_init(&go), 0);
    pid = t_fork();
    if (pid == 0)
        churn(&go);
    ck_assert_int_eq(t_sync_post(&go, 1), 0);
    for (int round = 0; round < 3; round++) {
        n = list_ids(dir, seen);
        for (uint64_t id = 2; id <= NCHUNKS; id += 2)
            ck_assert_msg(seen[id], "live chunk %" PRIu64 " not listed (round %d)", id, round);
        ck_assert_uint_ge(n, NCHUNKS / 2);
    }
    ck_assert_int_eq(t_wait(pid, 30000), 0);
    t_sync_close(&go);
    ck_assert_uint_eq(list_ids(dir, seen), NCHUNKS / 2);
    free(seen);
}
END_TEST

Suite *tf_suite_big(void)
{
    Suite *s = suite_create("big");

    suite_add_tcase(s, tf_tcase("chunk_64mib", test_chunk_64mib, tf_setup, 60));
    suite_add_tcase(s, tf_tcase("readahead_widened_by_root", test_readahead_widened_by_root,
                                tf_setup, 20));
    suite_add_tcase(s, tf_tcase("reads_exact_at_any_size_and_offset",
                                test_reads_exact_at_any_size_and_offset, tf_setup, 60));
    suite_add_tcase(s, tf_tcase("listing_100k_under_churn", test_listing_100k_under_churn, tf_setup, 90));
    return s;
}
