/*
 * speculofs and the command-line tool, against the same work on tmpfs.
 *
 *   fs   cat and dd bs=1M of a 256 MiB chunk committed a moment before,
 *        through speculofs, vs the same bytes in a tmpfs file: first read
 *        (nothing cached, a fresh chunk each round) and second read; read
 *        throughput by read size (the plot); grep -r over 10,000 chunks of
 *        4 KiB vs as many tmpfs files (open, read, close per file); ls -l of
 *        a segment of many chunks vs as many files on tmpfs; time from the
 *        start of a commit to the chunk's file being visible to stat(),
 *        against creat() on tmpfs, samples interleaved
 *   cli  speculo put and speculo cat per second, process start included, vs
 *        cp of the same small file to tmpfs
 *
 * Environment: SPECULO_DIR (the segments), BENCH_TMP (a scratch directory on
 * tmpfs for plain files and the mount point), SPECULOFS and SPECULO_CLI (the
 * programs). The mount is made here and unmounted with fusermount3 -u.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bc.h"
#include "speculo.h"

extern char **environ;

#define MAX_ROUNDS 16
#define MiB ((size_t)1 << 20)

static const char *tmp, *sfs_bin, *cli_bin;
static char segdir[4096], mnt[4200];

/* Run argv with stdin from `in` (or /dev/null) and stdout to /dev/null;
 * return the wall time in ns. */
static double run(char *const argv[], const char *in)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int64_t t0 = bc_mono_ns();
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    if (rc != 0)
        bc_die("spawn %s: %s", argv[0], strerror(rc));
    int st;
    waitpid(pid, &st, 0);
    int64_t t1 = bc_mono_ns();
    posix_spawn_file_actions_destroy(&fa);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bc_die("%s %s: exit status %d", argv[0], argv[1] ? argv[1] : "", st);
    return (double)(t1 - t0);
}

static double cat_time(const char *path)
{
    char *argv[] = {"/bin/cat", (char *)path, NULL};
    return run(argv, NULL);
}

static double dd_time(const char *path)
{
    char in[4400];
    snprintf(in, sizeof in, "if=%s", path);
    char *argv[] = {"/bin/dd", in, "of=/dev/null", "bs=1M", "status=none", NULL};
    return run(argv, NULL);
}

static double ls_time(const char *path)
{
    char *argv[] = {"/bin/ls", "-l", (char *)path, NULL};
    return run(argv, NULL);
}

/* ---- the mount --------------------------------------------------------------- */

static pid_t server = -1;

static bool mounted(void)
{
    struct stat a, b;
    char parent[4300];
    snprintf(parent, sizeof parent, "%s/..", mnt);
    return stat(mnt, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

static bool mount_fs(void)
{
    snprintf(mnt, sizeof mnt, "%s/mnt", tmp);
    mkdir(mnt, 0700);
    char opt[4200];
    snprintf(opt, sizeof opt, "dir=%s", segdir);
    char *argv[] = {(char *)sfs_bin, "-f", "-o", opt, mnt, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&server, sfs_bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return false;
    for (int i = 0; i < 500 && !mounted(); i++)
        usleep(10000);
    return mounted();
}

static void unmount_fs(void)
{
    if (server < 0)
        return;
    char *argv[] = {"/bin/fusermount3", "-u", mnt, NULL};
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) == 0)
        waitpid(pid, NULL, 0);
    int st;
    for (int i = 0; i < 500; i++) {
        if (waitpid(server, &st, WNOHANG) == server) {
            server = -1;
            break;
        }
        usleep(10000);
    }
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, &st, 0);
        server = -1;
    }
    rmdir(mnt);
}

/* ---- cat ------------------------------------------------------------------------- */

/* A segment holding one chunk of `size` pseudo-random bytes (the same
 * bytes every time), and a tmpfs file with them unless `plain` is NULL. */
