/*
 * libFuzzer target: the input bytes are a segment file.
 *
 * Each input is written as segment "s" of a private SPECULO_DIR under
 * /dev/shm, then it is checked (speculo_segment_check), every reader entry
 * point runs over it (open, next to the end, get with names found in the
 * file and made-up ones, get_id over a range, seek, the walk over every
 * record, info, wait with no timeout, describe), and finally a writer
 * takes it over (the recover path), commits, obsoletes and collects.
 *
 * What counts as a failure: a crash or a sanitizer report (reading outside
 * the mapping, overflow, ...), a hang (libFuzzer's -timeout), a chunk whose
 * bytes or name are not inside the mapping or not a valid name, ids that do
 * not increase, and a file that a writer accepted and collected but that a
 * reader then finds corrupt. Errors returned for a bad file are expected.
 * The check must agree with the reader and the writer: a file it finds
 * sound gives no -EBADMSG anywhere (and as many records as it counted), a
 * file they refuse is not sound to it, it explains every refusal of the
 * reader's checks in its own words, and what a writer collected is sound.
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

/* What speculo_segment_check() said of the input. */
struct verdict {
    int status;       /* report.status */
    uint64_t records; /* report.records */
    uint64_t offset;  /* report.offset */
    char problem[sizeof ((struct speculo_check_report *)0)->problem];
};

/* The names out of their home slot, as the check reports them. */
struct collisions {
    uint64_t n, prev_slot, max_slot;
};

static void fz_collision(const struct speculo_name_collision *c, void *arg)
{
    struct collisions *cs = arg;
    FZ_ASSERT(c->home != c->slot);
    FZ_ASSERT(cs->n == 0 || c->slot > cs->prev_slot); /* in slot order */
    FZ_ASSERT(speculo_chunk_name_check(c->name) == 0);
    FZ_ASSERT(speculo_chunk_name_check(c->home_name) == 0);
    FZ_ASSERT(strcmp(c->name, c->home_name) != 0);
    cs->n++;
    cs->prev_slot = c->slot;
    if (c->slot > cs->max_slot)
        cs->max_slot = c->slot;
    if (c->home > cs->max_slot)
        cs->max_slot = c->home;
}

/* Check the file: a report of the documented kind, a problem explained in
 * words of its own (not the fallback that says only that the reader's
 * check refused). */
static struct verdict fz_check(void)
{
    struct speculo_check_report rep;
    struct collisions cs = {0, 0, 0};
    memset(&rep, 0, sizeof rep);
    FZ_ASSERT(speculo_segment_check("s", &rep, fz_collision, &cs) == 0);
    FZ_ASSERT(cs.n == 0 || cs.max_slot < rep.index_slots);
    if (rep.status == 0)
        FZ_ASSERT(cs.n == rep.index_displaced);
    size_t len = strnlen(rep.problem, sizeof rep.problem);
    FZ_ASSERT(len < sizeof rep.problem);
    for (size_t i = 0; i < len; i++)
        FZ_ASSERT(rep.problem[i] >= 0x20 && rep.problem[i] < 0x7f);
    FZ_ASSERT(rep.status == 0 || rep.status == -EBADMSG || rep.status == -EPROTO);
    FZ_ASSERT((rep.status == 0) == (len == 0));
    FZ_ASSERT(!strstr(rep.problem, "refused by the reader's"));
    FZ_ASSERT(rep.status != 0 || rep.offset == 0);
    FZ_ASSERT(rep.live_records + rep.expired_records + rep.replaced_records +
                  rep.obsolete_records ==
              rep.records);
    FZ_ASSERT(rep.live_bytes + rep.dead_bytes == rep.bytes_used);
    FZ_ASSERT(rep.index_used <= rep.index_slots && rep.index_displaced <= rep.index_used);
    struct verdict v = {rep.status, rep.records, rep.offset, ""};
    memcpy(v.problem, rep.problem, sizeof v.problem);
    return v;
}

/* A sound file gives no -EBADMSG: @rc, a reader's or the writer's. */
static void fz_agrees(const struct verdict *v, int rc)
{
    if (v->status == 0)
        FZ_ASSERT(rc != -EBADMSG && rc != -EPROTO);
}

/* The check found the file sound; say what it found if not. */
static void fz_sound(const struct verdict *v)
{
    if (v->status != 0)
        fprintf(stderr, "fuzz_reader: check: offset %llu: %s\n", (unsigned long long)v->offset,
                v->problem);
    FZ_ASSERT(v->status == 0);
}

