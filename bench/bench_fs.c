/*
 * speculofs and the command-line tool, against the same work on tmpfs.
 *
 *   fs   cat of a 256 MiB chunk through speculofs vs cat of the same bytes in
 *        a tmpfs file, first read (cold) and second read (warm); ls -l of a
 *        segment of many chunks vs ls -l of as many files on tmpfs; time from
 *        the start of a commit to the chunk's file being visible to stat()
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

/* A segment holding one chunk of `size` pseudo-random bytes, and a tmpfs
 * file with the same bytes. */
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
    if ((rc = speculo_writer_commit(w, NULL, NULL)) < 0)
        bc_die("commit: %s", speculo_strerror(rc));
    speculo_writer_close(w);
}

static void part_cat(const struct bc_opts *o)
{
    int rounds = o->quick ? 1 : 5;
    size_t size = 256 * MiB;
    double rc_[MAX_ROUNDS], rw_[MAX_ROUNDS], fc[MAX_ROUNDS], fw[MAX_ROUNDS], tc[MAX_ROUNDS],
        tw[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        char seg[64], plain[4200], path[4400];
        snprintf(seg, sizeof seg, "%s-cat%d", bc_tag(), r);
        snprintf(plain, sizeof plain, "%s/big%d", tmp, r);
        make_big(seg, plain, size);
        snprintf(path, sizeof path, "%s/%s/%020d", mnt, seg, 1);
        struct stat st;
        for (int i = 0; i < 200 && stat(path, &st) < 0; i++)
            usleep(10000);
        if (stat(path, &st) < 0 || (size_t)st.st_size != size)
            bc_die("speculofs: %s not there or wrong size", path);
        tc[r] = cat_time(plain);
        fc[r] = cat_time(path);
        tw[r] = cat_time(plain);
        fw[r] = cat_time(path);
        rc_[r] = fc[r] / tc[r];
        rw_[r] = fw[r] / tw[r];
        speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
        unlink(plain);
    }
    char a[32], b[32], c[32], d[32];
    double mfc = bc_median(fc, (size_t)rounds), mtc = bc_median(tc, (size_t)rounds);
    double mfw = bc_median(fw, (size_t)rounds), mtw = bc_median(tw, (size_t)rounds);
    bc_head("fs", "what|speculofs|tmpfs|speculofs / tmpfs");
    bc_row("fs", "cat of a 256 MiB chunk, first read|%s (%s)|%s (%s)|%.2f",
           bc_fmt_ns(a, sizeof a, mfc), bc_fmt_rate(b, sizeof b, (double)size / mfc * 1e9, "B/s"),
           bc_fmt_ns(c, sizeof c, mtc), bc_fmt_rate(d, sizeof d, (double)size / mtc * 1e9, "B/s"),
           bc_median(rc_, (size_t)rounds));
    bc_row("fs", "cat of a 256 MiB chunk, second read|%s (%s)|%s (%s)|%.2f",
           bc_fmt_ns(a, sizeof a, mfw), bc_fmt_rate(b, sizeof b, (double)size / mfw * 1e9, "B/s"),
           bc_fmt_ns(c, sizeof c, mtw), bc_fmt_rate(d, sizeof d, (double)size / mtw * 1e9, "B/s"),
           bc_median(rw_, (size_t)rounds));
    bc_target("7a", "cat of a 256 MiB chunk via speculofs vs tmpfs, cold (first read)",
              bc_fmt_ns(a, sizeof a, mfc), bc_fmt_ns(b, sizeof b, mtc),
              bc_median(rc_, (size_t)rounds), false, 2.0);
    bc_target("7b", "cat of a 256 MiB chunk via speculofs vs tmpfs, warm (second read)",
              bc_fmt_ns(a, sizeof a, mfw), bc_fmt_ns(b, sizeof b, mtw),
              bc_median(rw_, (size_t)rounds), false, 1.2);
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
              bc_median(ratio, (size_t)rounds), false, 3.0);
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

static void vis_poller(struct vis_ctl *c, const char *dir, long n)
{
    bc_pin(1);
    for (long i = 0; i < n; i++) {
        char path[4500];
        snprintf(path, sizeof path, "%s/v%ld", dir, i);
        bc_spin_until(&c->go, (uint32_t)i + 1);
        struct stat st;
        int64_t limit = bc_mono_ns() + 5000000000;
        while (stat(path, &st) < 0 && bc_mono_ns() < limit)
            ;
        c->lat = bc_mono_ns() - c->t0;
        __atomic_store_n(&c->done, (uint32_t)i + 1, __ATOMIC_RELEASE);
    }
}