static void make_big(const char *seg, const char *plain, size_t size)
{
    struct speculo_writer_options o = {.capacity = size + size / 4 + 8 * MiB};
    speculo_writer *w;
    int rc = speculo_writer_open(seg, &o, &w);
    if (rc < 0)
        bc_die("writer_open: %s", speculo_strerror(rc));
    void *p;
    if ((rc = speculo_writer_alloc(w, size, &p)) < 0)
        bc_die("alloc: %s", speculo_strerror(rc));
    uint64_t x = 0x2545f4914f6cdd1du, *q = p;
    for (size_t i = 0; i < size / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        q[i] = x;
    }
    if (plain != NULL) {
        int fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            bc_die("open %s: %s", plain, strerror(errno));
        for (size_t off = 0; off < size;) {
            ssize_t k = write(fd, (char *)p + off, size - off);
            if (k <= 0)
                bc_die("write %s: %s", plain, strerror(errno));
            off += (size_t)k;
        }
        close(fd);
    }
    if ((rc = speculo_writer_commit(w, NULL, NULL)) < 0)
        bc_die("commit: %s", speculo_strerror(rc));
    speculo_writer_close(w);
}

/* Chunk 1 of `seg` through the mount, once the mount shows it. */
static void chunk_path(char *path, size_t size, const char *seg, size_t want)
{
    snprintf(path, size, "%s/%s/%020d", mnt, seg, 1);
    struct stat st;
    for (int i = 0; i < 200 && stat(path, &st) < 0; i++)
        usleep(10000);
    if (stat(path, &st) < 0 || (size_t)st.st_size != want)
        bc_die("speculofs: %s not there or wrong size", path);
}

/* The mount's readahead window (sysfs, root only): set to `kb`, returning
 * what it was, or -1 if it cannot be changed. */
static int set_readahead(int kb)
{
    struct stat st;
    char path[128], old[32] = "";
    if (stat(mnt, &st) != 0)
        return -1;
    snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev),
             minor(st.st_dev));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, old, sizeof old - 1);
    char v[16];
    int len = snprintf(v, sizeof v, "%d", kb);
    int ok = n > 0 && write(fd, v, (size_t)len) == len;
    close(fd);
    return ok ? atoi(old) : -1;
}

enum { COLD_FS, COLD_T, WARM_FS, WARM_T };

/* Read a fresh chunk twice through the mount and the tmpfs file twice,
 * the order of the two rotating by round. */
static void read_twice(double (*tool)(const char *), const char *plain, const char *path, int r,
                       double *t)
{
    if (r % 2) {
        t[COLD_FS] = tool(path);
        t[COLD_T] = tool(plain);
        t[WARM_FS] = tool(path);
        t[WARM_T] = tool(plain);
    } else {
        t[COLD_T] = tool(plain);
        t[COLD_FS] = tool(path);
        t[WARM_T] = tool(plain);
        t[WARM_FS] = tool(path);
    }
}

static void read_row(const char *what, size_t size, double *fs, double *t, double *ratio,
                     int rounds)
{
    char a[32], b[32], c[32], d[32];
    double mf = bc_median(fs, (size_t)rounds), mt = bc_median(t, (size_t)rounds);
    bc_row("fs", "%s|%s (%s)|%s (%s)|%.2f", what, bc_fmt_ns(a, sizeof a, mf),
           bc_fmt_rate(b, sizeof b, (double)size / mf * 1e9, "B/s"), bc_fmt_ns(c, sizeof c, mt),
           bc_fmt_rate(d, sizeof d, (double)size / mt * 1e9, "B/s"),
           bc_median(ratio, (size_t)rounds));
}

static void read_target(const char *id, const char *what, double *fs, double *t, double *ratio,
                        int rounds, double target)
{
    char a[32], b[32];
    bc_target(id, what, bc_fmt_ns(a, sizeof a, bc_median(fs, (size_t)rounds)),
              bc_fmt_ns(b, sizeof b, bc_median(t, (size_t)rounds)),
              bc_median(ratio, (size_t)rounds), false, target);
}

/* What a user does: commit a chunk, then cat it or dd it (bs=1M) through
 * the mount; nothing of it is cached yet, by the kernel or the server
 * (whose lookup read its record header only). Each measurement gets a
 * chunk of its own. As root, speculofs widens the mount's readahead to
 * 1 MiB; the last row reads with the kernel's 128 KiB, as a mount by
 * another user would. */
