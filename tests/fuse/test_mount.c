/*
 * Mounting as a system does: the SEGMENT_DIR argument, the default
 * directory made when missing, mount.fuse3 (which mount(8) runs for the
 * fuse.speculofs type) and its drop_privileges, and, as root in a private
 * mount namespace set up as a system with speculo installed, mount(8)
 * with `-t fuse.speculofs` and with fstab lines, also a user's.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "t_fuse.h"
#include "t_util.h"

/* snprintf() into an array, failing the test on truncation. */
#define FMT(buf, ...) ck_assert_int_lt(snprintf(buf, sizeof buf, __VA_ARGS__), (int)sizeof buf)

/* The user that reads through allow_other mounts and mounts fstab lines
 * marked `user`. */
#define OTHER_UID 65534

/* The source (the field after the type) of the mount at @mnt, into @buf
 * (PATH_MAX bytes). */
static const char *mount_source(const char *mnt, char *buf)
{
    char line[2 * PATH_MAX];
    const char *sep;

    ck_assert_int_eq(tf_mount_info(mnt, line, sizeof line), 1);
    sep = strstr(line, " - ");
    ck_assert_ptr_nonnull(sep);
    ck_assert_int_eq(sscanf(sep, " - %*s %4095s", buf), 1);
    return buf;
}

static void expect_text(const char *path, const char *want)
{
    char buf[256];
    ssize_t n = tf_read_file(path, buf, sizeof buf - 1);

    ck_assert_msg(n >= 0, "%s: %s", path, strerror((int)-n));
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

/* Read @path as OTHER_UID: 0 when it holds @want, else the errno (or 100
 * for other contents). */
static int read_as_other(const char *path, const char *want)
{
    pid_t pid = t_fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char buf[256];
        ssize_t n;
        T_CHILD_EQ(t_become(OTHER_UID, OTHER_UID), 0);
        n = tf_read_file(path, buf, sizeof buf - 1);
        if (n < 0)
            _exit((int)-n < 100 ? (int)-n : 99);
        buf[n] = '\0';
        _exit(strcmp(buf, want) == 0 ? 0 : 100);
    }
    return t_wait(pid, 10000);
}

/* Run @cmd (sh); fail with its output unless it exits 0. */
static void sh_ok(const char *cmd)
{
    char out[8192];
    int rc = tf_sh(cmd, out, sizeof out);

    ck_assert_msg(rc == 0, "%s: status %d:\n%s", cmd, rc, out);
}

/* Unmount @mnt with umount(8) and wait for its server to end, the
 * speculofs with @arg among its arguments. */
static void umount_ends_server_of(const char *mnt, const char *arg)
{
    char cmd[PATH_MAX + 16];
    pid_t pid = tf_server_of(arg);

    ck_assert_msg(pid > 0, "no speculofs serves %s", mnt);
    FMT(cmd, "umount '%s'", mnt);
    sh_ok(cmd);
    ck_assert(!tf_is_mounted(mnt));
    ck_assert_msg(tf_wait_gone(pid, TF_EXIT_MS) == 0, "speculofs %d still running after umount",
                  (int)pid);
}

static void umount_ends_server(const char *mnt)
{
    umount_ends_server_of(mnt, mnt);
}

/* `speculofs -f ARGS...` shows tf_m.dir, the mount's source being @source. */
static void expect_mount(const char *const *args, const char *source)
{
    char p[PATH_MAX];
    speculo_writer *w = tf_writer("seg", 0, 0);

    tf_put_str(w, "x", "y");
    ck_assert_int_eq(tf_start_args(&tf_m, args), 0);
    expect_text(tf_path(p, "seg", "x"), "y");
    ck_assert_str_eq(mount_source(tf_m.mnt, p), source);
    ck_assert_int_eq(tf_stop(&tf_m), 0);
    speculo_writer_close(w);
}

START_TEST(test_source_argument_is_the_segment_dir)
{
    const char *args[] = {"-o", "auto_unmount", tf_m.dir, tf_m.mnt, NULL};

    expect_mount(args, tf_m.dir);
}
END_TEST

