/*
 * Generic test helpers (t_ prefix), shared by every test program: temporary
 * segment directories, child processes with timeouts, clocks, file
 * descriptor counting, byte patterns. No dependency on the Check framework:
 * functions report failure through their return value, and code running in
 * a forked child reports through its exit status (T_CHILD_ASSERT).
 */
#ifndef T_UTIL_H
#define T_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

/* Exit status of a child whose check failed (the message is on stderr). */
#define T_CHILD_FAILED 99

/* In a forked child: on a false condition print where and why, and leave
 * with _exit(T_CHILD_FAILED) (no atexit handlers: they belong to the
 * parent). */
#define T_CHILD_ASSERT(cond)                                                              \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: child %d: check failed: %s\n", __FILE__, __LINE__,    \
                    (int)getpid(), #cond);                                                \
            _exit(T_CHILD_FAILED);                                                        \
        }                                                                                 \
    } while (0)

/* The same for an equality of integers, printing both values. */
#define T_CHILD_EQ(a, b)                                                                  \
    do {                                                                                  \
        long long t_a_ = (long long)(a), t_b_ = (long long)(b);                           \
        if (t_a_ != t_b_) {                                                               \
            fprintf(stderr, "%s:%d: child %d: check failed: %s == %s (%lld != %lld)\n",   \
                    __FILE__, __LINE__, (int)getpid(), #a, #b, t_a_, t_b_);               \
            _exit(T_CHILD_FAILED);                                                        \
        }                                                                                 \
    } while (0)

/* ---- temporary directories ---------------------------------------- */

/* Make a base directory (mkdtemp under /dev/shm, mode 0711 so that a test
 * running as another uid can traverse it) under which t_dir_setup() makes
 * its directories, and export it to children as T_SPECULO_BASE. Call it
 * once from main() before forking tests; t_base_cleanup() removes it with
 * everything left in it (tests killed by a timeout leave their dirs).
 * Returns 0 or a negative errno. */
int t_base_init(const char *tag);
void t_base_cleanup(void);

/* Make a fresh directory (mode 0700) for one test, set SPECULO_DIR to it
 * and return its path. The directory is removed by t_dir_teardown() or at
 * exit of the process that made it. Aborts the process on failure. */
const char *t_dir_setup(void);
/* The same for a program of its own (a fuzzer, a stress driver): the
 * directory is named after @tag (/dev/shm/speculo-TAG-XXXXXX, or
 * TAG-XXXXXX in T_SPECULO_BASE), and NULL with errno set on failure. */
const char *t_private_dir(const char *tag);
void t_dir_teardown(void);
/* The path made by t_dir_setup() (or NULL). */
const char *t_dir(void);
/* Write "t_dir()/name" into buf. Returns 0 or -ENAMETOOLONG. */
int t_path(char *buf, size_t size, const char *name);
/* Remove a file or directory tree (no symlink is followed). 0 or -errno. */
int t_rm_rf(const char *path);
/* Remove everything in a directory, keeping it. 0 or -errno. */
int t_empty_dir(const char *path);
/* Number of entries in a directory, "." and ".." not counted; -errno. */
int t_dir_count(const char *path);

/* ---- processes ---------------------------------------------------- */

/* fork(); in the child, ask to be killed when the parent dies. The parent
 * remembers the pid: children still running when the parent exits are
 * killed (SIGKILL) and reaped. Returns as fork(). */
pid_t t_fork(void);
/* Wait for a child at most timeout_ms (negative: for ever). Returns its
 * exit status (0-255), 128 + signal number when killed by a signal, or
 * -ETIMEDOUT after killing it with SIGKILL (and reaping it). */
int t_wait(pid_t pid, int timeout_ms);
/* Kill a child with sig and reap it; returns as t_wait(). */
int t_kill_wait(pid_t pid, int sig);
/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/PID/stat), 0 if unknown. */
uint64_t t_proc_start_ticks(pid_t pid);
/* State of a process (field 3 of /proc/PID/stat: 'R', 'S', 'D', 'Z', ...;
 * for a multi-threaded process, its main thread's), or -ENOENT. */
int t_proc_state(pid_t pid);
/* Wait until the process sleeps ('S': blocked in a wait, a read, a sleep),
 * at most timeout_ms. 0, -ETIMEDOUT, or -ESRCH when it is gone. A test
 * uses it to know that a child it just told to block has blocked, when
 * the child itself cannot say so. */
