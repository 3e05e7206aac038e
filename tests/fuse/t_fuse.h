/*
 * Helpers of the speculofs tests (tf_ prefix): start a real speculofs on a
 * temporary mountpoint, stop it, look at it with plain POSIX calls.
 *
 * Every test case mounts its own filesystem in an *unchecked* fixture, that
 * is in the test runner's process: the mount is made before the test's
 * forked child runs and unmounted after it, whether the test passed,
 * failed, crashed or timed out. The server runs with auto_unmount and dies
 * with the runner, and main() unmounts whatever is left as a last resort.
 */
#ifndef T_FUSE_H
#define T_FUSE_H

#include <check.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "speculo.h"

struct tf_mount {
    char dir[PATH_MAX]; /* the segment directory shown */
    char mnt[PATH_MAX]; /* the mountpoint */
    char log[PATH_MAX]; /* the server's stdout and stderr */
    pid_t pid;          /* the server (-f), 0 when not running */
    int stays_mounted;  /* no auto_unmount: a killed server leaves a stale mount */
};

/* The mount of the running test case (set by tf_setup()). */
extern struct tf_mount tf_m;
/* Servers of fixtures that did not end with status 0 (a crash, a
 * sanitizer report): main() fails the run when there are any. */
extern int tf_bad_exits;

/* How long a server may take to end once unmounted (or signalled) before
 * that is a failure. Closing its inotify descriptors waits for the kernel
 * (fsnotify_destroy_group() flushes a work item that waits for an SRCU
 * grace period): on a loaded 2-CPU VM that took more than 10 s. */
#define TF_EXIT_MS 60000

/* ./fusefs/speculofs, or $SPECULOFS. */
const char *tf_bin(void);
/* 0 when this machine can mount FUSE (a /dev/fuse we can open, and
 * fusermount3 in $PATH); else a message in why. */
int tf_fuse_usable(char *why, size_t size);

/* Fresh segment directory and mountpoint for @m, under the test base. */
void tf_make_dirs(struct tf_mount *m);
/* Start `speculofs -f -o dir=...,auto_unmount [extra...] MNT` (without
 * auto_unmount when m->stays_mounted) and wait until it is mounted. 0, or -1 (the log is printed) when it did not mount. */
int tf_start(struct tf_mount *m, const char *const *extra);
/* The same with the whole command line after `speculofs -f` in @args
 * (NULL-terminated, the mountpoint m->mnt in it). */
int tf_start_args(struct tf_mount *m, const char *const *args);
/* Unmount (fusermount3 -u, lazily if busy) and reap the server. Returns
 * the server's exit status, or -1 when it had to be killed. */
int tf_stop(struct tf_mount *m);
int tf_is_mounted(const char *mnt);
/* How many mounts are at @mnt; the line of /proc/self/mountinfo of the
 * last one into @line (may be NULL). */
int tf_mount_info(const char *mnt, char *line, size_t size);
int tf_unmount(const char *mnt);
/* Unmount every mountpoint made by tf_make_dirs() still mounted. */
void tf_unmount_all(void);

/* Unchecked fixture: tf_make_dirs() + tf_start() into tf_m; and its end. */
void tf_setup(void);
void tf_teardown(void);
/* A test case of one test, with `setup` (tf_setup: mount; tf_setup_dirs:
 * directories only) before it and tf_teardown after it, even when the test
 * fails or times out (the fixture runs in the runner). */
TCase *tf_tcase(const char *name, const TTest *test, SFun setup, int timeout_s);
/* Unchecked fixture of tests that run their own servers: dirs only. */
void tf_setup_dirs(void);

/* A path under the mountpoint: "MNT/a" or "MNT/a/b" (@b may be NULL). */
const char *tf_path(char *buf, const char *a, const char *b);
/* A path in the segment directory. */
const char *tf_seg_path(char *buf, const char *seg);
/* The 20-digit name of an unnamed chunk. */
const char *tf_idname(char *buf, uint64_t id);

/* Writer helpers (fail the test on error). */
speculo_writer *tf_writer(const char *seg, size_t capacity, mode_t mode);
uint64_t tf_put(speculo_writer *w, const char *name, const void *data, size_t size,
                int64_t ttl_ns);
uint64_t tf_put_str(speculo_writer *w, const char *name, const char *text);

/* The whole file at @path into @buf: the length, or -errno. */
ssize_t tf_read_file(const char *path, void *buf, size_t size);
/* 0 when stat(path) succeeds, else -errno. */
int tf_stat_err(const char *path);
/* tf_stat_err() again and again until it gives @want, for at most @ms:
 * the kernel may cache a name until speculofs takes it back, moments after
 * the change (a removal, an explicit obsoletion). Returns the last result;
 * *waited_us (may be NULL) gets how long it took. */
int tf_wait_stat(const char *path, int want, int ms, int64_t *waited_us);
/* Does the listing of @dir hold @name? -errno if it cannot be listed. */
int tf_dir_has(const char *dir, const char *name);
/* The names in @dir ("." and ".." excluded), sorted, joined by '\n'. */
int tf_dir_names(const char *dir, char *buf, size_t size);

/* Run "sh -c @cmd" with stdout and stderr into @out; its exit status. */
int tf_sh(const char *cmd, char *out, size_t size);
/* Run argv (no shell) the same way. */
int tf_run(char *const argv[], char *out, size_t size);

/* A live (not zombie) speculofs with @mnt among its arguments, 0 if none:
 * a server that mount(8) started, which is not ours to wait for. */
pid_t tf_server_of(const char *mnt);
/* Alive, and not a zombie waiting for a parent that does not reap. */
int tf_alive(pid_t pid);
/* Wait at most @ms for @pid to end: 0, or -1 if it is still alive. */
int tf_wait_gone(pid_t pid, int ms);

/* Extended attribute @name of @path is @want (NULL: absent, ENODATA). */
void tf_check_xattr(const char *path, const char *name, const char *want);
/* @rc (of the call @what) is -1 with errno EROFS. */
void tf_expect_erofs(int rc, const char *what);

/* Suites, one per file. */
Suite *tf_suite_namespace(void);
Suite *tf_suite_live(void);
Suite *tf_suite_big(void);
Suite *tf_suite_faults(void);
Suite *tf_suite_lifecycle(void);
Suite *tf_suite_load(void);
Suite *tf_suite_cache(void);
Suite *tf_suite_mount(void);
Suite *tf_suite_all(void);

#endif
