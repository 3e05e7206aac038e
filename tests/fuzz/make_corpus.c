/*
 * Seed corpus for fuzz_reader and fuzz_fs: real segment files made by the
 * library.
 *
 *   make_corpus OUTDIR [FSDIR]   writes one file per kind of segment into
 *                                OUTDIR; with FSDIR, also each segment
 *                                followed by each of a few fuzz_fs
 *                                programs (fuzz_fs.h) into FSDIR
 *
 * Kinds: empty; a stream; named updates; obsoleted and replaced chunks;
 * expired chunks; a segment after a collection; a big chunk; a writer that
 * reserved a chunk and died before committing it (its bytes after the
 * tail, its owner word still set); a segment full to the last byte; many
 * names, so that some collide in the name index.
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

#include "fuzz_fs.h"
#include "speculo.h"
#include "t_util.h"

static const char *dir; /* t_private_dir(): SPECULO_DIR, removed at exit */
static const char *outdir, *fsdir;

/* fuzz_fs programs (fuzz_fs.h gives the encoding): starting points that
 * reach the changes made under open files, which random bytes rarely
 * spell out. Choices are indexes, taken modulo what the target knows. */
static const unsigned char prog_cut[] = {
    FZ_FILE, FZF_TRUNCATE, 2,           /* cut "s" to half, in place */
    FZ_READ, 0, 3, 0, FZ_READ, 1, 2, 0, FZ_READ, 2, 5, 1, /* reads of open files */
    FZ_LOOKUP, 0, 0, FZ_LOOKUP, 1, 1, FZ_GETATTR, 2, FZ_GETXATTR, 3, 0, 2,
    FZ_OPENDIR, 0, FZ_READDIR, 0, 0, 2, FZ_OPEN, 4, 0,
    FZ_FILE, FZF_RESTORE, 0,            /* back as it was, in place */
    FZ_READ, 0, 3, 0, FZ_LOOKUP, 2, 2, FZ_READDIR, 0, 1, 2,
    FZ_FILE, FZF_TRUNCATE, 0,           /* to nothing */
    FZ_READ, 1, 3, 0, FZ_OPEN, 5, 0, FZ_GETATTR, 0, FZ_LISTXATTR, 3, 2,
};
static const unsigned char prog_gc[] = {
    FZ_FILE, FZF_WRITER, 3,             /* take over, obsolete, collect */
    FZ_READ, 0, 3, 0, FZ_READ, 1, 3, 0, FZ_READ, 2, 3, 0, FZ_READ, 3, 3, 0,
    FZ_OPENDIR, 0, FZ_READDIR, 0, 0, 2, FZ_READDIR, 0, 0, 2,
    FZ_LOOKUP, 0, 0, FZ_LOOKUP, 1, 1, FZ_LOOKUP, 2, 2, FZ_LOOKUP, 3, 3,
    FZ_OPEN, 6, 0, FZ_OPEN, 7, 0, FZ_FILE, FZF_WRITER, 2,
    FZ_READ, 0, 3, 0, FZ_READ, 4, 3, 0, FZ_READDIR, 0, 1, 2, FZ_GETXATTR, 4, 2, 2,
    FZ_FORGET, 0, 0, FZ_FORGET, 0x81, 0, FZ_RELEASE, 0, FZ_RELEASEDIR, 0,
};
static const unsigned char prog_replace[] = {
    FZ_FILE, FZF_REPLACE, 0,            /* same bytes, new inode */
    FZ_GETATTR, 0, FZ_GETATTR, 1, FZ_LOOKUP, 0, 0, FZ_LOOKUP, 1, 1, FZ_OPEN, 2, 0,
    FZ_FILE, FZF_REMOVE, 1,             /* speculo_segment_remove() */
    FZ_GETATTR, 0, FZ_READ, 0, 3, 0, FZ_LOOKUP, 2, 2, FZ_OPENDIR, 0, FZ_READDIR, 0, 0, 2,
    FZ_FILE, FZF_WRITER, 0,             /* a new incarnation */
    FZ_LOOKUP, 0, 0x80, FZ_OPENDIR, 0, FZ_READDIR, 1, 0, 2, FZ_LOOKUP, 3, 3,
    FZ_NOTIFY, FZ_LOOKUP, 3, 3, FZ_READDIR, 1, 5, 2, FZ_NOTIFY, /* watchers stop, restart */
    FZ_FILE, FZF_REMOVE, 0, FZ_LOOKUP, 0, 0x80, FZ_GETATTR, 1, FZ_STATFS,
};
static const unsigned char prog_fail[] = {
    FZ_FAILNEXT, FZ_LOOKUP, 0, 0, FZ_FAILNEXT, FZ_OPEN, 3, 0, FZ_FAILNEXT, FZ_OPENDIR, 0,
    FZ_FAILNEXT, FZ_READDIR, 0, 0, 2, FZ_FORGET, 0, 3, FZ_STATFS,
    FZ_REFUSED, 0, 0, FZ_REFUSED, 3, 1, FZ_REFUSED, 8, 2, FZ_REFUSED, 12, 3,
    FZ_FILE, FZF_JUNK, 0, FZ_FILE, FZF_SECOND, 0, FZ_OPENDIR, 0xff, FZ_READDIR, 0, 1, 2,
    FZ_LOOKUP, 0xff, 0x81, FZ_LOOKUP, 0xff, 0x86, FZ_LOOKUP, 0xff, 0x87,
    FZ_FILE, FZF_CHMOD, 5, FZ_LOOKUP, 0, 0, FZ_GETATTR, 0, FZ_OPEN, 1, 0,
    FZ_FILE, FZF_CHMOD, 1, FZ_READDIR, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 5,
};
static const struct {
    const char *suffix;
    const unsigned char *p;
    size_t n;
} progs[] = {
    {"cut", prog_cut, sizeof prog_cut},
    {"gc", prog_gc, sizeof prog_gc},
    {"replace", prog_replace, sizeof prog_replace},
    {"fail", prog_fail, sizeof prog_fail},
};

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

