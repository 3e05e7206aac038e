/*
 * The server's life: clear refusals before mounting, a clean end on
 * unmount and on SIGTERM/SIGINT, mounting through mount(8).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_fuse.h"
#include "t_util.h"

static void wait_unmounted(const char *mnt)
{
    for (int64_t t0 = t_mono_ns(); tf_is_mounted(mnt) && t_ms_since(t0) < TF_EXIT_MS;)
        t_sleep_ms(2);
    ck_assert_msg(!tf_is_mounted(mnt), "%s still mounted", mnt);
}

START_TEST(test_unmount_ends_server)
{
    char p[PATH_MAX];
    speculo_writer *w = tf_writer("seg", 0, 0);

    tf_put_str(w, "x", "y");
    ck_assert_int_eq(tf_start(&tf_m, NULL), 0);
    ck_assert_int_eq(tf_stat_err(tf_path(p, "seg", "x")), 0);
    ck_assert_int_eq(tf_unmount(tf_m.mnt), 0);
    ck_assert_int_eq(t_wait(tf_m.pid, TF_EXIT_MS), 0);
    tf_m.pid = 0;
    ck_assert(!tf_is_mounted(tf_m.mnt));
    speculo_writer_close(w);
}
END_TEST

static void signal_ends_server(int sig)
{
    ck_assert_int_eq(tf_start(&tf_m, NULL), 0);
    ck_assert_int_eq(tf_dir_has(tf_m.mnt, "nothing"), 0);
    ck_assert_int_eq(kill(tf_m.pid, sig), 0);
    ck_assert_int_eq(t_wait(tf_m.pid, TF_EXIT_MS), 0);
    tf_m.pid = 0;
    wait_unmounted(tf_m.mnt);
}

START_TEST(test_sigterm_ends_server)
{
    signal_ends_server(SIGTERM);
}
END_TEST

START_TEST(test_sigint_ends_server)
{
    signal_ends_server(SIGINT);
}
END_TEST

/* Run speculofs with @args (a shell word list); expect @status and @text
 * in its output, and nothing mounted. */
static void expect_refusal(const char *args, int status, const char *text)
{
    char cmd[4 * PATH_MAX], out[8192];
    int rc;

    snprintf(cmd, sizeof cmd, "%s %s", tf_bin(), args);
    rc = tf_sh(cmd, out, sizeof out);
    ck_assert_msg(rc == status, "%s: status %d, want %d; output:\n%s", cmd, rc, status, out);
    ck_assert_msg(strstr(out, text) != NULL, "%s: no \"%s\" in:\n%s", cmd, text, out);
    ck_assert(!tf_is_mounted(tf_m.mnt));
}

START_TEST(test_bad_arguments)
{
    char args[4 * PATH_MAX], link[PATH_MAX + 8], file[PATH_MAX + 8];
    const char *dir = tf_m.dir, *mnt = tf_m.mnt;

    snprintf(args, sizeof args, "-f -o dir=%s/nonexistent %s", dir, mnt);
    expect_refusal(args, 1, "No such file or directory");
    ck_assert_int_eq(chmod(dir, 0770), 0);
    snprintf(args, sizeof args, "-f -o dir=%s %s", dir, mnt);
    expect_refusal(args, 1, "writable by its group: refused");
    ck_assert_int_eq(chmod(dir, 0702), 0);
    expect_refusal(args, 1, "writable by others: refused");
    ck_assert_int_eq(chmod(dir, 0700), 0);
    snprintf(link, sizeof link, "%s.link", dir);
    ck_assert_int_eq(symlink(dir, link), 0);
    snprintf(args, sizeof args, "-f -o dir=%s %s", link, mnt);
    expect_refusal(args, 1, "is a symbolic link: refused");
    unlink(link);
    snprintf(file, sizeof file, "%s/file", mnt);
    ck_assert_int_eq(close(open(file, O_WRONLY | O_CREAT, 0600)), 0);
    snprintf(args, sizeof args, "-f -o dir=%s %s", dir, mnt);
    expect_refusal(args, 1, "is not an empty directory");
    snprintf(args, sizeof args, "-f -o dir=%s %s", dir, file);
    expect_refusal(args, 1, "not a directory");
    unlink(file);
    snprintf(args, sizeof args, "-f -o dir=%s %s/nonexistent", dir, mnt);
    expect_refusal(args, 1, "No such file or directory");
    snprintf(args, sizeof args, "-f -o dir=%s", dir);
    expect_refusal(args, 2, "usage: speculofs");
    snprintf(args, sizeof args, "-f -o dir=%s,no_such_option %s", dir, mnt);
    expect_refusal(args, 1, "no_such_option");
    expect_refusal("-V", 0, "speculofs " SPECULO_VERSION);
    expect_refusal("--version", 0, "speculofs " SPECULO_VERSION);
    expect_refusal("-h", 0, "usage: speculofs");
    expect_refusal("--help", 0, "-o dir=SEGMENT_DIR");
}
END_TEST