/* Relative to the working directory; the mount's source is absolute. */
START_TEST(test_relative_source_argument)
{
    char bin[PATH_MAX], parent[PATH_MAX], name[PATH_MAX];
    const char *args[] = {"-o", "auto_unmount", name, tf_m.mnt, NULL};

    ck_assert_ptr_nonnull(realpath(tf_bin(), bin));
    ck_assert_int_eq(setenv("SPECULOFS", bin, 1), 0);
    FMT(parent, "%s", tf_m.dir);
    FMT(name, "%s", basename(parent));
    ck_assert_int_eq(chdir(dirname(parent)), 0);
    expect_mount(args, tf_m.dir);
}
END_TEST

/* With -o dir=, the argument before the mountpoint only names the mount
 * (an fstab line needs a source). */
START_TEST(test_dir_option_makes_the_argument_a_name)
{
    char opt[PATH_MAX + 32];
    const char *args[] = {"-o", opt, "speculo-view", tf_m.mnt, NULL};

    FMT(opt, "dir=%s,auto_unmount", tf_m.dir);
    expect_mount(args, "speculo-view");
}
END_TEST

static void expect_made_dir(const char *dir)
{
    struct stat st;

    ck_assert_int_eq(lstat(dir, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0700);
    ck_assert_int_eq(st.st_uid, geteuid());
}

/* The default directory, named or not, is made when missing (as at boot:
 * /dev/shm is empty); another missing directory is refused, not made. */
START_TEST(test_default_dir_made_when_missing)
{
    char fresh[PATH_MAX], slash[PATH_MAX + 1], other[PATH_MAX], cmd[4 * PATH_MAX], out[4096];
    const char *implicit[] = {"-o", "auto_unmount", tf_m.mnt, NULL};
    const char *named[] = {"-o", "auto_unmount", slash, tf_m.mnt, NULL};
    struct stat st;

    FMT(fresh, "%s/fresh", tf_m.dir);
    ck_assert_int_eq(setenv("SPECULO_DIR", fresh, 1), 0);
    ck_assert_int_eq(tf_start_args(&tf_m, implicit), 0);
    expect_made_dir(fresh);
    ck_assert_int_eq(tf_stop(&tf_m), 0);

    ck_assert_int_eq(rmdir(fresh), 0);
    FMT(slash, "%s/", fresh);
    ck_assert_int_eq(tf_start_args(&tf_m, named), 0);
    expect_made_dir(fresh);
    ck_assert_int_eq(tf_stop(&tf_m), 0);

    FMT(other, "%s/other", tf_m.dir);
    FMT(cmd, "%s -f '%s' '%s'", tf_bin(), other, tf_m.mnt);
    ck_assert_int_eq(tf_sh(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "No such file or directory") != NULL, "%s", out);
    ck_assert_int_eq(lstat(other, &st), -1);
    ck_assert(!tf_is_mounted(tf_m.mnt));
}
END_TEST

static int can_mount_helper(const char *test)
{
    if (geteuid() != 0 || access("/sbin/mount.fuse3", X_OK) != 0) {
        printf("%s: not root, or no /sbin/mount.fuse3: not tested\n", test);
        return 0;
    }
    return 1;
}

/* The directory of tf_bin(), absolute, for $PATH. */
static const char *bin_dir(char *buf)
{
    ck_assert_ptr_nonnull(realpath(tf_bin(), buf));
    *strrchr(buf, '/') = '\0';
    return buf;
}

/* Mount with @cmd (a mount helper), which makes speculofs daemonize: it
 * shows the directory, read-only, and ends at umount. */
static void mount_helper(const char *cmd)
{
    char p[PATH_MAX], line[2 * PATH_MAX];

    sh_ok(cmd);
    ck_assert_int_eq(tf_mount_info(tf_m.mnt, line, sizeof line), 1);
    ck_assert_msg(strstr(line, " ro,") != NULL, "not read-only: %s", line);
    expect_text(tf_path(p, "seg", "x"), "y");
    umount_ends_server(tf_m.mnt);
}

/* What mount(8) runs for `mount -t fuse.speculofs DIR MNT` and for the
 * fstab line `DIR MNT fuse.speculofs defaults 0 0`: mount.fuse3 DIR MNT
 * -t fuse.speculofs -o rw (without /sbin/mount.fuse.speculofs), or
 * /sbin/mount.fuse.speculofs DIR MNT -o rw, a link to mount.fuse3 that
 * takes the type from its name. mount(8) itself resets $PATH, so these
 * are run directly with speculofs in $PATH. Also -o dir= with a name as
 * the source, and the "fuse" type's PROGRAM#SOURCE. */
START_TEST(test_mount_helper)
{
    char cmd[4 * PATH_MAX], bin[PATH_MAX], dir[PATH_MAX], helpers[PATH_MAX + 8],
        link[PATH_MAX + 32];
    speculo_writer *w;

    if (!can_mount_helper("mount_helper"))
        return;
    w = tf_writer("seg", 0, 0);
    tf_put_str(w, "x", "y");
    bin_dir(dir);
    FMT(helpers, "%s.sbin", tf_m.mnt);
    FMT(link, "%s/mount.fuse.speculofs", helpers);
    ck_assert_int_eq(mkdir(helpers, 0700), 0);
    ck_assert_int_eq(symlink("/sbin/mount.fuse3", link), 0);
    FMT(cmd, "PATH='%s':\"$PATH\" /sbin/mount.fuse3 '%s' '%s' -t fuse.speculofs -o rw", dir,
        tf_m.dir, tf_m.mnt);
    mount_helper(cmd);
    FMT(cmd, "PATH='%s':\"$PATH\" '%s' '%s' '%s' -o rw,noexec,nosuid,nodev,user,nofail,_netdev",
        dir, link, tf_m.dir, tf_m.mnt);
    mount_helper(cmd);
    FMT(cmd,
        "PATH='%s':\"$PATH\" /sbin/mount.fuse3 speculofs '%s' -t speculofs "
        "-o rw,dir='%s'",
        dir, tf_m.mnt, tf_m.dir);
    mount_helper(cmd);
    ck_assert_ptr_nonnull(realpath(tf_bin(), bin));
    FMT(cmd, "mount -t fuse '%s#%s' '%s'", bin, tf_m.dir, tf_m.mnt);
    mount_helper(cmd);
    speculo_writer_close(w);
}
END_TEST

/* mount.fuse3's drop_privileges mounts before speculofs starts, with the
 * options as given: speculofs refuses a mount without default_permissions
 * (nobody would check the files' modes), and serves one with it. */
START_TEST(test_drop_privileges_needs_default_permissions)
{
    char cmd[4 * PATH_MAX], out[4096], dir[PATH_MAX], p[PATH_MAX], line[2 * PATH_MAX];
    speculo_writer *w;

    if (!can_mount_helper("drop_privileges_needs_default_permissions"))
        return;
    w = tf_writer("seg", 0, 0);
    tf_put_str(w, "x", "y");
    bin_dir(dir);
    FMT(cmd,
        "PATH='%s':\"$PATH\" /sbin/mount.fuse3 '%s' '%s' -t fuse.speculofs "
        "-o drop_privileges,allow_other",
        dir, tf_m.dir, tf_m.mnt);
    ck_assert_int_eq(tf_sh(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "without default_permissions") != NULL, "%s", out);
    /* The mount mount.fuse3 made is left without a server. */
    FMT(cmd, "umount '%s'", tf_m.mnt);
    sh_ok(cmd);

    FMT(cmd,
        "PATH='%s':\"$PATH\" /sbin/mount.fuse3 '%s' '%s' -t fuse.speculofs "
        "-o drop_privileges,default_permissions,ro",
        dir, tf_m.dir, tf_m.mnt);
    sh_ok(cmd);
    ck_assert_int_eq(tf_mount_info(tf_m.mnt, line, sizeof line), 1);
    ck_assert_msg(strstr(line, "default_permissions") != NULL, "%s", line);
    expect_text(tf_path(p, "seg", "x"), "y");
    /* Its mountpoint argument is /dev/fd/N. */
    umount_ends_server_of(tf_m.mnt, tf_m.dir);
    speculo_writer_close(w);
}
END_TEST

/* ---- mount(8) in a private mount namespace ----------------------------- */

static void bind(const char *from, const char *to)
{
    ck_assert_msg(mount(from, to, NULL, MS_BIND, NULL) == 0, "bind %s on %s: %s", from, to,
                  strerror(errno));
}

static void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(close(fd), 0);
}

