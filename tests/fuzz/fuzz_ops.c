/*
 * libFuzzer target: the input bytes are a program of writer operations
 * (put with or without a name, a TTL, a `replaces`; alloc twice; commit
 * with nothing reserved; obsolete; collect; close and reopen), run on a
 * small segment (16 KiB, so collections and growth happen all the time)
 * and checked after every step against a model of what must be live:
 *  - next() from the start returns exactly the live chunks, in id order,
 *    with their bytes; a reader opened at the start follows across every
 *    collection;
 *  - get() returns the latest live version of each name, or -ENOENT;
 *  - get_id() finds exactly the live ids;
 *  - every call returns what the API promises (0, -ENOENT, -EINVAL, ...),
 *    and ids strictly increase, across reopens too.
 * A chunk with a TTL of 1 ns may or may not have expired when looked at:
 * the model accepts both.
 *
 * Build and run: make fuzz FUZZ_SECONDS=60 (see the Makefile).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "speculo.h"
#include "t_util.h"

#define FO_MAX_OPS 160
#define FO_MAX_CHUNKS (FO_MAX_OPS * 2)
#define FO_NAMES 6

#define FO_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_ops: %s:%d: invariant failed: %s\n", __FILE__,          \
                    __LINE__, #cond);                                                    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

enum fo_state { FO_DEAD, FO_LIVE, FO_MAYBE };

struct fo_chunk {
    uint64_t id;
    size_t size;
    int name; /* -1: unnamed */
    enum fo_state state;
};

static struct {
    struct fo_chunk c[FO_MAX_CHUNKS];
    int n;
    uint64_t last_id;
} M;

static const char *fo_dir; /* t_private_dir() */
static unsigned char fo_buf[64 << 10];

static const char *const fo_names[FO_NAMES] = {"a", "b", "name.with-dots", "_u", "Z9", "x"};

/* The bytes of chunk `id`, `size` long. */
static void fo_fill(unsigned char *p, size_t size, uint64_t id)
{
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)(id * 131 + i * 7 + (i >> 8));
}

static int fo_same(const void *data, size_t size, uint64_t id)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++)
        if (p[i] != (unsigned char)(id * 131 + i * 7 + (i >> 8)))
            return 0;
    return 1;
}

/* Input reader: bytes, then zeroes. */
struct fo_in {
    const uint8_t *p;
    size_t n, i;
};

static unsigned fo_byte(struct fo_in *in)
{
    return in->i < in->n ? in->p[in->i++] : 0;
}

static struct fo_chunk *fo_find(uint64_t id)
{
    for (int i = 0; i < M.n; i++)
        if (M.c[i].id == id)
            return &M.c[i];
    return NULL;
}

/* Latest version of a name in the model (NULL: never written). */
static struct fo_chunk *fo_latest(int name)
{
    for (int i = M.n - 1; i >= 0; i--)
        if (M.c[i].name == name)
            return &M.c[i];
    return NULL;
}

/* An id to name in replaces/obsolete: a model chunk, or one that never
 * existed. */
static uint64_t fo_pick_id(struct fo_in *in)
{
    unsigned b = fo_byte(in);
    if (M.n == 0 || b >= 240)
        return M.last_id + 1 + (b & 3);
    return M.c[b % (unsigned)M.n].id;
}

