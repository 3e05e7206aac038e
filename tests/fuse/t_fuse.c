/*
 * Helpers of the speculofs tests; see t_fuse.h.
 */
#include "t_fuse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "t_util.h"

struct tf_mount tf_m;
int tf_bad_exits;

/* Every mountpoint made, for tf_unmount_all(). */
#define TF_MAX_MOUNTS 128
static char tf_mounts[TF_MAX_MOUNTS][PATH_MAX];
static int tf_nmounts;

const char *tf_bin(void)
{
    const char *b = getenv("SPECULOFS");
    return b != NULL && *b ? b : "./fusefs/speculofs";
}

static int in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];

    if (path == NULL)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n + strlen(prog) + 2 < sizeof buf) {
            memcpy(buf, path, n);
            snprintf(buf + n, sizeof buf - n, "/%s", prog);
            if (access(buf, X_OK) == 0)
                return 1;
        }
        path += n + (path[n] == ':');
    }
    return 0;
}

int tf_fuse_usable(char *why, size_t size)
{
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        snprintf(why, size, "cannot open /dev/fuse: %s", strerror(errno));
        return -1;
    }
    close(fd);
    if (!in_path("fusermount3")) {
        snprintf(why, size, "fusermount3 is not in $PATH");
        return -1;
    }
    return 0;
}

void tf_make_dirs(struct tf_mount *m)
{
    const char *base = getenv("T_SPECULO_BASE");
    const char *dir = t_dir_setup();

    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    snprintf(m->mnt, sizeof m->mnt, "%s/mnt-XXXXXX", base != NULL ? base : "/tmp");
    if (mkdtemp(m->mnt) == NULL) {
        fprintf(stderr, "tf_make_dirs: %s: %s\n", m->mnt, strerror(errno));
        abort();
    }
    if (snprintf(m->log, sizeof m->log, "%s.log", m->mnt) >= (int)sizeof m->log)
        abort();
    if (tf_nmounts < TF_MAX_MOUNTS)
        snprintf(tf_mounts[tf_nmounts++], PATH_MAX, "%s", m->mnt);
}

int tf_mount_info(const char *mnt, char *line, size_t size)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char buf[2 * PATH_MAX], point[PATH_MAX];
    int found = 0;

    if (f == NULL)
        return 0;
    while (fgets(buf, sizeof buf, f) != NULL)
        if (sscanf(buf, "%*s %*s %*s %*s %4095s", point) == 1 && strcmp(point, mnt) == 0) {
            found++;
            if (line != NULL)
                snprintf(line, size, "%s", buf);
        }
    fclose(f);
    return found;
}

int tf_is_mounted(const char *mnt)
{
    return tf_mount_info(mnt, NULL, 0) > 0;
}

static void print_log(const struct tf_mount *m)
{
    char buf[4096];
    ssize_t n = tf_read_file(m->log, buf, sizeof buf - 1);

    if (n > 0) {
        buf[n] = '\0';
        fprintf(stderr, "--- %s:\n%s---\n", m->log, buf);
    }
}

/* In the child: exec `speculofs -f ARGS...`, output into the log. */
static void exec_server(const struct tf_mount *m, const char *const *args)
{
    const char *argv[40];
    int n = 0;
    int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

    if (fd < 0 || null < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || dup2(null, 0) < 0)
        _exit(126);
    argv[n++] = tf_bin();
    argv[n++] = "-f";
    while (*args != NULL && n < 39)
        argv[n++] = *args++;
    argv[n] = NULL;
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

int tf_start_args(struct tf_mount *m, const char *const *args)
{
    int64_t start = t_mono_ns();
    pid_t pid = t_fork();

    if (pid < 0)
        return -1;
    if (pid == 0)
        exec_server(m, args);
    m->pid = pid;
    while (!tf_is_mounted(m->mnt)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid || t_ms_since(start) > 3 * T_PATIENCE_MS) {
            fprintf(stderr, "tf_start: speculofs did not mount %s\n", m->mnt);
            print_log(m);
            if (kill(pid, 0) == 0)
                t_kill_wait(pid, SIGKILL);
            m->pid = 0;
            tf_unmount(m->mnt);
            return -1;
        }
        t_sleep_ms(2);
    }
    return 0;
}

int tf_start(struct tf_mount *m, const char *const *extra)
{
    char opt[PATH_MAX + 32];
    const char *args[36];
    int n = 0;

    snprintf(opt, sizeof opt, "dir=%s%s", m->dir, m->stays_mounted ? "" : ",auto_unmount");
    args[n++] = "-o";
    args[n++] = opt;
    while (extra != NULL && *extra != NULL && n < 34)
        args[n++] = *extra++;
    args[n++] = m->mnt;
    args[n] = NULL;
    return tf_start_args(m, args);
}

static int fusermount(const char *flags, const char *mnt)
{
    char *argv[] = {"fusermount3", (char *)flags, (char *)mnt, NULL};
    char out[512];

    return tf_run(argv, out, sizeof out);
}

