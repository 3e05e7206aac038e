/*
 * Seed corpus for fuzz_reader: real segment files made by the library.
 *
 *   make_corpus OUTDIR      writes one file per kind of segment into OUTDIR
 *
 * Kinds: empty; a stream; named updates; obsoleted and replaced chunks;
 * expired chunks; a segment after a collection; a big chunk; a writer that
 * reserved a chunk and died before committing it (its bytes after the
 * tail, its owner word still set); a segment full to the last byte.
 * Segments are small (16-64 KiB) so that the fuzzer runs fast.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "speculo.h"

static char dir[PATH_MAX];
static const char *outdir;

static void die(const char *what, int rc)
{
    fprintf(stderr, "make_corpus: %s: %s\n", what, speculo_strerror(rc));
    exit(1);
}

static speculo_writer *open_w(const char *seg, size_t cap)
{
    struct speculo_writer_options o = {.capacity = cap};
    speculo_writer *w = NULL;
    int rc = speculo_writer_open(seg, &o, &w);
    if (rc < 0)
        die(seg, rc);
    return w;
}

static uint64_t put(speculo_writer *w, const char *data, size_t n, const char *name,
                    int64_t ttl, uint64_t repl)
{
    struct speculo_commit_options o = {.name = name, .ttl_ns = ttl, .replaces = repl};
    uint64_t id = 0;
    int rc = speculo_writer_put(w, data, n, &o, &id);
    if (rc < 0)
        die("put", rc);
    return id;
}

/* Copy the segment's file into OUTDIR/seg. */
static void save(const char *seg)
{
    char from[PATH_MAX + 256], to[PATH_MAX + 256];
    snprintf(from, sizeof from, "%s/%s", dir, seg);
    snprintf(to, sizeof to, "%s/%s", outdir, seg);
    int in = open(from, O_RDONLY), out = open(to, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (in < 0 || out < 0)
        die(seg, -errno);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            die(seg, -EIO);
    close(in);
    close(out);
}

static void cleanup(void)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char p[PATH_MAX + 256];
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    mkdir(outdir, 0755);
    char tmpl[] = "/dev/shm/speculo-corpus-XXXXXX";
    if (!mkdtemp(tmpl))
        die("mkdtemp", -errno);
    snprintf(dir, sizeof dir, "%s", tmpl);
    setenv("SPECULO_DIR", dir, 1);
    atexit(cleanup);
    char buf[40000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)('a' + i % 26);

    speculo_writer *w = open_w("empty", 16 << 10);
    speculo_writer_close(w);
    save("empty");

    w = open_w("stream", 32 << 10);
    for (int i = 0; i < 40; i++)
        put(w, buf + i, (size_t)(i * 7 % 90), NULL, 0, 0);
    speculo_writer_close(w);
    save("stream");

    w = open_w("named", 32 << 10);
    static const char *const names[] = {"first", "third", "n0", "_x", "temp.c-1"};
    for (int i = 0; i < 30; i++)
        put(w, buf + i, 10 + (size_t)i, names[i % 5], 0, 0);
    speculo_writer_close(w);
    save("named");

    w = open_w("obsoleted", 32 << 10);
    uint64_t a = put(w, "one", 3, NULL, 0, 0);
    uint64_t b = put(w, "two", 3, "name", 0, 0);
    put(w, "three", 5, NULL, 0, a);
    int rc = speculo_writer_obsolete(w, b);
    if (rc < 0)
        die("obsolete", rc);
    put(w, "four", 4, "name", 0, 0);
    speculo_writer_close(w);
    save("obsoleted");

    w = open_w("expired", 16 << 10);
    put(w, "gone", 4, NULL, 1, 0);
    put(w, "gone too", 8, "a", 1, 0);
    put(w, "stays", 5, NULL, (int64_t)1 << 60, 0);
    put(w, "stays", 5, "first", 0, 0);
    speculo_writer_close(w);
    save("expired");

    w = open_w("collected", 16 << 10);
    for (int i = 0; i < 20; i++)
        put(w, buf, 100, i % 2 ? "first" : NULL, i % 3 ? 0 : 1, 0);
    rc = speculo_writer_gc(w);
    if (rc < 0)
        die("gc", rc);
    put(w, "after", 5, "third", 0, 0);
    speculo_writer_close(w);
    save("collected");

    w = open_w("big", 64 << 10);
    put(w, buf, 30000, "first", 0, 0);
    put(w, buf, 1, NULL, 0, 0);
    speculo_writer_close(w);
    save("big");

    /* A writer that reserved a chunk and was "killed": saved while the
     * handle is open, so the owner word is set and the bytes follow the
     * tail with their commit word 0. */
    w = open_w("reserved", 16 << 10);
    put(w, "kept", 4, "first", 0, 0);
    void *p;
    if ((rc = speculo_writer_alloc(w, 500, &p)) < 0)
        die("alloc", rc);
    memset(p, 0x5a, 500);
    save("reserved");
    speculo_writer_close(w);

    /* Full: commits until the segment collects, saved just before. */
    w = open_w("full", 16 << 10);
    for (int i = 0; i < 10; i++)
        put(w, buf, 300, NULL, 0, 0);
    speculo_writer_close(w);
    save("full");
    return 0;
}