/* fs: commit through the library, stat through the mount; else a plain
 * file created on tmpfs, stat on it. */
static void vis_run(bool fs, long n, struct bc_hist *h)
{
    static unsigned serial;
    char seg[64], dir[4400];
    snprintf(seg, sizeof seg, "%s-vis%u", bc_tag(), ++serial);
    speculo_writer *w = NULL;
    if (fs) {
        int rc = speculo_writer_open(seg, NULL, &w);
        if (rc < 0)
            bc_die("writer_open: %s", speculo_strerror(rc));
        snprintf(dir, sizeof dir, "%s/%s", mnt, seg);
        struct stat st;
        for (int i = 0; i < 500 && stat(dir, &st) < 0; i++)
            usleep(10000);
    } else {
        snprintf(dir, sizeof dir, "%s/%s", tmp, seg);
        mkdir(dir, 0700);
    }
    struct vis_ctl *c = bc_shared(sizeof *c);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        vis_poller(c, dir, n);
        _exit(0);
    }
    bc_pin(0);
    for (long i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "v%ld", i);
        __atomic_store_n(&c->go, (uint32_t)i + 1, __ATOMIC_RELEASE);
        usleep(2000); /* the poller is now looking for the file */
        c->t0 = bc_mono_ns();
        if (fs) {
            struct speculo_commit_options o = {.name = name};
            int rc = speculo_writer_put(w, "x", 1, &o, NULL);
            if (rc < 0)
                bc_die("put: %s", speculo_strerror(rc));
        } else {
            char f[4500];
            snprintf(f, sizeof f, "%s/%s", dir, name);
            int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd < 0 || write(fd, "x", 1) != 1)
                bc_die("create: %s", strerror(errno));
            close(fd);
        }
        bc_spin_until(&c->done, (uint32_t)i + 1);
        bc_hist_add(h, (uint64_t)(c->lat > 0 ? c->lat : 0));
    }
    bc_wait_child(pid, "stat poller");
    bc_unshared(c, sizeof *c);
    if (fs) {
        speculo_writer_close(w);
        speculo_segment_remove(seg, SPECULO_REMOVE_FORCE);
    } else {
        for (long i = 0; i < n; i++) {
            char f[4500];
            snprintf(f, sizeof f, "%s/v%ld", dir, i);
            unlink(f);
        }
        rmdir(dir);
    }
}

static void part_visible(const struct bc_opts *o)
{
    long n = o->quick ? 20 : 100;
    struct bc_hist *hf = malloc(sizeof *hf), *ht = malloc(sizeof *ht);
    if (!hf || !ht)
        bc_die("out of memory");
    bc_hist_reset(hf);
    bc_hist_reset(ht);
    vis_run(true, n, hf);
    vis_run(false, n, ht);
    char a[32], b[32], c[32];
    bc_row("fs", "commit (library) to the chunk's file visible to stat(), median / p99 / max "
                 "of %ld|%s / %s / %s|-|-",
           n, bc_fmt_ns(a, sizeof a, bc_hist_quantile(hf, 0.5)),
           bc_fmt_ns(b, sizeof b, bc_hist_quantile(hf, 0.99)),
           bc_fmt_ns(c, sizeof c, (double)hf->max));
    bc_row("fs", "creat() of a tmpfs file to visible to stat() in another process, median|-|%s|-",
           bc_fmt_ns(a, sizeof a, bc_hist_quantile(ht, 0.5)));
    bc_factor("7d", "commit to the chunk's file visible to stat() via speculofs, median (vs "
                    "creat on tmpfs)",
              bc_fmt_ns(a, sizeof a, bc_hist_quantile(hf, 0.5)),
              bc_fmt_ns(b, sizeof b, bc_hist_quantile(ht, 0.5)),
              bc_hist_quantile(hf, 0.5) / bc_hist_quantile(ht, 0.5));
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
    bc_note("speculofs: skipped (%s)", why);
    printf("T|7a|cat of a 256 MiB chunk via speculofs vs tmpfs, cold|-|-|-|<= 2.00|skipped\n");
    printf("T|7b|cat of a 256 MiB chunk via speculofs vs tmpfs, warm|-|-|-|<= 1.20|skipped\n");
    printf("T|7c|ls -l of a 100000-chunk segment via speculofs vs tmpfs|-|-|-|<= 3.00|skipped\n");
    printf("T|7d|commit to the chunk's file visible to stat() via speculofs|-|-|-|-|skipped\n");
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
            part_cat(&o);
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