static void part_read(const struct bc_opts *o)
{
    int rounds = o->quick ? 1 : 5;
    size_t size = 256 * MiB;
    /* [tool: cat, dd, dd at 128 KiB][round][COLD_FS ...] and ratios */
    double t[3][MAX_ROUNDS][4], v[4][3][MAX_ROUNDS], ratio[3][2][MAX_ROUNDS];
    int ra = set_readahead(128);
    if (ra > 0)
        set_readahead(ra);
    char plain[4200];
    snprintf(plain, sizeof plain, "%s/big", tmp);
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < (ra > 0 ? 3 : 2); k++) {
            char seg[64], path[4400];
            snprintf(seg, sizeof seg, "%s-read%d-%d", bc_tag(), r, k);
            make_big(seg, r == 0 && k == 0 ? plain : NULL, size);
            chunk_path(path, sizeof path, seg, size);
            if (k == 2)
                set_readahead(128);
            read_twice(k == 0 ? cat_time : dd_time, plain, path, r, t[k][r]);
            if (k == 2)
                set_readahead(ra);
            for (int j = 0; j < 4; j++)
                v[j][k][r] = t[k][r][j];
            ratio[k][0][r] = t[k][r][COLD_FS] / t[k][r][COLD_T];
            ratio[k][1][r] = t[k][r][WARM_FS] / t[k][r][WARM_T];
            speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
        }
    }
    unlink(plain);
    bc_head("fs", "what|speculofs|tmpfs|speculofs / tmpfs");
    read_row("cat of a 256 MiB chunk, first read", size, v[COLD_FS][0], v[COLD_T][0], ratio[0][0],
             rounds);
    read_row("cat of a 256 MiB chunk, second read", size, v[WARM_FS][0], v[WARM_T][0],
             ratio[0][1], rounds);
    read_row("dd bs=1M of a 256 MiB chunk, first read", size, v[COLD_FS][1], v[COLD_T][1],
             ratio[1][0], rounds);
    read_row("dd bs=1M of a 256 MiB chunk, second read", size, v[WARM_FS][1], v[WARM_T][1],
             ratio[1][1], rounds);
    if (ra > 0)
        read_row("dd bs=1M, first read, with the kernel's 128 KiB readahead (a mount by a user)",
                 size, v[COLD_FS][2], v[COLD_T][2], ratio[2][0], rounds);
    else
        bc_note("speculofs: the mount's readahead could not be changed (not root): dd at 128 KiB "
                "readahead not measured");
    read_target("7a", "cat of a fresh 256 MiB chunk via speculofs vs tmpfs, first read",
                v[COLD_FS][0], v[COLD_T][0], ratio[0][0], rounds, 1.5);
    read_target("7a2", "dd bs=1M of a fresh 256 MiB chunk via speculofs vs tmpfs, first read",
                v[COLD_FS][1], v[COLD_T][1], ratio[1][0], rounds, 1.5);
    read_target("7b", "cat of a 256 MiB chunk via speculofs vs tmpfs, second read", v[WARM_FS][0],
                v[WARM_T][0], ratio[0][1], rounds, 1.1);
    read_target("7b2", "dd bs=1M of a 256 MiB chunk via speculofs vs tmpfs, second read",
                v[WARM_FS][1], v[WARM_T][1], ratio[1][1], rounds, 1.1);
}

/* ---- read size --------------------------------------------------------------------- */

/* Open, read to the end in reads of `bs`, close: the wall time. */
static double read_time(const char *path, char *buf, size_t bs)
{
    int64_t t0 = bc_mono_ns();
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        bc_die("open %s: %s", path, strerror(errno));
    ssize_t n;
    while ((n = read(fd, buf, bs)) > 0)
        ;
    if (n < 0)
        bc_die("read %s: %s", path, strerror(errno));
    close(fd);
    return (double)(bc_mono_ns() - t0);
}

