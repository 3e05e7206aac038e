/*
 * Running the CLI as a child process, for the end-to-end tests.
 *
 * Children get PR_SET_PDEATHSIG: if a test fails and its process exits, a
 * `tail -f` it started dies with it instead of lingering.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t_proc.h"

char tc_cli[TC_PATH];
char tc_srcdir[TC_PATH];
char tc_tmp[TC_PATH];
char tc_segdir[TC_PATH + 16];

#define MAX_ARGS 32
#define RUN_TIMEOUT_MS 60000

/* Milliseconds on the monotonic clock, for deadlines. */
static int64_t now_ms(void)
{
    return t_mono_ns() / 1000000;
}

/* Collect a va_list of strings into argv, after argv[0] = the CLI. */
static void build_argv(char **argv, va_list ap)
{
    int n = 0;
    argv[n++] = tc_cli;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        ck_assert_int_lt(n, MAX_ARGS - 1);
        argv[n++] = (char *)a;
    }
    argv[n] = NULL;
}

/* In the child: stdin/stdout/stderr from the given fds, then exec. */
static void exec_child(int in, int out, int err, char *const argv[])
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_DFL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || (err != 2 && dup2(err, 2) < 0))
        _exit(126);
    for (int fd = 3; fd < 64; fd++)
        close(fd);
    execv(argv[0], argv);
    _exit(127);
}

struct buf {
    char *p;
    size_t len, cap;
};

/* Append what fd has to b; false at EOF (or error). */
static bool drain(int fd, struct buf *b)
{
    if (b->cap - b->len < 65536) {
        b->cap = b->cap ? b->cap * 2 : 131072;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    ssize_t n = read(fd, b->p + b->len, b->cap - b->len - 1);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    b->len += (size_t)n;
    return true;
}

/* Feed stdin and collect stdout and stderr at once, so that a child that
 * writes a lot before reading everything cannot deadlock with us. */
static void pump(int in, const char *data, size_t len, int out, int err, struct buf *bo,
                 struct buf *be, pid_t pid)
{
    size_t off = 0;
    int64_t deadline = now_ms() + RUN_TIMEOUT_MS;
    if (in >= 0 && len == 0) {
        close(in);
        in = -1;
    }
    while (out >= 0 || err >= 0) {
        struct pollfd p[3] = {{in, POLLOUT, 0}, {out, POLLIN, 0}, {err, POLLIN, 0}};
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            kill(pid, SIGKILL);
            ck_abort_msg("%s did not end within %d ms", tc_cli, RUN_TIMEOUT_MS);
        }
        if (poll(p, 3, left) < 0)
            continue;
        if (in >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in, data + off, len - off < 1 << 20 ? len - off : 1 << 20);
            if (n > 0)
                off += (size_t)n;
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                off = len; /* the child closed its stdin: stop feeding */
            if (off == len) {
                close(in);
                in = -1;
            }
        }
        if (out >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(out, bo)) {
            close(out);
            out = -1;
        }
        if (err >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(err, be)) {
            close(err);
            err = -1;
        }
    }
    if (in >= 0)
        close(in);
}

static void finish(struct tc_result *res, struct buf *bo, struct buf *be)
{
    for (struct buf *b = bo; b; b = b == bo ? be : NULL) {
        if (!b->p)
            b->p = malloc(1);
        ck_assert_ptr_nonnull(b->p);
        b->p[b->len] = '\0';
    }
    res->out = bo->p;
    res->out_len = bo->len;
    res->err = be->p;
    res->err_len = be->len;
}

/* Run argv with stdin from in_fd (>= 0) or from the buffer. */
static void run(struct tc_result *res, char *const argv[], int in_fd, const void *in,
                size_t in_len)
{
    int pin[2] = {-1, -1}, pout[2], perr[2];
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(devnull, 0);
    if (in)
        ck_assert_int_eq(pipe2(pin, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(pout, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(perr, O_CLOEXEC), 0);
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        exec_child(in ? pin[0] : in_fd >= 0 ? in_fd : devnull, pout[1], perr[1], argv);
    close(devnull);
    close(pout[1]);
    close(perr[1]);
    if (in) {
        close(pin[0]);
        fcntl(pin[1], F_SETFL, O_NONBLOCK);
    }
    struct buf bo = {NULL, 0, 0}, be = {NULL, 0, 0};
    pump(in ? pin[1] : -1, in, in_len, pout[0], perr[0], &bo, &be, pid);
    while (waitpid(pid, &res->status, 0) < 0 && errno == EINTR)
        ;
    finish(res, &bo, &be);
}

void tc_speculo(struct tc_result *res, const void *in, size_t in_len, ...)
{
    char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, in_len);
    build_argv(argv, ap);
    va_end(ap);
    run(res, argv, -1, in ? in : "", in ? in_len : 0);
}

void tc_speculo_file(struct tc_result *res, const char *in_path, ...)
{
    char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, in_path);
    build_argv(argv, ap);
    va_end(ap);
    int fd = open(in_path, O_RDONLY | O_CLOEXEC);
    ck_assert_msg(fd >= 0, "open %s: %s", in_path, strerror(errno));
    run(res, argv, fd, NULL, 0);
    close(fd);
}