/* /sbin/mount.fuse.speculofs as the package installs it (a link to
 * mount.fuse3), over /sbin in an overlay, when it is not installed.
 * Without overlayfs mount(8) falls back to mount.fuse with the type. */
static void add_mount_helper(const char *work)
{
    char sbin[PATH_MAX], up[PATH_MAX + 16], wk[PATH_MAX + 16], link[PATH_MAX + 64],
        opts[3 * PATH_MAX + 64];

    if (access("/sbin/mount.fuse.speculofs", F_OK) == 0)
        return;
    ck_assert_ptr_nonnull(realpath("/sbin", sbin));
    FMT(up, "%s/sbin-up", work);
    FMT(wk, "%s/sbin-work", work);
    FMT(link, "%s/mount.fuse.speculofs", up);
    ck_assert_int_eq(mkdir(up, 0755), 0);
    ck_assert_int_eq(mkdir(wk, 0700), 0);
    ck_assert_int_eq(symlink("mount.fuse3", link), 0);
    FMT(opts, "lowerdir=%s,upperdir=%s,workdir=%s", sbin, up, wk);
    if (mount("overlay", sbin, "overlay", 0, opts) != 0)
        printf("no overlayfs (%s): mount(8) runs mount.fuse for fuse.speculofs\n", strerror(errno));
}