/* Throughput by read size, a fresh chunk for each: the plot. */
static void part_sweep(const struct bc_opts *o)
{
    static const size_t sizes[] = {4096, 16384, 65536, 262144, 1048576, 4194304};
    enum { NSIZES = sizeof sizes / sizeof sizes[0] };
    int rounds = o->quick ? 1 : 5;
    size_t size = (o->quick ? 16 : 64) * MiB;
    char plain[4200], *buf = malloc(sizes[NSIZES - 1]);
    FILE *dat = NULL;
    if (buf == NULL)
        bc_die("out of memory");
    if (o->out) {
        char p[4200];
        snprintf(p, sizeof p, "%s/fs-sweep.dat", o->out);
        dat = fopen(p, "w");
    }
    snprintf(plain, sizeof plain, "%s/sweep", tmp);
    bc_head("fssweep", "read size|tmpfs|speculofs, first read|speculofs, second read|first read "
                       "/ tmpfs (time)");
    for (size_t i = 0; i < NSIZES; i++) {
        double tt[MAX_ROUNDS], tf[MAX_ROUNDS], tw[MAX_ROUNDS], ratio[MAX_ROUNDS];
        for (int r = 0; r < rounds; r++) {
            char seg[64], path[4400];
            snprintf(seg, sizeof seg, "%s-sweep%zu-%d", bc_tag(), i, r);
            make_big(seg, i == 0 && r == 0 ? plain : NULL, size);
            chunk_path(path, sizeof path, seg, size);
            tt[r] = read_time(plain, buf, sizes[i]);
            tf[r] = read_time(path, buf, sizes[i]);
            tw[r] = read_time(path, buf, sizes[i]);
            ratio[r] = tf[r] / tt[r];
            speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
        }
        double gt = (double)size / bc_median(tt, (size_t)rounds);
        double gf = (double)size / bc_median(tf, (size_t)rounds);
        double gw = (double)size / bc_median(tw, (size_t)rounds);
        char a[32], b[32], c[32], d[32];
        snprintf(a, sizeof a, "%zu KiB", sizes[i] / 1024);
        bc_row("fssweep", "%s|%s|%s|%s|%.2f", a, bc_fmt_rate(b, sizeof b, gt * 1e9, "B/s"),
               bc_fmt_rate(c, sizeof c, gf * 1e9, "B/s"), bc_fmt_rate(d, sizeof d, gw * 1e9, "B/s"),
               bc_median(ratio, (size_t)rounds));
        if (dat)
            fprintf(dat, "%zu %.4f %.4f %.4f\n", sizes[i], gt, gf, gw);
    }
    if (dat)
        fclose(dat);
    unlink(plain);
    free(buf);
}

/* ---- small files ------------------------------------------------------------------- */

#define SMALL_SIZE 4096

/* The bytes of small chunk / file i: one line of letters. */
static void small_bytes(char *b, long i)
{
    for (size_t k = 0; k < SMALL_SIZE - 1; k++)
        b[k] = (char)('a' + (size_t)(i + (long)k) % 26);
    b[SMALL_SIZE - 1] = '\n';
}

static double grep_time(const char *dir)
{
    char *argv[] = {"/bin/grep", "-r", "abc", (char *)dir, NULL};
    return run(argv, NULL);
}

/* grep -r over a segment of small chunks committed a moment before (each
 * file opened, read and closed: LOOKUP, OPEN, READ, RELEASE), then again
 * (names and pages cached: OPEN, RELEASE), vs the same files on tmpfs. */