static void fo_verify(speculo_reader *follow)
{
    speculo_reader *r = NULL;
    FO_ASSERT(speculo_reader_open("s", &r) == 0);
    speculo_chunk c;
    int k = 0, rc;
    uint64_t prev = 0;
    while ((rc = speculo_reader_next(r, &c)) == 0) {
        FO_ASSERT(c.id > prev);
        prev = c.id;
        /* skip model chunks that are dead or may have expired */
        while (k < M.n && M.c[k].id < c.id) {
            FO_ASSERT(M.c[k].state != FO_LIVE);
            k++;
        }
        FO_ASSERT(k < M.n && M.c[k].id == c.id && M.c[k].state != FO_DEAD);
        FO_ASSERT(c.size == M.c[k].size && fo_same(c.data, c.size, c.id));
        if (M.c[k].name < 0)
            FO_ASSERT(c.name == NULL);
        else
            FO_ASSERT(c.name && strcmp(c.name, fo_names[M.c[k].name]) == 0);
        k++;
    }
    FO_ASSERT(rc == -EAGAIN);
    for (; k < M.n; k++)
        FO_ASSERT(M.c[k].state != FO_LIVE);

    for (int n = 0; n < FO_NAMES; n++) {
        struct fo_chunk *l = fo_latest(n);
        rc = speculo_reader_get(r, fo_names[n], &c);
        if (!l || l->state == FO_DEAD) {
            FO_ASSERT(rc == -ENOENT);
        } else if (rc == 0) {
            FO_ASSERT(c.id == l->id && c.size == l->size && fo_same(c.data, c.size, c.id));
        } else {
            FO_ASSERT(rc == -ENOENT && l->state == FO_MAYBE);
        }
    }
    for (int i = 0; i < M.n; i++) {
        rc = speculo_reader_get_id(r, M.c[i].id, &c);
        if (M.c[i].state == FO_LIVE)
            FO_ASSERT(rc == 0 && c.id == M.c[i].id && c.size == M.c[i].size);
        else if (M.c[i].state == FO_DEAD)
            FO_ASSERT(rc == -ENOENT);
        else
            FO_ASSERT(rc == 0 || rc == -ENOENT);
    }
    FO_ASSERT(speculo_reader_get_id(r, M.last_id + 1, &c) == -ENOENT);
    speculo_reader_close(r);

    /* the reader opened at the start follows: what it returns now is live
     * or may be, and newer than what it returned before */
    uint64_t last = 0;
    while ((rc = speculo_reader_next(follow, &c)) == 0) {
        FO_ASSERT(c.id > last);
        last = c.id;
        struct fo_chunk *m = fo_find(c.id);
        FO_ASSERT(m && m->state != FO_DEAD && c.size == m->size);
        FO_ASSERT(fo_same(c.data, c.size, c.id));
    }
    FO_ASSERT(rc == -EAGAIN);
}

