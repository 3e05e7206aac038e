/*
 * The command line where the machine is hostile: a full filesystem (every
 * command ends with an error, never a signal), a writer in another PID
 * namespace, a dead writer's leftover temporary files.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "speculo.h"
#include "t_proc.h"

/* The segment directory on a 1 MiB tmpfs in a mount namespace of this
 * test process (its children, the CLI, share it). False when that needs
 * privileges we lack. */
static bool small_tmpfs(void)
{
    if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return false;
    ck_assert_int_eq(mkdir(tc_segdir, 0700), 0);
    ck_assert_int_eq(mount("tmpfs", tc_segdir, "tmpfs", 0, "size=1024k,mode=0700"), 0);
    return true;
}

/* Take all but @room bytes of the filesystem; returns the filler's path. */
static const char *fill(size_t room)
{
    static char path[TC_PATH + 32];
    snprintf(path, sizeof path, "%s/filler", tc_segdir);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    char block[4096];
    memset(block, 1, sizeof block);
    while (write(fd, block, sizeof block) == (ssize_t)sizeof block)
        ;
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert_int_eq(ftruncate(fd, st.st_size - (off_t)room), 0);
    close(fd);
    return path;
}

/* `speculo ARGS` must end with status @want (never a signal). */
#define expect_status(want, ...)                                                                   \
    do {                                                                                           \
        struct tc_result r_;                                                                       \
        tc_speculo(&r_, "hello\n", 6, __VA_ARGS__, NULL);                                          \
        ck_assert_msg(tc_exit(&r_) == (want), "speculo %s: status %d, want %d; stderr: %s",        \
                      #__VA_ARGS__, tc_exit(&r_), (want), r_.err);                                 \
        tc_result_free(&r_);                                                                       \
    } while (0)

START_TEST(full_filesystem_gives_errors_not_sigbus)
{
    if (!small_tmpfs()) {
        fprintf(stderr, "full_filesystem_gives_errors_not_sigbus: not root, skipped\n");
        return;
    }
    const char *filler = fill(8 << 10);
    expect_status(1, "put", "s");
    /* the failed first put left no segment behind */
    expect_status(1, "cat", "s", "1");
    expect_status(1, "ls", "s");
    expect_status(1, "info", "s");
    expect_status(1, "tail", "s");
    expect_status(1, "put", "s");
    expect_status(0, "segments");
    ck_assert_int_eq(unlink(filler), 0);
    /* space again: everything works */
    ck_assert_uint_eq(tc_put("s", "n", "hello\n"), 1);
    struct tc_result r;
    tc_speculo(&r, NULL, 0, "cat", "s", "n", NULL);
    ck_assert_int_eq(tc_exit(&r), 0);
    ck_assert_str_eq(r.out, "hello\n");
    tc_result_free(&r);
    /* and full again with a segment there: put fails, reads go on */
    filler = fill(0);
    char big[64 << 10];
    memset(big, 'x', sizeof big);
    tc_speculo(&r, big, sizeof big, "put", "s", NULL);
    ck_assert_int_eq(tc_exit(&r), 1);
    tc_result_free(&r);
    expect_status(0, "cat", "s", "n");
    expect_status(0, "ls", "s");
    expect_status(0, "info", "s");
    expect_status(0, "tail", "s");
}
END_TEST

/* A writer in this (host) namespace, `speculo put` in another: refused. */
START_TEST(put_in_pid_namespace_refused_while_host_writer_lives)
{
    if (geteuid() != 0 || system("unshare --pid --fork --mount-proc true >/dev/null 2>&1") != 0) {
        fprintf(stderr, "put_in_pid_namespace_refused...: no unshare as root, skipped\n");
        return;
    }
    ck_assert_int_eq(setenv("SPECULO_DIR", tc_segdir, 1), 0);
    speculo_writer *w;
    ck_assert_int_eq(speculo_writer_open("s", NULL, &w), 0);
    char *argv[] = {"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", tc_cli, "put", "s",
                    "--wait",           "0",     NULL};
    struct tc_result r;
    tc_run_argv(&r, argv);
    ck_assert_msg(tc_exit(&r) == 1, "status %d: %s", tc_exit(&r), r.err);
    ck_assert_msg(strstr(r.err, "is the writer") != NULL, "%s", r.err);
    tc_result_free(&r);
    speculo_writer_close(w);
    tc_run_argv(&r, argv);
    ck_assert_msg(tc_exit(&r) == 0, "status %d: %s", tc_exit(&r), r.err);
    tc_result_free(&r);
}
END_TEST

/* `rm` takes what a dead writer's interrupted collection left too. */
START_TEST(rm_removes_dead_writers_temporary_files)
{
    tc_put("s", NULL, "x");
    char path[TC_PATH + 64];
    snprintf(path, sizeof path, "%s/.s.gc.4242", tc_segdir);
    tc_write_file(path, "leftover", 8);
    snprintf(path, sizeof path, "%s/.s.gc.00000000deadbeef", tc_segdir);
    tc_write_file(path, "leftover", 8);
    expect_status(0, "rm", "s");
    struct tc_result r;
    char *ls[] = {"/bin/ls", "-A", tc_segdir, NULL};
    tc_run_argv(&r, ls);
    ck_assert_msg(r.out_len == 0, "left in the directory: %s", r.out);
    tc_result_free(&r);
}
END_TEST

TCase *tc_case_trust(void)
{
    TCase *tc = tcase_create("trust");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, full_filesystem_gives_errors_not_sigbus);
    tcase_add_test(tc, put_in_pid_namespace_refused_while_host_writer_lives);
    tcase_add_test(tc, rm_removes_dead_writers_temporary_files);
    return tc;
}