static void part_small(const struct bc_opts *o)
{
    long n = o->quick ? 2000 : 10000;
    int rounds = o->quick ? 1 : 3;
    char plain[4200], b[SMALL_SIZE];
    double tf[MAX_ROUNDS], tw[MAX_ROUNDS], tt[MAX_ROUNDS], rf[MAX_ROUNDS], rw[MAX_ROUNDS];
    snprintf(plain, sizeof plain, "%s/small", tmp);
    mkdir(plain, 0700);
    for (long i = 0; i < n; i++) {
        char f[4300];
        snprintf(f, sizeof f, "%s/%020ld", plain, i + 1);
        small_bytes(b, i);
        int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, b, sizeof b) != (ssize_t)sizeof b)
            bc_die("create %s: %s", f, strerror(errno));
        close(fd);
    }
    for (int r = 0; r < rounds; r++) {
        char seg[64], dir[4400];
        snprintf(seg, sizeof seg, "%s-small%d", bc_tag(), r);
        struct speculo_writer_options wo = {.capacity = (size_t)n * (SMALL_SIZE + 256) + 16 * MiB};
        speculo_writer *w;
        int rc = speculo_writer_open(seg, &wo, &w);
        if (rc < 0)
            bc_die("writer_open: %s", speculo_strerror(rc));
        for (long i = 0; i < n; i++) {
            small_bytes(b, i);
            if ((rc = speculo_writer_put(w, b, sizeof b, NULL, NULL)) < 0)
                bc_die("put: %s", speculo_strerror(rc));
        }
        speculo_writer_close(w);
        snprintf(dir, sizeof dir, "%s/%s", mnt, seg);
        struct stat st;
        for (int i = 0; i < 200 && stat(dir, &st) < 0; i++)
            usleep(10000);
        tt[r] = grep_time(plain);
        tf[r] = grep_time(dir);
        tw[r] = grep_time(dir);
        rf[r] = tt[r] / tf[r]; /* rates: files per second, speculofs / tmpfs */
        rw[r] = tt[r] / tw[r];
        speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
    }
    for (long i = 0; i < n; i++) {
        char f[4300];
        snprintf(f, sizeof f, "%s/%020ld", plain, i + 1);
        unlink(f);
    }
    rmdir(plain);
    double mf = bc_median(tf, (size_t)rounds), mw = bc_median(tw, (size_t)rounds),
           mt = bc_median(tt, (size_t)rounds);
    char a[32], c[32], what[160];
    bc_row("fs", "grep -r over %ld chunks / files of 4 KiB, first pass (files/s)|%.0f/s|%.0f/s|%.2f",
           n, (double)n / mf * 1e9, (double)n / mt * 1e9, bc_median(rf, (size_t)rounds));
    bc_row("fs", "the same, second pass (files/s)|%.0f/s|%.0f/s|%.2f", (double)n / mw * 1e9,
           (double)n / mt * 1e9, bc_median(rw, (size_t)rounds));
    snprintf(a, sizeof a, "%.0f/s", (double)n / mf * 1e9);
    snprintf(c, sizeof c, "%.0f/s", (double)n / mt * 1e9);
    snprintf(what, sizeof what,
             "4 KiB chunks opened, read, closed per second (grep -r over %ld fresh chunks) vs "
             "tmpfs files",
             n);
    bc_target("7e", what, a, c, bc_median(rf, (size_t)rounds), true, 0.5);
    snprintf(a, sizeof a, "%.0f/s", (double)n / mw * 1e9);
    bc_factor("7e2", "the same, second pass (names and pages cached)", a, c,
              bc_median(rw, (size_t)rounds));
}

/* ---- ls -l ------------------------------------------------------------------------- */

static void part_ls(const struct bc_opts *o)
{
    long n = o->quick ? 5000 : 100000;
    int rounds = 2;
    char seg[64], plain[4200], path[4400];
    snprintf(seg, sizeof seg, "%s-ls", bc_tag());
    snprintf(plain, sizeof plain, "%s/many", tmp);
    struct speculo_writer_options wo = {.capacity = (size_t)n * 128 + 16 * MiB};
    speculo_writer *w;
    int rc = speculo_writer_open(seg, &wo, &w);
    if (rc < 0)
        bc_die("writer_open: %s", speculo_strerror(rc));
    mkdir(plain, 0700);
    char data[16] = "0123456789abcde";
    for (long i = 0; i < n; i++) {
        if ((rc = speculo_writer_put(w, data, sizeof data, NULL, NULL)) < 0)
            bc_die("put: %s", speculo_strerror(rc));
        char f[4300];
        snprintf(f, sizeof f, "%s/%020ld", plain, i + 1);
        int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400);
        if (fd < 0 || write(fd, data, sizeof data) != (ssize_t)sizeof data)
            bc_die("create %s: %s", f, strerror(errno));
        close(fd);
    }
    speculo_writer_close(w);
    snprintf(path, sizeof path, "%s/%s", mnt, seg);
    ls_time(path); /* warm up both: directory caches, the server's table */
    ls_time(plain);
    double fs[MAX_ROUNDS], tf[MAX_ROUNDS], ratio[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        if (r % 2) {
            fs[r] = ls_time(path);
            tf[r] = ls_time(plain);
        } else {
            tf[r] = ls_time(plain);
            fs[r] = ls_time(path);
        }
        ratio[r] = fs[r] / tf[r];
    }
    char a[32], b[32], what[128];
    double mf = bc_median(fs, (size_t)rounds), mt = bc_median(tf, (size_t)rounds);
    bc_row("fs", "ls -l of %ld chunks / files|%s|%s|%.2f", n, bc_fmt_ns(a, sizeof a, mf),
           bc_fmt_ns(b, sizeof b, mt), bc_median(ratio, (size_t)rounds));
    snprintf(what, sizeof what, "ls -l of a %ld-chunk segment via speculofs vs %ld files on tmpfs",
             n, n);
    bc_target("7c", what, bc_fmt_ns(a, sizeof a, mf), bc_fmt_ns(b, sizeof b, mt),
              bc_median(ratio, (size_t)rounds), false, 1.0);
    speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
    for (long i = 0; i < n; i++) {
        char f[4300];
        snprintf(f, sizeof f, "%s/%020ld", plain, i + 1);
        unlink(f);
    }
    rmdir(plain);
}

