/*
 * The server's life: clear refusals before mounting, a clean end on
 * unmount and on SIGTERM/SIGINT. Mounting through mount(8): test_mount.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
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
    expect_refusal(args, 1, " refused: writable by its group (chmod g-w it)");
    ck_assert_int_eq(chmod(dir, 0702), 0);
    expect_refusal(args, 1, " refused: writable by others (chmod go-w it)");
    ck_assert_int_eq(chmod(dir, 0700), 0);
    snprintf(link, sizeof link, "%s.link", dir);
    ck_assert_int_eq(symlink(dir, link), 0);
    /* however the link is spelled */
    const char *spellings[] = {"", "/", "/.", "//", "/./"};
    for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
        snprintf(args, sizeof args, "-f -o dir=%s%s %s", link, spellings[i], mnt);
        expect_refusal(args, 1, "symbolic link");
    }
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
    snprintf(args, sizeof args, "-f %s %s extra", dir, mnt);
    expect_refusal(args, 2, "unexpected argument 'extra'");
    snprintf(args, sizeof args, "-f -o dir=%s,no_such_option %s", dir, mnt);
    expect_refusal(args, 1, "no_such_option");
    expect_refusal("-V", 0, "speculofs " SPECULO_VERSION);
    expect_refusal("--version", 0, "speculofs " SPECULO_VERSION);
    expect_refusal("-h", 0, "usage: speculofs");
    expect_refusal("--help", 0, "-o dir=SEGMENT_DIR");
}
END_TEST

/* A server killed outright leaves its mount behind, where every call
 * fails with ENOTCONN: speculofs then says how to clear it, and mounts once
 * it is cleared. */
START_TEST(test_stale_mount_names_the_fix)
{
    char cmd[4 * PATH_MAX], out[8192], want[2 * PATH_MAX];
    int rc;

    tf_m.stays_mounted = 1;
    ck_assert_int_eq(tf_start(&tf_m, NULL), 0);
    ck_assert_int_eq(t_kill_wait(tf_m.pid, SIGKILL), 128 + SIGKILL);
    tf_m.pid = 0;
    ck_assert(tf_is_mounted(tf_m.mnt));
    ck_assert_int_eq(tf_stat_err(tf_m.mnt), -ENOTCONN);

    snprintf(cmd, sizeof cmd, "%s -f -o dir=%s %s", tf_bin(), tf_m.dir, tf_m.mnt);
    rc = tf_sh(cmd, out, sizeof out);
    snprintf(want, sizeof want, "unmount it first with 'fusermount3 -u %s'\n", tf_m.mnt);
    ck_assert_msg(rc == 1, "%s: status %d; output:\n%s", cmd, rc, out);
    ck_assert_msg(strstr(out, want) != NULL, "no \"%s\" in:\n%s", want, out);
    ck_assert_msg(strstr(out, "not an empty directory") == NULL, "%s", out);

    ck_assert_int_eq(tf_unmount(tf_m.mnt), 0);
    tf_m.stays_mounted = 0;
    ck_assert_int_eq(tf_start(&tf_m, NULL), 0);
    ck_assert_int_eq(tf_dir_has(tf_m.mnt, "nothing"), 0);
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
    suite_add_tcase(s, tf_tcase("stale_mount_names_the_fix", test_stale_mount_names_the_fix,
                                tf_setup_dirs, 90));
    return s;
}
