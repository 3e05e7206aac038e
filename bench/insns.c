/*
 * Instructions per operation, for callgrind (bench/callgrind-ops runs it):
 * one writer and one reader of a segment in one process, each operation
 * in a function of its own (op_*) that callgrind counts with
 * --toggle-collect. Instruction counts do not depend on the machine's load,
 * so they are what the commit and read paths were tuned with.
 *
 *   insns N     N rounds after a warm-up, each round:
 *               op_put        speculo_writer_put(), 64 B, unnamed
 *               op_next       speculo_reader_next() returning that chunk
 *               op_next_none  speculo_reader_next() finding nothing (-EAGAIN)
 *               op_alloc      speculo_writer_alloc(), 64 B
 *               op_commit     speculo_writer_commit() of that reservation
 *               op_next       (again, for the committed chunk)
 *               op_put_named  speculo_writer_put(), 64 B, named "hot"
 *               op_get        speculo_reader_get("hot")
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "speculo.h"

static void die(const char *what, int rc)
{
    fprintf(stderr, "insns: %s: %s\n", what, speculo_strerror(rc));
    exit(1);
}

/* noipa: neither inlined nor merged with a twin (op_next, op_next_none) */
#define NOINLINE __attribute__((noipa))

NOINLINE static int op_put(speculo_writer *w, const void *msg)
{
    return speculo_writer_put(w, msg, 64, NULL, NULL);
}

NOINLINE static int op_put_named(speculo_writer *w, const void *msg)
{
    struct speculo_commit_options o = {.name = "hot"};
    return speculo_writer_put(w, msg, 64, &o, NULL);
}

NOINLINE static int op_alloc(speculo_writer *w, void **p)
{
    return speculo_writer_alloc(w, 64, p);
}

NOINLINE static int op_commit(speculo_writer *w)
{
    return speculo_writer_commit(w, NULL, NULL);
}

NOINLINE static int op_next(speculo_reader *r, speculo_chunk *c)
{
    return speculo_reader_next(r, c);
}

NOINLINE static int op_next_none(speculo_reader *r, speculo_chunk *c)
{
    return speculo_reader_next(r, c);
}

NOINLINE static int op_get(speculo_reader *r, speculo_chunk *c)
{
    return speculo_reader_get(r, "hot", c);
}

/* w/r: a segment of unnamed chunks; wn/rn: one of named updates */
static void round_trip(speculo_writer *w, speculo_reader *r, speculo_writer *wn, speculo_reader *rn,
                       uint64_t i)
{
    uint64_t msg[8] = {i};
    speculo_chunk c;
    int rc;
    if ((rc = op_put(w, msg)) < 0)
        die("put", rc);
    if ((rc = op_next(r, &c)) < 0 || *(const uint64_t *)c.data != i)
        die("next", rc);
    if ((rc = op_next_none(r, &c)) != -EAGAIN)
        die("next (nothing new)", rc);
    void *p;
    if ((rc = op_alloc(w, &p)) < 0)
        die("alloc", rc);
    memcpy(p, msg, sizeof msg);
    if ((rc = op_commit(w)) < 0)
        die("commit", rc);
    if ((rc = op_next(r, &c)) < 0 || *(const uint64_t *)c.data != i)
        die("next", rc);
    if ((rc = op_put_named(wn, msg)) < 0)
        die("put named", rc);
    if ((rc = op_get(rn, &c)) < 0 || *(const uint64_t *)c.data != i)
        die("get", rc);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000, warm = 1000;
    char seg[64], segn[64];
    snprintf(seg, sizeof seg, "insns-%ld", (long)getpid());
    snprintf(segn, sizeof segn, "insns-%ld-named", (long)getpid());
    /* room for every record: no collection while counting */
    struct speculo_writer_options o = {.capacity = (size_t)(n + warm) * 3 * 128 * 2 + (8 << 20),
                                       .gc_dead_percent = 100,
                                       .gc_min_dead_bytes = (size_t)1 << 60};
    speculo_writer *w, *wn;
    speculo_reader *r, *rn;
    int rc = speculo_writer_open(seg, &o, &w);
    if (rc < 0 || (rc = speculo_writer_open(segn, &o, &wn)) < 0)
        die("writer_open", rc);
    if ((rc = speculo_reader_open(seg, &r)) < 0 || (rc = speculo_reader_open(segn, &rn)) < 0)
        die("reader_open", rc);
    for (long i = 0; i < warm + n; i++)
        round_trip(w, r, wn, rn, (uint64_t)i);
    speculo_reader_close(r);
    speculo_reader_close(rn);
    speculo_writer_close(w);
    speculo_writer_close(wn);
    speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
    speculo_segment_remove(segn, SPECULO_REMOVE_FORCE);
    return 0;
}
