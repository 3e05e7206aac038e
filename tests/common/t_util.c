/*
 * Generic test helpers; see t_util.h.
 */
#include "t_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define T_BASE_ENV "T_SPECULO_BASE"

/* ---- temporary directories ---------------------------------------- */

static char t_base_path[PATH_MAX];
static pid_t t_base_owner;
static char t_dir_path[PATH_MAX];
static pid_t t_dir_owner;
static int t_dir_atexit_done;

int t_base_init(const char *tag)
{
    char tmpl[PATH_MAX];
    int n = snprintf(tmpl, sizeof(tmpl), "/dev/shm/speculo-%s-XXXXXX", tag ? tag : "test");
    if (n < 0 || (size_t)n >= sizeof(tmpl))
        return -ENAMETOOLONG;
    if (!mkdtemp(tmpl))
        return -errno;
    if (chmod(tmpl, 0711) < 0) {
        int e = errno;
        rmdir(tmpl);
        return -e;
    }
    memcpy(t_base_path, tmpl, strlen(tmpl) + 1);
    t_base_owner = getpid();
    setenv(T_BASE_ENV, t_base_path, 1);
    return 0;
}

void t_base_cleanup(void)
{
    if (t_base_path[0] && t_base_owner == getpid()) {
        t_rm_rf(t_base_path);
        t_base_path[0] = '\0';
        unsetenv(T_BASE_ENV);
    }
}

static void t_dir_atexit(void)
{
    t_dir_teardown();
}

const char *t_private_dir(const char *tag)
{
    char tmpl[PATH_MAX];
    const char *base = getenv(T_BASE_ENV);
    int n;

    if (base && *base)
        n = snprintf(tmpl, sizeof(tmpl), "%s/%s-XXXXXX", base, tag);
    else
        n = snprintf(tmpl, sizeof(tmpl), "/dev/shm/speculo-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= sizeof(tmpl)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    if (!mkdtemp(tmpl))
        return NULL;
    if (chmod(tmpl, 0700) < 0) {
        int e = errno;
        rmdir(tmpl);
        errno = e;
        return NULL;
    }
    memcpy(t_dir_path, tmpl, strlen(tmpl) + 1);
    t_dir_owner = getpid();
    setenv("SPECULO_DIR", t_dir_path, 1);
    if (!t_dir_atexit_done) {
        atexit(t_dir_atexit);
        t_dir_atexit_done = 1;
    }
    return t_dir_path;
}

const char *t_dir_setup(void)
{
    const char *dir = t_private_dir("t");

    if (!dir) {
        fprintf(stderr, "t_dir_setup: %s\n", strerror(errno));
        abort();
    }
    return dir;
}

void t_dir_teardown(void)
{
    if (t_dir_path[0] && t_dir_owner == getpid()) {
        t_rm_rf(t_dir_path);
        t_dir_path[0] = '\0';
    }
}

const char *t_dir(void)
{
    return t_dir_path[0] ? t_dir_path : NULL;
}

int t_path(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", t_dir_path, name);
    if (n < 0 || (size_t)n >= size)
        return -ENAMETOOLONG;
    return 0;
}

static int t_rm_at(int at, const char *name);

/* Remove what directory @fd holds (it takes @fd over). */
static int t_rm_entries(int fd)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        int r = t_rm_at(dirfd(d), de->d_name);
        if (r < 0 && rc == 0)
            rc = r;
    }
    closedir(d);
    return rc;
}