/* Make /dev/fuse usable by other users, as it is on a Debian system
 * (crw-rw-rw-), with a node of the same device in a private tmpfs.
 * 0, or -1 when this machine does not let us. */
static int open_dev_fuse(const char *work)
{
    char dev[PATH_MAX + 16], node[PATH_MAX + 32];
    struct stat st;

    ck_assert_int_eq(stat("/dev/fuse", &st), 0);
    if ((st.st_mode & 0666) == 0666)
        return 0;
    FMT(dev, "%s/dev", work);
    FMT(node, "%s/fuse", dev);
    ck_assert_int_eq(mkdir(dev, 0755), 0);
    if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") != 0 ||
        mknod(node, S_IFCHR | 0666, st.st_rdev) != 0 || chmod(node, 0666) != 0) {
        printf("cannot make a /dev/fuse for other users (%s)\n", strerror(errno));
        return -1;
    }
    bind(node, "/dev/fuse");
    return 0;
}

/* An empty /dev/shm, as at boot, but for the tests' base directory (which
 * holds the test's directories), bound back in from the old one. */
static void empty_dev_shm(void)
{
    const char *base = getenv("T_SPECULO_BASE");
    char from[64];
    int fd = -1;

    if (base != NULL && strncmp(base, "/dev/shm/", 9) == 0) {
        fd = open(base, O_PATH | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
    }
    ck_assert_int_eq(mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), 0);
    if (fd < 0)
        return;
    ck_assert_int_eq(mkdir(base, 0711), 0);
    FMT(from, "/proc/self/fd/%d", fd);
    ck_assert_int_eq(mount(from, base, NULL, MS_BIND | MS_REC, NULL), 0);
    close(fd);
}