/* The pid of a process whose command line names @mnt, 0 if none. */
static pid_t server_of(const char *mnt)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t found = 0;

    ck_assert_ptr_nonnull(d);
    while (!found && (de = readdir(d)) != NULL) {
        char path[64], cmd[4096];
        ssize_t n;
        pid_t pid = (pid_t)atoi(de->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        n = tf_read_file(path, cmd, sizeof cmd - 1);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[n] = '\0';
        if (strstr(cmd, "speculofs") != NULL && strstr(cmd, mnt) != NULL)
            found = pid;
    }
    closedir(d);
    return found;
}

/* Alive, and not a zombie waiting for a parent that does not reap. */
static int alive(pid_t pid)
{
    char path[64], stat[512], *close_paren;
    ssize_t n;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    n = tf_read_file(path, stat, sizeof stat - 1);
    if (n <= 0)
        return 0;
    stat[n] = '\0';
    close_paren = strrchr(stat, ')');
    return close_paren != NULL && close_paren[1] == ' ' && close_paren[2] != 'Z';
}

/* Mount with @cmd (a mount helper), which makes speculofs daemonize: it
 * shows the directory, read-only, and ends at umount. */
static void mount_helper(const char *cmd)
{
    char out[4096], p[PATH_MAX], line[2 * PATH_MAX];
    pid_t pid;

    ck_assert_msg(tf_sh(cmd, out, sizeof out) == 0, "%s:\n%s", cmd, out);
    ck_assert(tf_is_mounted(tf_m.mnt));
    ck_assert_int_eq(tf_stat_err(tf_path(p, "fstab", "x")), 0);
    snprintf(line, sizeof line, "grep ' %s ' /proc/self/mountinfo", tf_m.mnt);
    ck_assert_int_eq(tf_sh(line, out, sizeof out), 0);
    ck_assert_msg(strstr(out, " ro,") != NULL, "not read-only: %s", out);
    pid = server_of(tf_m.mnt);
    ck_assert_int_gt(pid, 0);
    snprintf(line, sizeof line, "umount '%s'", tf_m.mnt);
    ck_assert_msg(tf_sh(line, out, sizeof out) == 0, "%s:\n%s", line, out);
    for (int64_t t0 = t_mono_ns(); alive(pid) && t_ms_since(t0) < TF_EXIT_MS;)
        t_sleep_ms(2);
    if (alive(pid)) {
        kill(pid, SIGKILL);
        ck_abort_msg("speculofs (pid %d) still running after umount", (int)pid);
    }
}

/* What mount(8) runs for the fstab line
 *     SEGMENT_DIR  MOUNTPOINT  fuse.speculofs  defaults  0 0
 * (mount.fuse3 SEGMENT_DIR MOUNTPOINT -t speculofs -o rw; mount(8) itself
 * resets $PATH, so it is run directly with speculofs in $PATH here), the
 * same with -o dir=, and mount(8) with the "fuse" type's PROGRAM#SOURCE. */
START_TEST(test_mount_helper)
{
    char cmd[4 * PATH_MAX], bin[PATH_MAX], bindir[PATH_MAX];
    speculo_writer *w;

    if (geteuid() != 0 || access("/sbin/mount.fuse3", X_OK) != 0) {
        printf("mount_helper: not root, or no /sbin/mount.fuse3: not tested\n");
        return;
    }
    w = tf_writer("fstab", 0, 0);
    tf_put_str(w, "x", "y");
    ck_assert_ptr_nonnull(realpath(tf_bin(), bin));
    snprintf(bindir, sizeof bindir, "%s", bin);
    *strrchr(bindir, '/') = '\0';
    snprintf(cmd, sizeof cmd, "PATH='%s':\"$PATH\" /sbin/mount.fuse3 '%s' '%s' -t speculofs -o rw",
             bindir, tf_m.dir, tf_m.mnt);
    mount_helper(cmd);
    snprintf(cmd, sizeof cmd, "PATH='%s':\"$PATH\" /sbin/mount.fuse3 speculofs '%s' -t speculofs "
             "-o rw,dir='%s'", bindir, tf_m.mnt, tf_m.dir);
    mount_helper(cmd);
    snprintf(cmd, sizeof cmd, "mount -t fuse '%s#%s' '%s'", bin, tf_m.dir, tf_m.mnt);
    mount_helper(cmd);
    speculo_writer_close(w);
}
END_TEST

Suite *tf_suite_lifecycle(void)
{
    Suite *s = suite_create("lifecycle");

    suite_add_tcase(s, tf_tcase("unmount_ends_server", test_unmount_ends_server,
                                tf_setup_dirs, 90));
    suite_add_tcase(s, tf_tcase("sigterm_ends_server", test_sigterm_ends_server,
                                tf_setup_dirs, 90));
    suite_add_tcase(s, tf_tcase("sigint_ends_server", test_sigint_ends_server,
                                tf_setup_dirs, 90));
    suite_add_tcase(s, tf_tcase("bad_arguments", test_bad_arguments,
                                tf_setup_dirs, 90));
    suite_add_tcase(s, tf_tcase("mount_helper", test_mount_helper,
                                tf_setup_dirs, 90));
    return s;
}