static void fo_add(uint64_t id, size_t size, int name, int64_t ttl)
{
    FO_ASSERT(id > M.last_id);
    M.last_id = id;
    if (name >= 0) /* the previous versions are obsolete now */
        for (int i = 0; i < M.n; i++)
            if (M.c[i].name == name)
                M.c[i].state = FO_DEAD;
    FO_ASSERT(M.n < FO_MAX_CHUNKS);
    M.c[M.n++] = (struct fo_chunk){id, size, name, ttl ? FO_MAYBE : FO_LIVE};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fo_dir && !(fo_dir = t_private_dir("fuzzops")))
        return 0;
    t_empty_dir(fo_dir);
    memset(&M, 0, sizeof M);
    struct fo_in in = {data, size, 0};
    struct speculo_writer_options o = {.capacity = 16 << 10, .gc_dead_percent = 1 + fo_byte(&in) % 100,
                                       .gc_min_dead_bytes = 1 + fo_byte(&in) * 64};
    speculo_writer *w = NULL;
    FO_ASSERT(speculo_writer_open("s", &o, &w) == 0);
    speculo_reader *follow = NULL;
    FO_ASSERT(speculo_reader_open("s", &follow) == 0);

    for (int op = 0; op < FO_MAX_OPS && in.i < in.n; op++) {
        unsigned b = fo_byte(&in);
        size_t sz = fo_byte(&in) * 8u;
        if (b & 0x80)
            sz = sz * 24 + fo_byte(&in); /* up to ~48 KiB: bigger than the segment */
        int name = (b & 0x40) ? (int)(fo_byte(&in) % (FO_NAMES + 1)) - 1 : -1;
        int64_t ttl = (b & 0x20) ? 1 : 0;
        uint64_t id = 0;
        int rc;
        switch (b % 8) {
        case 0:
        case 1: { /* put */
            struct speculo_commit_options co = {.name = name >= 0 ? fo_names[name] : NULL,
                                                .ttl_ns = ttl};
            fo_fill(fo_buf, sz, M.last_id + 1);
            rc = speculo_writer_put(w, fo_buf, sz, &co, &id);
            FO_ASSERT(rc == 0);
            fo_add(id, sz, name, ttl);
            break;
        }
        case 2: { /* alloc + commit, replacing another chunk */
            uint64_t repl = fo_pick_id(&in);
            struct fo_chunk *t = fo_find(repl);
            void *p;
            FO_ASSERT(speculo_writer_alloc(w, sz, &p) == 0);
            fo_fill(p, sz, M.last_id + 1);
            struct speculo_commit_options co = {.name = name >= 0 ? fo_names[name] : NULL,
                                                .ttl_ns = ttl, .replaces = repl};
            rc = speculo_writer_commit(w, &co, &id);
            if (!t || t->state == FO_DEAD) {
                FO_ASSERT(rc == -ENOENT);
                /* the reservation stays: commit it plainly */
                FO_ASSERT(speculo_writer_commit(w, NULL, &id) == 0);
                fo_add(id, sz, -1, 0);
            } else if (rc == -ENOENT) {
                FO_ASSERT(t->state == FO_MAYBE); /* it expired meanwhile */
                t->state = FO_DEAD;
                FO_ASSERT(speculo_writer_commit(w, NULL, &id) == 0);
                fo_add(id, sz, -1, 0);
            } else {
                FO_ASSERT(rc == 0);
                t->state = FO_DEAD;
                fo_add(id, sz, name, ttl);
            }
            break;
        }
        case 3: { /* obsolete */
            uint64_t x = fo_pick_id(&in);
            struct fo_chunk *t = fo_find(x);
            rc = speculo_writer_obsolete(w, x);
            if (!t || t->state == FO_DEAD)
                FO_ASSERT(rc == -ENOENT);
            else
                FO_ASSERT(rc == 0 || (rc == -ENOENT && t->state == FO_MAYBE));
            if (t)
                t->state = FO_DEAD;
            break;
        }
        case 4: /* collect */
            FO_ASSERT(speculo_writer_gc(w) == 0);
            break;
        case 5: { /* alloc twice: the first reservation is discarded */
            void *p;
            FO_ASSERT(speculo_writer_alloc(w, sz, &p) == 0);
            memset(p, 0xa5, sz);
            FO_ASSERT(speculo_writer_alloc(w, sz / 2 + 1, &p) == 0);
            fo_fill(p, sz / 2 + 1, M.last_id + 1);
            if (b & 0x10) /* collected with the reservation pending */
                FO_ASSERT(speculo_writer_gc(w) == 0 && speculo_writer_alloc(w, sz / 2 + 1, &p) == 0);
            fo_fill(p, sz / 2 + 1, M.last_id + 1);
            FO_ASSERT(speculo_writer_commit(w, NULL, &id) == 0);
            fo_add(id, sz / 2 + 1, -1, 0);
            FO_ASSERT(speculo_writer_commit(w, NULL, &id) == -EINVAL); /* nothing reserved */
            break;
        }
        case 6: { /* bad options change nothing */
            struct speculo_commit_options co = {.ttl_ns = -1};
            FO_ASSERT(speculo_writer_put(w, "x", 1, &co, &id) == -EINVAL);
            co = (struct speculo_commit_options){.name = "1bad"};
            FO_ASSERT(speculo_writer_put(w, "x", 1, &co, &id) == -EINVAL);
            break;
        }
        case 7: { /* close and reopen, sometimes with a reservation pending */
            void *p;
            if (b & 0x10)
                FO_ASSERT(speculo_writer_alloc(w, sz, &p) == 0);
            speculo_writer_close(w);
            w = NULL;
            FO_ASSERT(speculo_writer_open("s", &o, &w) == 0);
            break;
        }
        }
        fo_verify(follow);
    }
    speculo_writer_close(w);
    speculo_reader_close(follow);
    return 0;
}