static void write_all(int fd, const void *p, size_t n, const char *what)
{
    if (write(fd, p, n) != (ssize_t)n)
        die(what, -EIO);
}

/* Copy the segment's file into @to, then @prog and the fuzz_fs trailer
 * when @prog is not NULL. */
static void copy_to(const char *seg, const char *to, const unsigned char *prog, size_t n)
{
    char from[PATH_MAX + 256];
    snprintf(from, sizeof from, "%s/%s", dir, seg);
    int in = open(from, O_RDONLY), out = open(to, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (in < 0 || out < 0)
        die(seg, -errno);
    char buf[65536];
    ssize_t got;
    while ((got = read(in, buf, sizeof buf)) > 0)
        write_all(out, buf, (size_t)got, seg);
    if (prog != NULL) {
        unsigned char len = (unsigned char)n;
        write_all(out, prog, n, seg);
        write_all(out, &len, 1, seg);
        write_all(out, FZFS_MAGIC, FZFS_MAGIC_LEN, seg);
    }
    close(in);
    close(out);
}

/* Copy the segment's file into OUTDIR/seg (and FSDIR/seg-PROGRAM). */
static void save(const char *seg)
{
    char to[PATH_MAX + 256];
    snprintf(to, sizeof to, "%s/%s", outdir, seg);
    copy_to(seg, to, NULL, 0);
    for (size_t i = 0; fsdir != NULL && i < sizeof progs / sizeof progs[0]; i++) {
        _Static_assert(sizeof prog_cut < 256 && sizeof prog_gc < 256, "program length");
        _Static_assert(sizeof prog_replace < 256 && sizeof prog_fail < 256, "program length");
        snprintf(to, sizeof to, "%s/%s-%s", fsdir, seg, progs[i].suffix);
        copy_to(seg, to, progs[i].p, progs[i].n);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: make_corpus OUTDIR [FSDIR]\n");
        return 2;
    }
    outdir = argv[1];
    fsdir = argc == 3 ? argv[2] : NULL;
    mkdir(outdir, 0755);
    if (fsdir != NULL)
        mkdir(fsdir, 0755);
    if (!(dir = t_private_dir("corpus")))
        die("t_private_dir", -errno);
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

    /* 120 names in 256 index slots, a third of them updated: names out of
     * their home slot, and runs of names, for the check's index walk. */
    w = open_w("names", 64 << 10);
    for (int i = 0; i < 160; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i < 120 ? i : (i - 120) * 3);
        put(w, buf + i, 8, name, 0, 0);
    }
    speculo_writer_close(w);
    save("names");

    /* Full: commits until the segment collects, saved just before. */
    w = open_w("full", 16 << 10);
    for (int i = 0; i < 10; i++)
        put(w, buf, 300, NULL, 0, 0);
    speculo_writer_close(w);
    save("full");
    return 0;
}