/* ---- commit to visible ------------------------------------------------------------- */

struct vis_ctl {
    volatile uint32_t go, done;
    volatile int64_t t0;
    volatile int64_t lat;
};

/* Sample i looks for v<i> in dirs[i % 2]. */
static void vis_poller(struct vis_ctl *c, char (*dirs)[4400], long n)
{
    bc_pin(1);
    for (long i = 0; i < n; i++) {
        char path[4500];
        snprintf(path, sizeof path, "%s/v%ld", dirs[i % 2], i);
        bc_spin_until(&c->go, (uint32_t)i + 1);
        struct stat st;
        int64_t limit = bc_mono_ns() + 5000000000;
        while (stat(path, &st) < 0 && bc_mono_ns() < limit)
            ;
        c->lat = bc_mono_ns() - c->t0;
        __atomic_store_n(&c->done, (uint32_t)i + 1, __ATOMIC_RELEASE);
    }
}

/* Samples alternate: even ones commit through the library and stat through
 * the mount (into hf), odd ones create a plain file on tmpfs and stat it
 * (into ht); both sides see the same moments of the machine's load. */
static void vis_run(long n, struct bc_hist *hf, struct bc_hist *ht)
{
    static unsigned serial;
    char seg[64], dirs[2][4400];
    snprintf(seg, sizeof seg, "%s-vis%u", bc_tag(), ++serial);
    speculo_writer *w = NULL;
    int rc = speculo_writer_open(seg, NULL, &w);
    if (rc < 0)
        bc_die("writer_open: %s", speculo_strerror(rc));
    snprintf(dirs[0], sizeof dirs[0], "%s/%s", mnt, seg);
    snprintf(dirs[1], sizeof dirs[1], "%s/%s", tmp, seg);
    mkdir(dirs[1], 0700);
    struct stat st;
    for (int i = 0; i < 500 && stat(dirs[0], &st) < 0; i++)
        usleep(10000);
    struct vis_ctl *c = bc_shared(sizeof *c);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        vis_poller(c, dirs, 2 * n);
        _exit(0);
    }
    bc_pin(0);
    for (long i = 0; i < 2 * n; i++) {
        char name[32];
        snprintf(name, sizeof name, "v%ld", i);
        __atomic_store_n(&c->go, (uint32_t)i + 1, __ATOMIC_RELEASE);
        usleep(2000); /* the poller is now looking for the file */
        c->t0 = bc_mono_ns();
        if (i % 2 == 0) {
            struct speculo_commit_options o = {.name = name};
            if ((rc = speculo_writer_put(w, "x", 1, &o, NULL)) < 0)
                bc_die("put: %s", speculo_strerror(rc));
        } else {
            char f[4500];
            snprintf(f, sizeof f, "%s/%s", dirs[1], name);
            int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd < 0 || write(fd, "x", 1) != 1)
                bc_die("create: %s", strerror(errno));
            close(fd);
        }
        bc_spin_until(&c->done, (uint32_t)i + 1);
        bc_hist_add(i % 2 == 0 ? hf : ht, (uint64_t)(c->lat > 0 ? c->lat : 0));
    }
    bc_wait_child(pid, "stat poller");
    bc_unshared(c, sizeof *c);
    speculo_writer_close(w);
    speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
    for (long i = 1; i < 2 * n; i += 2) {
        char f[4500];
        snprintf(f, sizeof f, "%s/v%ld", dirs[1], i);
        unlink(f);
    }
    rmdir(dirs[1]);
}