int tf_unmount(const char *mnt)
{
    if (!tf_is_mounted(mnt))
        return 0;
    if (fusermount("-u", mnt) != 0 && tf_is_mounted(mnt))
        fusermount("-uz", mnt);
    return tf_is_mounted(mnt) ? -1 : 0;
}

/* What each thread of a server that does not end is doing: its state and
 * where it sleeps (and its kernel stack, readable by root). */
static void print_threads(pid_t pid)
{
    char dir[64], path[PATH_MAX], buf[4096];
    struct dirent *de;
    DIR *d;

    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    d = opendir(dir);
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        static const char *const files[] = {"stat", "wchan", "stack"};
        if (de->d_name[0] == '.')
            continue;
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            ssize_t n;
            snprintf(path, sizeof path, "%s/%s/%s", dir, de->d_name, files[i]);
            n = tf_read_file(path, buf, sizeof buf - 1);
            if (n > 0) {
                buf[n] = '\0';
                fprintf(stderr, "  %s: %s%s", path, buf, buf[n - 1] == '\n' ? "" : "\n");
            }
        }
    }
    closedir(d);
}

int tf_stop(struct tf_mount *m)
{
    int64_t t0 = t_mono_ns();
    int rc;

    tf_unmount(m->mnt);
    if (m->pid <= 0)
        return -1;
    while (t_proc_state(m->pid) != 'Z' && t_ms_since(t0) < TF_EXIT_MS)
        t_sleep_ms(2);
    if (t_proc_state(m->pid) != 'Z') {
        fprintf(stderr, "tf_stop: speculofs (pid %d) still running %d ms after the unmount of"
                        " %s (%s):\n",
                (int)m->pid, TF_EXIT_MS, m->mnt,
                tf_is_mounted(m->mnt) ? "still mounted" : "unmounted");
        print_threads(m->pid);
    } else if (t_ms_since(t0) > T_PATIENCE_MS) {
        fprintf(stderr, "tf_stop: speculofs (pid %d) took %" PRId64 " ms to end after the"
                        " unmount\n",
                (int)m->pid, t_ms_since(t0));
    }
    rc = t_wait(m->pid, 0);
    m->pid = 0;
    if (rc != 0)
        print_log(m);
    return rc < 0 ? -1 : rc;
}

void tf_unmount_all(void)
{
    for (int i = 0; i < tf_nmounts; i++)
        if (tf_is_mounted(tf_mounts[i])) {
            fprintf(stderr, "check_fuse: %s was left mounted: unmounting\n", tf_mounts[i]);
            tf_unmount(tf_mounts[i]);
        }
}

void tf_setup(void)
{
    tf_make_dirs(&tf_m);
    ck_assert_msg(tf_start(&tf_m, NULL) == 0, "speculofs did not mount");
}

void tf_setup_dirs(void)
{
    tf_make_dirs(&tf_m);
}

void tf_teardown(void)
{
    int rc = tf_m.pid > 0 ? tf_stop(&tf_m) : tf_unmount(tf_m.mnt);

    if (rc != 0) {
        fprintf(stderr, "tf_teardown: speculofs ended with status %d\n", rc);
        tf_bad_exits++;
    }
    rmdir(tf_m.mnt);
    unlink(tf_m.log);
    t_dir_teardown();
}

const char *tf_path(char *buf, const char *a, const char *b)
{
    int n;

    if (b != NULL)
        n = snprintf(buf, PATH_MAX, "%s/%s/%s", tf_m.mnt, a, b);
    else if (a != NULL)
        n = snprintf(buf, PATH_MAX, "%s/%s", tf_m.mnt, a);
    else
        n = snprintf(buf, PATH_MAX, "%s", tf_m.mnt);
    ck_assert_int_lt(n, PATH_MAX);
    return buf;
}

const char *tf_seg_path(char *buf, const char *seg)
{
    ck_assert_int_lt(snprintf(buf, PATH_MAX, "%s/%s", tf_m.dir, seg), PATH_MAX);
    return buf;
}

const char *tf_idname(char *buf, uint64_t id)
{
    snprintf(buf, 21, "%020" PRIu64, id);
    return buf;
}

speculo_writer *tf_writer(const char *seg, size_t capacity, mode_t mode)
{
    struct speculo_writer_options o = {.capacity = capacity, .mode = mode};
    speculo_writer *w = NULL;
    int rc = speculo_writer_open(seg, &o, &w);

    ck_assert_msg(rc == 0, "speculo_writer_open(%s): %s", seg, speculo_strerror(rc));
    return w;
}

uint64_t tf_put(speculo_writer *w, const char *name, const void *data, size_t size,
                int64_t ttl_ns)
{
    struct speculo_commit_options o = {.name = name, .ttl_ns = ttl_ns};
    uint64_t id = 0;
    int rc = speculo_writer_put(w, data, size, &o, &id);

    ck_assert_msg(rc == 0, "speculo_writer_put: %s", speculo_strerror(rc));
    return id;
}