int t_await_asleep(pid_t pid, int timeout_ms);
/* Wait until every thread of the process sleeps in a call that has no
 * timeout (a read, poll(2) with -1, a futex wait without one): nothing but
 * an event can wake it, so it uses no CPU however long it stays idle,
 * whereas a process that polls on a timer or spins never gets there. 0,
 * -ETIMEDOUT, or -ESRCH when it is gone. */
int t_await_idle(pid_t pid, int timeout_ms);
/* How many times the process (its main thread) went to sleep (voluntary
 * context switches), or -errno. */
long t_proc_sleeps(pid_t pid);
/* Wait until the process woke up and went to sleep again since it had
 * slept `sleeps` times (t_proc_sleeps() taken while it slept): it has
 * handled what woke it (an event the test caused) and waits for the next
 * thing. As t_await_asleep() otherwise. */
int t_await_asleep_again(pid_t pid, long sleeps, int timeout_ms);
/* Drop privileges to uid/gid (no supplementary groups). 0 or -errno. */
int t_become(uid_t uid, gid_t gid);

/* One-way notification pipe between two processes. */
struct t_sync {
    int fd[2];
};
int t_sync_init(struct t_sync *s);
/* Send one byte. 0 or -errno. */
int t_sync_post(struct t_sync *s, unsigned char byte);
/* Receive one byte within timeout_ms (negative: for ever): the byte
 * (0-255), -ETIMEDOUT, or -EPIPE when the other end is closed. */
int t_sync_wait(struct t_sync *s, int timeout_ms);
void t_sync_close(struct t_sync *s);

/* Memory shared with forked children (MAP_SHARED|MAP_ANONYMOUS), zeroed;
 * NULL on failure. */
void *t_shared_alloc(size_t size);
void t_shared_free(void *p, size_t size);

/* ---- time --------------------------------------------------------- */

/* How long a test waits for something that must happen (a child to be
 * ready, a file to vanish, a process to end) before it calls it a failure.
 * It bounds a failure, it says nothing about speed: a test that passes does
 * not wait that long, and a loaded machine must not make one fail. Tests
 * assert what happens, never how fast (speed is `make bench`'s). */
#define T_PATIENCE_MS 10000

int64_t t_mono_ns(void);
int64_t t_real_ns(void);
/* Milliseconds elapsed since a t_mono_ns() value. */
int64_t t_ms_since(int64_t mono_ns);
/* For pacing (a load generator's bursts, a poll loop's step): a test does
 * not sleep to let something happen, it waits for it to have happened. */
void t_sleep_ms(int ms);
/* Sleep until CLOCK_REALTIME reads past real_ns (an expiry time). */
void t_sleep_until_real(int64_t real_ns);
/* Called right after a commit with ttl_ns returned: a wall-clock time by
 * which that chunk has expired (its commit time was read before the call
 * returned). t_sleep_until_real(t_expired_by(ttl)) waits for the expiry
 * itself, where a fixed sleep would race the clock on a slow machine. */
int64_t t_expired_by(int64_t ttl_ns);

/* Tests of expiry check what holds while a chunk lives, then that it is
 * gone once the clock passes its expiry. "While it lives" proves something
 * only when the checks ended before the expiry, which a loaded machine may
 * not manage for a short TTL: such a test looks at the clock after its
 * checks, and when the expiry has passed it cannot conclude and tries
 * again with a longer TTL, t_ttl_ns(base, attempt) (base doubled at each
 * attempt), up to T_TTL_ATTEMPTS attempts. */
#define T_TTL_ATTEMPTS 6
int64_t t_ttl_ns(int64_t base_ns, int attempt);
/* CPU time (user + system) used by this process, ns. */
int64_t t_cpu_ns(void);

/* ---- misc --------------------------------------------------------- */

/* Number of open file descriptors of this process (entries of
 * /proc/self/fd, the one used to list them excluded); -errno. */
int t_count_fds(void);

/* Fill n bytes with a pattern that depends on seed and on the position, so
 * that a misplaced or truncated copy is told apart. */
void t_fill(void *p, size_t n, uint64_t seed);
/* 0 when p holds t_fill(seed) bytes, else 1 + the index of the first bad
 * byte. */
size_t t_check_fill(const void *p, size_t n, uint64_t seed);

#endif