static int t_open_dir_at(int at, const char *name)
{
    /* root may remove anything, but make sure a 0500 test dir can be
     * emptied when running unprivileged. */
    fchmodat(at, name, 0700, 0);
    return openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* A file goes with one unlink (the fuzzers empty their directory once
 * per input); a directory, after what it holds. */
static int t_rm_at(int at, const char *name)
{
    if (unlinkat(at, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR)
        return -errno;
    int fd = t_open_dir_at(at, name);
    if (fd < 0)
        return -errno;
    int rc = t_rm_entries(fd);
    if (unlinkat(at, name, AT_REMOVEDIR) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

int t_rm_rf(const char *path)
{
    return t_rm_at(AT_FDCWD, path);
}

int t_empty_dir(const char *path)
{
    int fd = t_open_dir_at(AT_FDCWD, path);
    return fd < 0 ? -errno : t_rm_entries(fd);
}

int t_dir_count(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---- processes ---------------------------------------------------- */

#define T_MAX_CHILDREN 64
static pid_t t_children[T_MAX_CHILDREN];
static pid_t t_children_owner;
static int t_children_atexit_done;

static void t_forget_child(pid_t pid)
{
    for (int i = 0; i < T_MAX_CHILDREN; i++)
        if (t_children[i] == pid)
            t_children[i] = 0;
}

static void t_children_atexit(void)
{
    if (t_children_owner != getpid())
        return;
    for (int i = 0; i < T_MAX_CHILDREN; i++) {
        if (t_children[i] > 0) {
            kill(t_children[i], SIGKILL);
            waitpid(t_children[i], NULL, 0);
            t_children[i] = 0;
        }
    }
}

pid_t t_fork(void)
{
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(T_CHILD_FAILED);
        /* The child has no children of its own yet. */
        memset(t_children, 0, sizeof(t_children));
        /* The parent's temporary directory is not ours to remove. */
        return 0;
    }
    if (pid > 0) {
        if (t_children_owner != parent) {
            memset(t_children, 0, sizeof(t_children));
            t_children_owner = parent;
        }
        for (int i = 0; i < T_MAX_CHILDREN; i++) {
            if (t_children[i] == 0) {
                t_children[i] = pid;
                break;
            }
        }
        if (!t_children_atexit_done) {
            atexit(t_children_atexit);
            t_children_atexit_done = 1;
        }
    }
    return pid;
}

static int t_decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

int t_wait(pid_t pid, int timeout_ms)
{
    int64_t start = t_mono_ns();
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            t_forget_child(pid);
            return t_decode_status(status);
        }
        if (r < 0 && errno != EINTR)
            return -errno;
        if (timeout_ms >= 0 && t_ms_since(start) >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            t_forget_child(pid);
            return -ETIMEDOUT;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int t_kill_wait(pid_t pid, int sig)
{
    int status;
    if (kill(pid, sig) < 0)
        return -errno;
    for (;;) {
        pid_t r = waitpid(pid, &status, 0);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
    t_forget_child(pid);
    return t_decode_status(status);
}

/* The fields of /proc/PID/stat after the command name into buf; a pointer
 * to field 3 (the state), or NULL. The name is in parentheses and may hold
 * spaces: the fields are counted from the last ')'. */
/* The fields after the command name in a /proc stat file (@path). */
static const char *stat_fields(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

static const char *t_proc_stat(pid_t pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    return stat_fields(path, buf, size);
}

uint64_t t_proc_start_ticks(pid_t pid)
{
    char buf[4096];
    const char *p = t_proc_stat(pid, buf, sizeof(buf));
    if (!p)
        return 0;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ')
            p++;
        if (field == 22)
            return strtoull(p, NULL, 10);
        while (*p && *p != ' ')
            p++;
    }
    return 0;
}

int t_proc_state(pid_t pid)
{
    char buf[4096];
    const char *p = t_proc_stat(pid, buf, sizeof(buf));
    return p && *p ? (unsigned char)*p : -ENOENT;
}

long t_proc_sleeps(pid_t pid)
{
    char path[64], line[256];
    long n = -ENOENT;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

int t_await_asleep(pid_t pid, int timeout_ms)
{
    return t_await_asleep_again(pid, -1, timeout_ms);
}

/* Wait until @ready(pid, arg) holds (0), the process is gone (-ESRCH) or
 * @timeout_ms passed (-ETIMEDOUT). Nothing announces the states looked for
 * (asleep, idle), so between looks this waits on the process's pidfd for
 * up to a millisecond: its end wakes the wait at once, nothing else does. */
static int await_proc(pid_t pid, int timeout_ms, bool (*ready)(pid_t, const void *),
                      const void *arg)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int64_t start = t_mono_ns();
    int rc;
    for (;;) {
        int state = t_proc_state(pid);
        if (state < 0 || state == 'Z' || state == 'X') {
            rc = -ESRCH;
            break;
        }
        if (ready(pid, arg)) {
            rc = 0;
            break;
        }
        if (t_ms_since(start) >= timeout_ms) {
            rc = -ETIMEDOUT;
            break;
        }
        if (pidfd >= 0)
            (void)poll(&(struct pollfd){.fd = pidfd, .events = POLLIN}, 1, 1);
        else
            t_sleep_ms(1); /* a kernel before 5.3: no pidfd */
    }
    if (pidfd >= 0)
        close(pidfd);
    return rc;
}

/* Asleep, and (sleeps >= 0) after more than `sleeps` sleeps. */
static bool asleep_again(pid_t pid, const void *arg)
{
    long sleeps = *(const long *)arg;
    return t_proc_state(pid) == 'S' && (sleeps < 0 || t_proc_sleeps(pid) > sleeps) &&
           t_proc_state(pid) == 'S';
}

int t_await_asleep_again(pid_t pid, long sleeps, int timeout_ms)
{
    return await_proc(pid, timeout_ms, asleep_again, &sleeps);
}

/* A blocking system call (@nr, arguments @a) that only an event ends: no
 * timeout that would wake the thread by itself. */
static bool untimed_call(long nr, const unsigned long long a[6])
{
    switch (nr) {
    case SYS_read:
        return true;
#ifdef SYS_poll
    case SYS_poll:
        return (int)a[2] < 0;
#endif
    case SYS_ppoll:
        return a[2] == 0;
#ifdef SYS_epoll_wait
    case SYS_epoll_wait:
#endif
    case SYS_epoll_pwait:
        return (int)a[3] < 0;
    case SYS_futex:
#ifdef SYS_futex_waitv
    case SYS_futex_waitv:
#endif
        return a[3] == 0;
    default:
        return false;
    }
}

/* Thread @tid of @pid is asleep in a call without a timeout. */
static bool thread_idle(pid_t pid, int tid)
{
    char path[96], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, tid);
    const char *st = stat_fields(path, buf, sizeof(buf));
    if (!st || *st != 'S')
        return false;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    long nr;
    unsigned long long a[6];
    int n = fscanf(f, "%ld %llx %llx %llx %llx %llx %llx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4],
                   &a[5]);
    fclose(f);
    return n == 7 && untimed_call(nr, a);
}

/* Every thread of the process asleep in a call without a timeout. */
static bool all_idle(pid_t pid, const void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return false;
    bool idle = true, any = false;
    struct dirent *e;
    while (idle && (e = readdir(d)) != NULL) {
        int tid = atoi(e->d_name);
        if (tid <= 0)
            continue; /* . and .. */
        any = true;
        idle = thread_idle(pid, tid);
    }
    closedir(d);
    return any && idle;
}

int t_await_idle(pid_t pid, int timeout_ms)
{
    return await_proc(pid, timeout_ms, all_idle, NULL);
}

int t_become(uid_t uid, gid_t gid)
{
    if (setgroups(0, NULL) < 0)
        return -errno;
    if (setresgid(gid, gid, gid) < 0)
        return -errno;
    if (setresuid(uid, uid, uid) < 0)
        return -errno;
    /* setuid clears the parent-death signal: ask again. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    return 0;
}

int t_sync_init(struct t_sync *s)
{
    if (pipe2(s->fd, O_CLOEXEC) < 0)
        return -errno;
    return 0;
}

int t_sync_post(struct t_sync *s, unsigned char byte)
{
    for (;;) {
        ssize_t n = write(s->fd[1], &byte, 1);
        if (n == 1)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

int t_sync_wait(struct t_sync *s, int timeout_ms)
{
    int64_t start = t_mono_ns();
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            int64_t spent = t_ms_since(start);
            if (spent >= timeout_ms)
                return -ETIMEDOUT;
            left = (int)(timeout_ms - spent);
        }
        struct pollfd p = {.fd = s->fd[0], .events = POLLIN};
        int r = poll(&p, 1, left);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            continue;
        unsigned char b;
        ssize_t n = read(s->fd[0], &b, 1);
        if (n == 1)
            return b;
        if (n == 0)
            return -EPIPE;
        if (errno != EINTR)
            return -errno;
    }
}

void t_sync_close(struct t_sync *s)
{
    if (s->fd[0] >= 0)
        close(s->fd[0]);
    if (s->fd[1] >= 0)
        close(s->fd[1]);
    s->fd[0] = s->fd[1] = -1;
}

void *t_shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void t_shared_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

/* ---- time --------------------------------------------------------- */

static int64_t t_clock(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t t_mono_ns(void)
{
    return t_clock(CLOCK_MONOTONIC);
}

int64_t t_real_ns(void)
{
    return t_clock(CLOCK_REALTIME);
}

int64_t t_ms_since(int64_t mono_ns)
{
    return (t_mono_ns() - mono_ns) / 1000000;
}

void t_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void t_sleep_until_real(int64_t real_ns)
{
    /* clock_nanosleep() on CLOCK_REALTIME may wake early when the clock is
     * set back: the loop checks what it waited for */
    while (t_real_ns() <= real_ns) {
        int64_t at = real_ns + 1;
        struct timespec ts = {at / 1000000000, (long)(at % 1000000000)};
        clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL);
    }
}

int64_t t_expired_by(int64_t ttl_ns)
{
    return t_real_ns() + ttl_ns;
}

int64_t t_ttl_ns(int64_t base_ns, int attempt)
{
    return base_ns << attempt;
}

int64_t t_cpu_ns(void)
{
    return t_clock(CLOCK_PROCESS_CPUTIME_ID);
}

/* ---- misc --------------------------------------------------------- */

int t_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -errno;
    int self = dirfd(d), n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (atoi(de->d_name) == self)
            continue;
        n++;
    }
    closedir(d);
    return n;
}

static uint64_t t_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

void t_fill(void *p, size_t n, uint64_t seed)
{
    unsigned char *b = p;
    uint64_t s = t_mix(seed + 1);
    for (size_t i = 0; i < n; i++) {
        if ((i & 7) == 0)
            s = t_mix(s + i);
        b[i] = (unsigned char)(s >> ((i & 7) * 8));
    }
}

size_t t_check_fill(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t s = t_mix(seed + 1);
    for (size_t i = 0; i < n; i++) {
        if ((i & 7) == 0)
            s = t_mix(s + i);
        if (b[i] != (unsigned char)(s >> ((i & 7) * 8)))
            return i + 1;
    }
    return 0;
}