static void vis_row(const char *what, long n, const struct bc_hist *h)
{
    char a[32], b[32], c[32], d[32];
    bc_row("fs", "%s, median / p10 / p99 / max of %ld|%s / %s / %s / %s|-|-", what, n,
           bc_fmt_ns(a, sizeof a, bc_hist_quantile(h, 0.5)),
           bc_fmt_ns(b, sizeof b, bc_hist_quantile(h, 0.1)),
           bc_fmt_ns(c, sizeof c, bc_hist_quantile(h, 0.99)), bc_fmt_ns(d, sizeof d, (double)h->max));
}

static void part_visible(const struct bc_opts *o)
{
    long n = o->quick ? 20 : 100;
    struct bc_hist *hf = malloc(sizeof *hf), *ht = malloc(sizeof *ht);
    if (!hf || !ht)
        bc_die("out of memory");
    bc_hist_reset(hf);
    bc_hist_reset(ht);
    vis_run(n, hf, ht);
    char a[32], b[32];
    vis_row("commit (library) to the chunk's file visible to stat()", n, hf);
    vis_row("creat() of a tmpfs file to visible to stat() in another process", n, ht);
    bc_target("7d", "commit to the chunk's file visible to stat() via speculofs vs creat on tmpfs, "
                    "medians of interleaved samples",
              bc_fmt_ns(a, sizeof a, bc_hist_quantile(hf, 0.5)),
              bc_fmt_ns(b, sizeof b, bc_hist_quantile(ht, 0.5)),
              bc_hist_quantile(hf, 0.5) / bc_hist_quantile(ht, 0.5), false, 1.0);
    free(hf);
    free(ht);
}

/* ---- the command-line tool ------------------------------------------------------------- */

static void part_cli(const struct bc_opts *o)
{
    int rounds = o->quick ? 2 : 3;
    long n = o->quick ? 40 : 150;
    char small[4200], copy[4200], segp[64], segc[64];
    snprintf(small, sizeof small, "%s/small", tmp);
    snprintf(copy, sizeof copy, "%s/small.copy", tmp);
    snprintf(segp, sizeof segp, "%s-cliput", bc_tag());
    snprintf(segc, sizeof segc, "%s-clicat", bc_tag());
    char data[1024];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    int fd = open(small, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, sizeof data) != (ssize_t)sizeof data)
        bc_die("create %s: %s", small, strerror(errno));
    close(fd);
    speculo_writer *w;
    int rc = speculo_writer_open(segc, NULL, &w);
    if (rc < 0 || (rc = speculo_writer_put(w, data, sizeof data, NULL, NULL)) < 0)
        bc_die("cat segment: %s", speculo_strerror(rc));
    speculo_writer_close(w);
    char *put[] = {(char *)cli_bin, "put", segp, NULL};
    char *cat[] = {(char *)cli_bin, "cat", segc, "1", NULL};
    char *cp[] = {"/bin/cp", small, copy, NULL};
    double rp[MAX_ROUNDS], rcat[MAX_ROUNDS], rcp[MAX_ROUNDS], fp[MAX_ROUNDS], fc[MAX_ROUNDS];
    run(put, small); /* warm up */
    run(cat, NULL);
    run(cp, NULL);
    for (int r = 0; r < rounds; r++) {
        double t = 0;
        for (long i = 0; i < n; i++)
            t += run(cp, NULL);
        rcp[r] = (double)n / t * 1e9;
        t = 0;
        for (long i = 0; i < n; i++)
            t += run(put, small);
        rp[r] = (double)n / t * 1e9;
        t = 0;
        for (long i = 0; i < n; i++)
            t += run(cat, NULL);
        rcat[r] = (double)n / t * 1e9;
        fp[r] = rp[r] / rcp[r];
        fc[r] = rcat[r] / rcp[r];
    }
    char a[32], b[32];
    double mp = bc_median(rp, (size_t)rounds), mc = bc_median(rcat, (size_t)rounds),
           mcp = bc_median(rcp, (size_t)rounds);
    bc_head("cli", "command (1 KiB, process start included)|per second|per command|vs cp");
    bc_row("cli", "speculo put SEG < file|%.0f|%s|%.2f", mp, bc_fmt_ns(a, sizeof a, 1e9 / mp),
           bc_median(fp, (size_t)rounds));
    bc_row("cli", "speculo cat SEG ID > /dev/null|%.0f|%s|%.2f", mc,
           bc_fmt_ns(a, sizeof a, 1e9 / mc), bc_median(fc, (size_t)rounds));
    bc_row("cli", "cp file /dev/shm/...|%.0f|%s|1.00", mcp, bc_fmt_ns(a, sizeof a, 1e9 / mcp));
    snprintf(a, sizeof a, "%.0f/s", mp);
    snprintf(b, sizeof b, "%.0f/s", mcp);
    bc_factor("8a", "speculo put per second vs cp of the same file to tmpfs", a, b,
              bc_median(fp, (size_t)rounds));
    snprintf(a, sizeof a, "%.0f/s", mc);
    bc_factor("8b", "speculo cat per second vs cp of the same file to tmpfs", a, b,
              bc_median(fc, (size_t)rounds));
    speculo_segment_remove(segp, SPECULO_REMOVE_FORCE);
    speculo_segment_remove(segc, SPECULO_REMOVE_FORCE);
    unlink(small);
    unlink(copy);
}

