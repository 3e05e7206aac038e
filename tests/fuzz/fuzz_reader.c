/*
 * libFuzzer target: the input bytes are a segment file.
 *
 * Each input is written as segment "s" of a private SPECULO_DIR under
 * /dev/shm, then every reader entry point runs over it (open, next to the
 * end, get with names found in the file and made-up ones, get_id over a
 * range, seek, info, wait with no timeout, describe), and finally a writer
 * takes it over (the recover path), commits, obsoletes and collects.
 *
 * What counts as a failure: a crash or a sanitizer report (reading outside
 * the mapping, overflow, ...), a hang (libFuzzer's -timeout), a chunk whose
 * bytes or name are not inside the mapping or not a valid name, ids that do
 * not increase, and a file that a writer accepted and collected but that a
 * reader then finds corrupt. Errors returned for a bad file are expected.
 *
 * Build and run: make fuzz FUZZ_SECONDS=60 (see the Makefile).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "speculo.h"
#include "t_util.h"

#define FZ_MAX_INPUT (1u << 20)
#define FZ_MAX_NEXT 4096
#define FZ_MAX_NAMES 8

static const char *fz_dir; /* t_private_dir() */

/* A failed invariant: print it and abort, which libFuzzer reports as a
 * crash with the input that caused it. */
#define FZ_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_reader: %s:%d: invariant failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                                    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* Once per process: a private segment directory, removed at exit. */
static int fz_init(void)
{
    if (!fz_dir)
        fz_dir = t_private_dir("fuzz");
    return fz_dir ? 0 : -1;
}

static int fz_write_segment(const uint8_t *data, size_t size)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/s", fz_dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)n;
    }
    /* An even-sized input gets its capacity field set to its size, so that
     * mutations that change the length still reach the deeper checks; an
     * odd-sized one is taken exactly as it is. */
    if (size >= SEG_HEADER_SIZE && size % 2 == 0) {
        uint64_t cap = size;
        if (pwrite(fd, &cap, sizeof cap, offsetof(struct seg_header, capacity)) !=
            (ssize_t)sizeof cap) {
            close(fd);
            return -1;
        }
    }
    close(fd);
    return 0;
}

/* What a run over the reader API learned. */
struct seen {
    char names[FZ_MAX_NAMES][SPECULO_CHUNK_NAME_MAX + 1];
    int nnames;
    uint64_t first_id, last_id;
    int chunks;
};

/* Touch every byte the chunk claims, check its name: reading outside the
 * mapping faults here (or is reported by ASan). */
static unsigned fz_touch(const speculo_chunk *c)
{
    FZ_ASSERT(c->id >= 1);
    FZ_ASSERT(c->size == 0 || c->data != NULL);
    FZ_ASSERT((uintptr_t)c->data % PAYLOAD_ALIGN == 0);
    const volatile unsigned char *p = c->data;
    unsigned sum = 0;
    for (size_t i = 0; i < c->size; i++)
        sum += p[i];
    if (c->name) {
        size_t n = strnlen(c->name, SPECULO_CHUNK_NAME_MAX + 1);
        FZ_ASSERT(n >= 1 && n <= SPECULO_CHUNK_NAME_MAX);
        FZ_ASSERT(speculo_chunk_name_check(c->name) == 0);
    }
    (void)speculo_chunk_replaces(c);
    return sum;
}

static void fz_note(struct seen *s, const speculo_chunk *c)
{
    if (!s->first_id)
        s->first_id = c->id;
    s->last_id = c->id;
    s->chunks++;
    if (c->name && s->nnames < FZ_MAX_NAMES) {
        for (int i = 0; i < s->nnames; i++)
            if (strcmp(s->names[i], c->name) == 0)
                return;
        snprintf(s->names[s->nnames++], SPECULO_CHUNK_NAME_MAX + 1, "%s", c->name);
    }
}

/* next() to the end (bounded), ids strictly increasing. Returns the last
 * return code of next(). */
static int fz_walk(speculo_reader *r, struct seen *s)
{
    uint64_t prev = 0;
    for (int i = 0; i < FZ_MAX_NEXT; i++) {
        speculo_chunk c;
        int rc = speculo_reader_next(r, &c);
        if (rc < 0)
            return rc;
        FZ_ASSERT(c.id > prev);
        prev = c.id;
        fz_touch(&c);
        if (s)
            fz_note(s, &c);
    }
    return 0;
}