/*
 * Make this test's process see a system with speculo installed, in a
 * mount namespace of its own (nothing done here is seen outside it, and
 * it ends with the test): speculofs in /usr/local/bin (the first directory
 * of the $PATH that mount(8) sets), /sbin/mount.fuse.speculofs, @fstab as
 * /etc/fstab, a /run/mount of its own (mount(8)'s records of user mounts),
 * an empty /dev/shm (but for the test's directories), and a /dev/fuse that
 * OTHER_UID can open (*other_can_mount, else 0).
 * Returns 0, or -1 when the namespace cannot be made (not tested).
 */
static int private_system(const char *fstab, int *other_can_mount)
{
    char work[PATH_MAX + 8], bin[PATH_MAX + 16], path[PATH_MAX + 32], cmd[3 * PATH_MAX];

    if (!can_mount_helper("mount(8)"))
        return -1;
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("cannot make a mount namespace (%s): mount(8) not tested\n", strerror(errno));
        return -1;
    }
    FMT(work, "%s.sys", tf_m.mnt);
    ck_assert_int_eq(mkdir(work, 0755), 0);
    FMT(bin, "%s/bin", work);
    ck_assert_int_eq(mkdir(bin, 0755), 0);
    FMT(cmd, "cp '%s' '%s/speculofs'", tf_bin(), bin);
    sh_ok(cmd);
    bind(bin, "/usr/local/bin");
    add_mount_helper(work);
    FMT(path, "%s/fstab", work);
    write_text(path, fstab);
    bind(path, "/etc/fstab");
    if (mkdir("/run/mount", 0755) != 0)
        ck_assert_int_eq(errno, EEXIST);
    ck_assert_int_eq(mount("tmpfs", "/run/mount", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"), 0);
    empty_dev_shm();
    *other_can_mount = open_dev_fuse(work) == 0;
    return 0;
}

/* A segment "seg" with x = y that OTHER_UID may read, in a directory
 * OTHER_UID may enter. */
static speculo_writer *readable_segment(void)
{
    speculo_writer *w = tf_writer("seg", 0, 0644);

    tf_put_str(w, "x", "y");
    ck_assert_int_eq(chmod(tf_m.dir, 0755), 0);
    return w;
}

/* The path of a second mountpoint for the test (PATH_MAX bytes). */
static const char *second_path(char *buf)
{
    ck_assert_int_lt(snprintf(buf, PATH_MAX, "%s.2", tf_m.mnt), PATH_MAX);
    return buf;
}

static const char *second_mnt(char *buf)
{
    ck_assert_int_eq(mkdir(second_path(buf), 0755), 0);
    return buf;
}

/* mount -t fuse.speculofs DIR MNT: read-only, private to root. */
START_TEST(test_mount_type_fuse_speculofs)
{
    char cmd[3 * PATH_MAX], p[PATH_MAX], line[2 * PATH_MAX];
    int other_can_mount;
    speculo_writer *w = readable_segment();

    if (private_system("", &other_can_mount) != 0)
        return;
    FMT(cmd, "mount -t fuse.speculofs '%s' '%s'", tf_m.dir, tf_m.mnt);
    sh_ok(cmd);
    ck_assert_int_eq(tf_mount_info(tf_m.mnt, line, sizeof line), 1);
    ck_assert_msg(strstr(line, " ro,") != NULL && strstr(line, " - fuse.speculofs ") != NULL, "%s",
                  line);
    ck_assert_str_eq(mount_source(tf_m.mnt, cmd), tf_m.dir);
    expect_text(tf_path(p, "seg", "x"), "y");
    ck_assert_int_eq(read_as_other(p, "y"), EACCES);
    umount_ends_server(tf_m.mnt);
    speculo_writer_close(w);
}
END_TEST

/* `DIR MNT fuse.speculofs allow_other 0 0`: mount MNT, and mount -a,
 * which mounts each line once, with the options that mount(8) and
 * systemd use and mount.fuse3 or mount(8) leave out. */
START_TEST(test_fstab_line_allow_other)
{
    char fstab[4 * PATH_MAX], cmd[PATH_MAX + 16], mnt2[PATH_MAX], p[PATH_MAX];
    int other_can_mount;
    speculo_writer *w = readable_segment();

    FMT(fstab,
        "%s %s fuse.speculofs allow_other 0 0\n"
        "%s/ %s fuse.speculofs defaults,ro,nofail,_netdev,x-systemd.automount,comment=x 0 0\n",
        tf_m.dir, tf_m.mnt, tf_m.dir, second_mnt(mnt2));
    if (private_system(fstab, &other_can_mount) != 0)
        return;
    FMT(cmd, "mount '%s'", tf_m.mnt);
    sh_ok(cmd);
    ck_assert_int_eq(read_as_other(tf_path(p, "seg", "x"), "y"), 0);
    sh_ok("mount -a");
    sh_ok("mount -a");
    ck_assert_int_eq(tf_mount_info(tf_m.mnt, NULL, 0), 1);
    ck_assert_int_eq(tf_mount_info(mnt2, NULL, 0), 1);
    FMT(p, "%s/seg/x", mnt2);
    expect_text(p, "y");
    umount_ends_server(mnt2);
    umount_ends_server(tf_m.mnt);
    speculo_writer_close(w);
}
END_TEST

/* `DIR MNT fuse.speculofs noauto,user 0 0`: not mounted by mount -a;
 * OTHER_UID mounts and unmounts it, and its server runs as that user. */
START_TEST(test_fstab_line_noauto_user)
{
    char fstab[2 * PATH_MAX + 64], cmd[2 * PATH_MAX + 256], line[2 * PATH_MAX], p[PATH_MAX],
        as[128];
    int other_can_mount;
    speculo_writer *w = readable_segment();

    FMT(fstab, "%s %s fuse.speculofs noauto,user 0 0\n", tf_m.dir, tf_m.mnt);
    if (private_system(fstab, &other_can_mount) != 0)
        return;
    /* fusermount3 mounts a user's mount only where the user may write. */
    ck_assert_int_eq(chown(tf_m.mnt, OTHER_UID, OTHER_UID), 0);
    sh_ok("mount -a");
    ck_assert(!tf_is_mounted(tf_m.mnt));
    if (!other_can_mount) {
        printf("fstab_line_noauto_user: a user's mount not tested\n");
        return;
    }
    FMT(as,
        "PATH=/usr/local/bin:/usr/bin:/bin setpriv --reuid=%d --regid=%d "
        "--clear-groups",
        OTHER_UID, OTHER_UID);
    FMT(cmd, "cd / && %s mount '%s'", as, tf_m.mnt);
    sh_ok(cmd);
    ck_assert_int_eq(tf_mount_info(tf_m.mnt, line, sizeof line), 1);
    FMT(cmd, "user_id=%d,", OTHER_UID);
    ck_assert_msg(strstr(line, cmd) != NULL && strstr(line, " ro,") != NULL, "%s", line);
    ck_assert_int_eq(read_as_other(tf_path(p, "seg", "x"), "y"), 0);
    FMT(cmd, "cd / && %s umount '%s'", as, tf_m.mnt);
    sh_ok(cmd);
    ck_assert(!tf_is_mounted(tf_m.mnt));
    speculo_writer_close(w);
}
END_TEST

/* At boot: `/dev/shm/speculo-UID MNT fuse.speculofs setuid=USER 0 0`, the
 * directory missing (/dev/shm is empty), mount -a with a clean
 * environment. speculofs runs as USER and makes the directory, as USER's
 * first writer would have; a writer started later is seen. */
START_TEST(test_fstab_line_setuid_at_boot)
{
    char fstab[2 * PATH_MAX + 64], dir[64], line[2 * PATH_MAX], p[PATH_MAX], want[64];
    struct passwd *pw = getpwuid(OTHER_UID);
    int other_can_mount;
    struct stat st;
    pid_t pid;

    ck_assert_ptr_nonnull(pw);
    FMT(dir, "/dev/shm/speculo-%d", OTHER_UID);
    FMT(fstab, "%s %s fuse.speculofs setuid=%s,nofail 0 0\n", dir, tf_m.mnt, pw->pw_name);
    if (private_system(fstab, &other_can_mount) != 0)
        return;
    if (!other_can_mount) {
        printf("fstab_line_setuid_at_boot: a user's mount not tested\n");
        return;
    }
    ck_assert_int_eq(chown(tf_m.mnt, OTHER_UID, OTHER_UID), 0);
    ck_assert_int_eq(lstat(dir, &st), -1);
    sh_ok("env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin mount -a");
    ck_assert_int_eq(lstat(dir, &st), 0);
    ck_assert(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700);
    ck_assert_int_eq(st.st_uid, OTHER_UID);
    ck_assert_int_eq(tf_mount_info(tf_m.mnt, line, sizeof line), 1);
    FMT(want, "user_id=%d,", OTHER_UID);
    ck_assert_msg(strstr(line, want) != NULL, "%s", line);

    pid = t_fork();
    if (pid == 0) {
        speculo_writer *w;
        T_CHILD_EQ(t_become(OTHER_UID, OTHER_UID), 0);
        T_CHILD_EQ(unsetenv("SPECULO_DIR"), 0);
        T_CHILD_EQ(speculo_writer_open("seg", NULL, &w), 0);
        T_CHILD_EQ(speculo_writer_put(w, "y", 1, &(struct speculo_commit_options){.name = "x"},
                                      NULL),
                   0);
        speculo_writer_close(w);
        _exit(0);
    }
    ck_assert_int_eq(t_wait(pid, 10000), 0);
    ck_assert_int_eq(read_as_other(tf_path(p, "seg", "x"), "y"), 0);
    umount_ends_server(tf_m.mnt);
}
END_TEST

/* Servers that mount(8) started end with their mounts; a failed test
 * leaves them in its namespace, where nothing else unmounts them. */
static void end_servers(const char *mnt)
{
    pid_t pid;

    while ((pid = tf_server_of(mnt)) > 0) {
        kill(pid, SIGTERM);
        if (tf_wait_gone(pid, 5000) != 0)
            kill(pid, SIGKILL);
        tf_wait_gone(pid, 5000);
    }
}

static void mount_teardown(void)
{
    char mnt2[PATH_MAX];

    end_servers(tf_m.mnt);
    end_servers(second_path(mnt2));
    end_servers(tf_m.dir);
    tf_teardown();
}

static TCase *mount_tcase(const char *name, const TTest *test)
{
    TCase *c = tcase_create(name);

    tcase_add_unchecked_fixture(c, tf_setup_dirs, mount_teardown);
    tcase_add_test(c, test);
    tcase_set_timeout(c, 2 * TF_EXIT_MS / 1000 + 30);
    return c;
}

Suite *tf_suite_mount(void)
{
    Suite *s = suite_create("mount");

    suite_add_tcase(s, mount_tcase("source_argument_is_the_segment_dir",
                                   test_source_argument_is_the_segment_dir));
    suite_add_tcase(s, mount_tcase("relative_source_argument", test_relative_source_argument));
    suite_add_tcase(s, mount_tcase("dir_option_makes_the_argument_a_name",
                                   test_dir_option_makes_the_argument_a_name));
    suite_add_tcase(
        s, mount_tcase("default_dir_made_when_missing", test_default_dir_made_when_missing));
    suite_add_tcase(s, mount_tcase("mount_helper", test_mount_helper));
    suite_add_tcase(s, mount_tcase("drop_privileges_needs_default_permissions",
                                   test_drop_privileges_needs_default_permissions));
    suite_add_tcase(s, mount_tcase("mount_type_fuse_speculofs", test_mount_type_fuse_speculofs));
    suite_add_tcase(s, mount_tcase("fstab_line_allow_other", test_fstab_line_allow_other));
    suite_add_tcase(s, mount_tcase("fstab_line_noauto_user", test_fstab_line_noauto_user));
    suite_add_tcase(s, mount_tcase("fstab_line_setuid_at_boot", test_fstab_line_setuid_at_boot));
    return s;
}