void tc_run_argv(struct tc_result *res, char *const argv[])
{
    run(res, argv, -1, NULL, 0);
}

void tc_result_free(struct tc_result *res)
{
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof *res);
}

int tc_exit(const struct tc_result *res)
{
    if (WIFEXITED(res->status))
        return WEXITSTATUS(res->status);
    return WIFSIGNALED(res->status) ? -1 - WTERMSIG(res->status) : -1000;
}

void tc_spawn(struct tc_child *c, ...)
{
    char *argv[MAX_ARGS];
    va_list ap;
    va_start(ap, c);
    build_argv(argv, ap);
    va_end(ap);
    int pout[2];
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(devnull, 0);
    ck_assert_int_eq(pipe2(pout, O_CLOEXEC), 0);
    signal(SIGPIPE, SIG_IGN);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        exec_child(devnull, pout[1], 2, argv);
    close(devnull);
    close(pout[1]);
    c->pid = pid;
    c->out = pout[0];
}

size_t tc_read(struct tc_child *c, char *buf, size_t want, int timeout_ms)
{
    size_t got = 0;
    int64_t deadline = now_ms() + timeout_ms;
    while (got < want) {
        int left = (int)(deadline - now_ms());
        struct pollfd p = {c->out, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(c->out, buf + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

bool tc_wait(struct tc_child *c, int timeout_ms, int *status)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        pid_t p = waitpid(c->pid, status, WNOHANG);
        if (p == c->pid) {
            c->pid = -1;
            return true;
        }
        if (now_ms() >= deadline)
            return false;
        t_sleep_ms(10);
    }
}

void tc_kill(struct tc_child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        c->pid = -1;
    }
    if (c->out >= 0)
        close(c->out);
    c->out = -1;
}

struct speculo_segment_info tc_info(const char *segment)
{
    speculo_reader *r;
    struct speculo_segment_info info;
    ck_assert_int_eq(speculo_reader_open(segment, &r), 0);
    ck_assert_int_eq(speculo_reader_info(r, &info), 0);
    speculo_reader_close(r);
    return info;
}

uint64_t tc_put(const char *segment, const char *name, const char *data)
{
    struct tc_result r;
    if (name)
        tc_speculo(&r, data, strlen(data), "put", segment, name, NULL);
    else
        tc_speculo(&r, data, strlen(data), "put", segment, NULL);
    ck_assert_msg(tc_exit(&r) == 0, "put %s failed: %s", segment, r.err);
    char *end;
    unsigned long long id = strtoull(r.out, &end, 10);
    ck_assert_msg(id > 0 && !strcmp(end, "\n"), "put printed '%s'", r.out);
    tc_result_free(&r);
    return id;
}

void tc_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        ck_assert_int_gt(n, 0);
        p += n;
        len -= (size_t)n;
    }
    ck_assert_int_eq(close(fd), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Segments go to /dev/shm (tmpfs, like the default directory) when it is
 * there, so that the 100+ MiB chunks do not go to a disk. */
void tc_setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(tc_tmp, sizeof tc_tmp, "%s/speculo-cli-test.XXXXXX", base);
    ck_assert_ptr_nonnull(mkdtemp(tc_tmp));
    snprintf(tc_segdir, sizeof tc_segdir, "%s/segs", tc_tmp);
    setenv("SPECULO_DIR", tc_segdir, 1);
}

void tc_teardown(void)
{
    /* a test that put a small tmpfs on the segment directory (in a mount
     * namespace of its own) leaves it mounted: its mount point could not
     * be removed, nor the directory above it */
    (void)umount2(tc_segdir, MNT_DETACH);
    if (tc_tmp[0])
        nftw(tc_tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    tc_tmp[0] = '\0';
}
