/*
 * The C side of the Python tests' multi-process cases, built by the suite
 * against the tree's library (conftest.py):
 *
 *   c_peer read SEG ID      follow SEG (blocking waits) until the chunk ID
 *                           (or a later one) was read; print a line per
 *                           chunk: "ID NAME SIZE SUM" (NAME "-" when unnamed,
 *                           SUM the FNV-1a hash of the bytes, hex)
 *   c_peer write SEG N SIZE commit N chunks of SIZE bytes, chunk k (from 0)
 *                           holding bytes (k * 31 + i) & 0xff, every 4th one
 *                           named "every4" with a 60 s TTL; print their ids
 *
 * Exits 1 with a message when something fails, or after 60 s without
 * reading all it should.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "speculo.h"

static uint64_t fnv1a(const void *data, size_t size)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int die(const char *what, int rc)
{
    fprintf(stderr, "c_peer: %s: %s\n", what, speculo_strerror(rc));
    return 1;
}

static int64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static int read_chunks(const char *segment, uint64_t last)
{
    speculo_reader *r;
    int rc = speculo_reader_open(segment, &r);
    if (rc < 0)
        return die(segment, rc);
    int64_t deadline = now_s() + 60;
    for (uint64_t got = 0; got < last;) {
        speculo_chunk c;
        rc = speculo_reader_next(r, &c);
        if (rc == -EAGAIN) {
            if (now_s() > deadline)
                return die("waiting for chunks", -ETIMEDOUT);
            rc = speculo_reader_wait(r, 1000);
            if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR)
                return die("wait", rc);
            continue;
        }
        if (rc < 0)
            return die("next", rc);
        printf("%llu %s %zu %016llx\n", (unsigned long long)c.id, c.name ? c.name : "-", c.size,
               (unsigned long long)fnv1a(c.data, c.size));
        got = c.id;
    }
    speculo_reader_close(r);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int write_chunks(const char *segment, long n, size_t size)
{
    speculo_writer *w;
    int rc = speculo_writer_open(segment, NULL, &w);
    if (rc < 0)
        return die(segment, rc);
    for (long k = 0; k < n; k++) {
        void *p;
        if ((rc = speculo_writer_alloc(w, size, &p)) < 0)
            return die("alloc", rc);
        for (size_t i = 0; i < size; i++)
            ((unsigned char *)p)[i] = (unsigned char)((k * 31 + (long)i) & 0xff);
        struct speculo_commit_options o = {0};
        if (k % 4 == 3) {
            o.name = "every4";
            o.ttl_ns = 60 * 1000000000LL;
        }
        uint64_t id;
        if ((rc = speculo_writer_commit(w, &o, &id)) < 0)
            return die("commit", rc);
        printf("%llu\n", (unsigned long long)id);
    }
    speculo_writer_close(w);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "read"))
        return read_chunks(argv[2], strtoull(argv[3], NULL, 10));
    if (argc == 5 && !strcmp(argv[1], "write"))
        return write_chunks(argv[2], atol(argv[3]), (size_t)atol(argv[4]));
    fprintf(stderr, "usage: c_peer read SEG ID | c_peer write SEG N SIZE\n");
    return 2;
}