uint64_t tf_put_str(speculo_writer *w, const char *name, const char *text)
{
    return tf_put(w, name, text, strlen(text), 0);
}

ssize_t tf_read_file(const char *path, void *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0)
        return -errno;
    while (got < size) {
        ssize_t n = read(fd, (char *)buf + got, size - got);
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return (ssize_t)got;
}

int tf_stat_err(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? 0 : -errno;
}

int tf_wait_stat(const char *path, int want, int ms, int64_t *waited_us)
{
    int64_t t0 = t_mono_ns();
    int rc;

    while ((rc = tf_stat_err(path)) != want && t_ms_since(t0) < ms)
        t_sleep_ms(1);
    if (waited_us != NULL)
        *waited_us = (t_mono_ns() - t0) / 1000;
    return rc;
}

int tf_dir_has(const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int found = 0;

    if (d == NULL)
        return -errno;
    while (!found && (de = readdir(d)) != NULL)
        found = strcmp(de->d_name, name) == 0;
    closedir(d);
    return found;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int tf_dir_names(const char *dir, char *buf, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char *names[256];
    size_t n = 0, used = 0;

    if (d == NULL)
        return -errno;
    while ((de = readdir(d)) != NULL && n < 256)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(buf + used, size - used, "%s%s", i ? "\n" : "", names[i]);
        if (k > 0 && (size_t)k < size - used)
            used += (size_t)k;
        free(names[i]);
    }
    return (int)n;
}

int tf_run(char *const argv[], char *out, size_t size)
{
    int p[2];
    size_t got = 0;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    pid = t_fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    for (;;) {
        char tmp[4096];
        ssize_t n = read(p[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && got + 1 < size; i++)
            out[got++] = tmp[i];
    }
    close(p[0]);
    if (size > 0)
        out[got] = '\0';
    return pid < 0 ? -1 : t_wait(pid, 60000);
}

int tf_sh(const char *cmd, char *out, size_t size)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    return tf_run(argv, out, size);
}

TCase *tf_tcase(const char *name, const TTest *test, SFun setup, int timeout_s)
{
    TCase *c = tcase_create(name);

    tcase_add_unchecked_fixture(c, setup, tf_teardown);
    tcase_add_test(c, test);
    tcase_set_timeout(c, timeout_s);
    return c;
}

/* /proc/PID/@what into @buf, NUL-terminated: its length, or <= 0. */
static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t size)
{
    char path[64];
    ssize_t n;

    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    n = tf_read_file(path, buf, size - 1);
    if (n > 0)
        buf[n] = '\0';
    return n;
}

/* Does the command line of @pid have @name as its program's name and
 * @arg as one of its arguments? */
static int runs_with(pid_t pid, const char *name, const char *arg)
{
    char cmd[8192], *end, *a, *slash;
    ssize_t n = read_proc(pid, "cmdline", cmd, sizeof cmd);

    if (n <= 0)
        return 0;
    end = cmd + n;
    slash = strrchr(cmd, '/');
    if (strcmp(slash != NULL ? slash + 1 : cmd, name) != 0)
        return 0;
    for (a = cmd + strlen(cmd) + 1; a < end; a += strlen(a) + 1)
        if (strcmp(a, arg) == 0)
            return 1;
    return 0;
}

pid_t tf_server_of(const char *mnt)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t found = 0;

    ck_assert_ptr_nonnull(d);
    while (!found && (de = readdir(d)) != NULL) {
        pid_t pid = (pid_t)atoi(de->d_name);
        if (pid > 0 && pid != getpid() && tf_alive(pid) && runs_with(pid, "speculofs", mnt))
            found = pid;
    }
    closedir(d);
    return found;
}

int tf_alive(pid_t pid)
{
    char stat[512], *close_paren;

    if (read_proc(pid, "stat", stat, sizeof stat) <= 0)
        return 0;
    close_paren = strrchr(stat, ')');
    return close_paren != NULL && close_paren[1] == ' ' && close_paren[2] != 'Z';
}

int tf_wait_gone(pid_t pid, int ms)
{
    int64_t t0 = t_mono_ns();

    while (tf_alive(pid) && t_ms_since(t0) < ms)
        t_sleep_ms(2);
    return tf_alive(pid) ? -1 : 0;
}

void tf_check_xattr(const char *path, const char *name, const char *want)
{
    char buf[64];
    ssize_t n = getxattr(path, name, buf, sizeof buf - 1);

    if (want == NULL) {
        ck_assert_msg(n == -1 && errno == ENODATA, "%s of %s: %zd (%s), want none", name, path,
                      n, strerror(errno));
        return;
    }
    ck_assert_msg(n >= 0, "%s of %s: %s", name, path, strerror(errno));
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

void tf_expect_erofs(int rc, const char *what)
{
    ck_assert_msg(rc == -1 && errno == EROFS, "%s: rc %d errno %s, want EROFS", what, rc,
                  strerror(errno));
}