/* The walk over every record: ids increasing, each found again by id. */
static uint64_t fz_walk_records(speculo_reader *r, const struct verdict *v)
{
    struct speculo_record rec, again;
    uint64_t after = 0, n = 0;
    int rc = 0;
    while (n < 4 * FZ_MAX_NEXT && (rc = speculo_reader_walk(r, after, &rec)) == 0) {
        FZ_ASSERT(rec.chunk.id > after);
        FZ_ASSERT(rec.state <= SPECULO_STATE_OBSOLETE);
        FZ_ASSERT((rec.state == SPECULO_STATE_REPLACED) == (rec.obsoleted_by != 0));
        FZ_ASSERT(rec.length >= 64 && rec.length % 64 == 0);
        fz_touch(&rec.chunk);
        rc = speculo_reader_get_record(r, rec.chunk.id, &again);
        fz_agrees(v, rc);
        if (rc == 0 && v->status == 0) /* in a corrupt file ids may repeat */
            FZ_ASSERT(again.offset == rec.offset && again.chunk.id == rec.chunk.id);
        after = rec.chunk.id;
        n++;
    }
    if (n < 4 * FZ_MAX_NEXT)
        fz_agrees(v, rc);
    return n;
}

static void fz_reader(struct seen *s, const struct verdict *v)
{
    speculo_reader *r = NULL;
    int rc = speculo_reader_open("s", &r);
    fz_agrees(v, rc);
    if (rc == -EBADMSG || rc == -EPROTO)
        FZ_ASSERT(v->status == rc);
    if (rc < 0)
        return;
    rc = fz_walk(r, s);
    fz_agrees(v, rc);

    speculo_chunk c;
    static const char *const fixed[] = {"a", "first", "third", "n0", "_", "name"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if ((rc = speculo_reader_get(r, fixed[i], &c)) == 0) {
            fz_touch(&c);
            FZ_ASSERT(c.name && strcmp(c.name, fixed[i]) == 0);
        } else {
            fz_agrees(v, rc);
        }
    for (int i = 0; i < s->nnames; i++)
        if ((rc = speculo_reader_get(r, s->names[i], &c)) == 0) {
            fz_touch(&c);
            FZ_ASSERT(c.name && strcmp(c.name, s->names[i]) == 0);
        } else {
            fz_agrees(v, rc);
        }

    uint64_t lo = s->first_id > 2 ? s->first_id - 2 : 0, hi = s->last_id + 2;
    if (hi - lo > 64)
        hi = lo + 64;
    for (uint64_t id = lo; id <= hi; id++)
        if ((rc = speculo_reader_get_id(r, id, &c)) == 0) {
            fz_touch(&c);
            FZ_ASSERT(c.id == id);
        } else {
            fz_agrees(v, rc);
        }
    if (speculo_reader_get_id(r, UINT64_MAX, &c) == 0)
        fz_touch(&c);

    const uint64_t seeks[] = {0, s->first_id, (s->first_id + s->last_id) / 2, s->last_id,
                              UINT64_MAX};
    for (size_t i = 0; i < sizeof seeks / sizeof seeks[0]; i++) {
        if ((rc = speculo_reader_seek(r, seeks[i])) == 0) {
            rc = speculo_reader_next(r, &c);
            if (rc == 0) {
                fz_touch(&c);
                FZ_ASSERT(seeks[i] == UINT64_MAX || c.id > seeks[i]);
            }
        }
        fz_agrees(v, rc);
    }
    uint64_t walked = fz_walk_records(r, v);
    struct speculo_segment_info info;
    rc = speculo_reader_info(r, &info);
    fz_agrees(v, rc);
    if (rc == 0)
        FZ_ASSERT(info.live_chunks + info.expired_chunks + info.obsolete_chunks <= FZ_MAX_INPUT);
    if (rc == 0 && v->status == 0) {
        FZ_ASSERT(info.live_chunks + info.expired_chunks + info.obsolete_chunks == v->records);
        FZ_ASSERT(walked == v->records || walked == 4 * FZ_MAX_NEXT);
    }
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
static void fz_writer(const struct seen *s, const struct verdict *v)
{
    struct speculo_writer_options o = {.capacity = 16 << 10, .gc_min_dead_bytes = 1};
    speculo_writer *w = NULL;
    int rc = speculo_writer_open("s", &o, &w);
    fz_agrees(v, rc);
    if (rc < 0)
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
    uint64_t last_id = speculo_writer_last_id(w);
    speculo_writer_close(w);
    if (gc != 0 || put != 0)
        return;
    /* The collected file was written by the library: it must read cleanly
     * and hold the chunk committed last; the check must find it sound,
     * unless the input's ids let the writer go on near 2^63: a writer
     * taking over refuses ids from 2^63 - 1 on, and the check says so. */
    struct verdict after_gc = fz_check();
    if (last_id < UINT64_MAX / 4)
        fz_sound(&after_gc);
    speculo_reader *r = NULL;
    FZ_ASSERT(speculo_reader_open("s", &r) == 0);
    rc = fz_walk(r, NULL);
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
    struct verdict v = fz_check();
    fz_reader(&s, &v);
    fz_describe();
    fz_writer(&s, &v);
    return 0;
}