static void skip_fs(const char *why)
{
    static const char *const rows[] = {
        "7a|cat of a fresh 256 MiB chunk via speculofs vs tmpfs, first read|-|-|-|<= 1.50",
        "7a2|dd bs=1M of a fresh 256 MiB chunk via speculofs vs tmpfs, first read|-|-|-|<= 1.50",
        "7b|cat of a 256 MiB chunk via speculofs vs tmpfs, second read|-|-|-|<= 1.10",
        "7b2|dd bs=1M of a 256 MiB chunk via speculofs vs tmpfs, second read|-|-|-|<= 1.10",
        "7c|ls -l of a 100000-chunk segment via speculofs vs tmpfs|-|-|-|<= 1.00",
        "7d|commit to the chunk's file visible to stat() via speculofs vs creat on tmpfs|-|-|-|<= 1.00",
        "7e|4 KiB chunks opened, read, closed per second (grep -r) vs tmpfs files|-|-|-|>= 0.50",
    };
    bc_note("speculofs: skipped (%s)", why);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        printf("T|%s|skipped\n", rows[i]);
}

int main(int argc, char **argv)
{
    struct bc_opts o;
    bc_parse(argc, argv, &o);
    tmp = getenv("BENCH_TMP");
    sfs_bin = getenv("SPECULOFS");
    cli_bin = getenv("SPECULO_CLI");
    if (!tmp || speculo_segment_dir(segdir, sizeof segdir) < 0)
        bc_die("BENCH_TMP and the segment directory are needed");
    if (bc_want(&o, "fs")) {
        if (!sfs_bin || access(sfs_bin, X_OK) != 0)
            skip_fs("fusefs/speculofs is not built");
        else if (access("/dev/fuse", R_OK | W_OK) != 0)
            skip_fs("/dev/fuse is missing");
        else if (!mount_fs()) {
            unmount_fs();
            skip_fs("the mount failed");
        } else {
            part_read(&o);
            part_sweep(&o);
            part_small(&o);
            part_ls(&o);
            part_visible(&o);
            unmount_fs();
        }
    }
    if (bc_want(&o, "cli")) {
        if (!cli_bin || access(cli_bin, X_OK) != 0)
            bc_note("speculo CLI: skipped (cli/speculo is not built)");
        else
            part_cli(&o);
    }
    return 0;
}