static void fz_reader(struct seen *s)
{
    speculo_reader *r = NULL;
    if (speculo_reader_open("s", &r) < 0)
        return;
    fz_walk(r, s);

    speculo_chunk c;
    static const char *const fixed[] = {"a", "first", "third", "n0", "_", "name"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (speculo_reader_get(r, fixed[i], &c) == 0) {
            fz_touch(&c);
            FZ_ASSERT(c.name && strcmp(c.name, fixed[i]) == 0);
        }
    for (int i = 0; i < s->nnames; i++)
        if (speculo_reader_get(r, s->names[i], &c) == 0) {
            fz_touch(&c);
            FZ_ASSERT(c.name && strcmp(c.name, s->names[i]) == 0);
        }

    uint64_t lo = s->first_id > 2 ? s->first_id - 2 : 0, hi = s->last_id + 2;
    if (hi - lo > 64)
        hi = lo + 64;
    for (uint64_t id = lo; id <= hi; id++)
        if (speculo_reader_get_id(r, id, &c) == 0) {
            fz_touch(&c);
            FZ_ASSERT(c.id == id);
        }
    if (speculo_reader_get_id(r, UINT64_MAX, &c) == 0)
        fz_touch(&c);

    const uint64_t seeks[] = {0, s->first_id, (s->first_id + s->last_id) / 2, s->last_id,
                              UINT64_MAX};
    for (size_t i = 0; i < sizeof seeks / sizeof seeks[0]; i++) {
        if (speculo_reader_seek(r, seeks[i]) == 0) {
            int rc = speculo_reader_next(r, &c);
            if (rc == 0) {
                fz_touch(&c);
                FZ_ASSERT(seeks[i] == UINT64_MAX || c.id > seeks[i]);
            }
        }
    }
    struct speculo_segment_info info;
    if (speculo_reader_info(r, &info) == 0)
        FZ_ASSERT(info.live_chunks + info.expired_chunks + info.obsolete_chunks <= FZ_MAX_INPUT);
    (void)speculo_reader_wait(r, 0);
    speculo_reader_close(r);
}

static void fz_describe(void)
{
    char buf[4096];
    int n = speculo_segment_describe("s", buf, sizeof buf);
    if (n >= 0)
        FZ_ASSERT(strlen(buf) == ((size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1));
}

/* A writer takes the file over, writes, collects; then the result must be a
 * good segment for a reader. */
static void fz_writer(const struct seen *s)
{
    struct speculo_writer_options o = {.capacity = 16 << 10, .gc_min_dead_bytes = 1};
    speculo_writer *w = NULL;
    if (speculo_writer_open("s", &o, &w) < 0)
        return;
    uint64_t id = 0;
    static const char payload[] = "fuzz payload";
    struct speculo_commit_options named = {.name = s->nnames ? s->names[0] : "fz"};
    (void)speculo_writer_put(w, payload, sizeof payload, NULL, &id);
    (void)speculo_writer_put(w, payload, 5, &named, NULL);
    if (s->last_id) {
        struct speculo_commit_options repl = {.replaces = s->last_id, .ttl_ns = 1000};
        (void)speculo_writer_put(w, payload, 3, &repl, NULL);
        (void)speculo_writer_obsolete(w, s->first_id);
    }
    int gc = speculo_writer_gc(w);
    uint64_t after = 0;
    int put = speculo_writer_put(w, payload, sizeof payload, &named, &after);
    speculo_writer_close(w);
    if (gc != 0 || put != 0)
        return;
    /* The collected file was written by the library: it must read cleanly
     * and hold the chunk committed last. */
    speculo_reader *r = NULL;
    FZ_ASSERT(speculo_reader_open("s", &r) == 0);
    int rc = fz_walk(r, NULL);
    FZ_ASSERT(rc == -EAGAIN || rc == 0);
    speculo_chunk c;
    FZ_ASSERT(speculo_reader_get(r, named.name, &c) == 0);
    FZ_ASSERT(c.id == after && c.size == sizeof payload);
    FZ_ASSERT(memcmp(c.data, payload, sizeof payload) == 0);
    speculo_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_INPUT || fz_init() < 0)
        return 0;
    t_empty_dir(fz_dir);
    if (fz_write_segment(data, size) < 0)
        return 0;
    struct seen s;
    memset(&s, 0, sizeof s);
    fz_reader(&s);
    fz_describe();
    fz_writer(&s);
    return 0;
}
