/*
 * speculofs: the speculo segment directory as a live, read-only filesystem.
 *
 *   speculofs [-o dir=SEGMENT_DIR] [options] [SEGMENT_DIR] MOUNTPOINT
 *
 * mount(8) runs it through mount.fuse3 as `speculofs SOURCE MOUNTPOINT -o
 * OPTIONS`, SOURCE being the first field of an fstab line.
 *
 * This file checks the command line and the two directories, so that a
 * mistake gets a plain message before anything is mounted, then runs the
 * libfuse session. Exit status: 0 after a clean unmount or SIGTERM/SIGINT,
 * 1 on an error, 2 on a usage error.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sfs.h"

/* Unless told otherwise (-o max_threads=N), at most this many threads. */
#define DEFAULT_MAX_THREADS 8
#define MAX_THREADS_LIMIT 64

struct sfs_options {
    char *dir;       /* -o dir= */
    char *nonopt[2]; /* [SEGMENT_DIR] MOUNTPOINT */
    int nnonopt;
    int help, version; /* also seen by fuse_parse_cmdline() */
};

enum { KEY_HELP, KEY_VERSION };

static const struct fuse_opt sfs_opt_spec[] = {
    {"dir=%s", offsetof(struct sfs_options, dir), 0},
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_END,
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: speculofs [-o dir=SEGMENT_DIR] [options] [SEGMENT_DIR] MOUNTPOINT\n"
            "\n"
            "Shows the speculo segments of SEGMENT_DIR as a live, read-only filesystem:\n"
            "one directory per segment, one file per live chunk, and SEG/.info.\n"
            "SEGMENT_DIR defaults to $SPECULO_DIR, else /dev/shm/speculo-$UID (made,\n"
            "0700, when missing); mount(8) passes an fstab line's first field there.\n"
            "\n"
            "speculofs options:\n"
            "    -o dir=SEGMENT_DIR     the segment directory to show; a SEGMENT_DIR\n"
            "                           argument then only names the mount\n"
            "    -o max_threads=N       at most N worker threads (default %d)\n"
            "The mount is read-only, private to its user unless -o allow_other.\n"
            "\n",
            DEFAULT_MAX_THREADS);
}

/* Non-options are kept aside: with two, the first is the segment directory
 * (mount.fuse3 passes the fstab source there), which fuse_parse_cmdline()
 * would take for the mountpoint. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct sfs_options *o = data;

    (void)outargs;
    if (key == KEY_HELP)
        o->help = 1;
    if (key == KEY_VERSION)
        o->version = 1;
    if (key != FUSE_OPT_KEY_NONOPT)
        return 1;
    if (o->nnonopt == 2) {
        fprintf(stderr, "speculofs: unexpected argument '%s'\n", arg);
        return -1;
    }
    o->nonopt[o->nnonopt] = strdup(arg);
    return o->nonopt[o->nnonopt++] != NULL ? 0 : -1;
}

/* The directory to show: -o dir=, else the first of two non-options (as
 * mount.fuse3 passes an fstab line's source), else the library's, which
 * (named or not, trailing slashes aside) is made when missing, as this
 * user's writer would: a mount at boot or login needs no writer first.
 * Refused as the library refuses it (speculo_dir_check(): the default one
 * must be ours, anyone may create /dev/shm/speculo-UID first), with its
 * reason; then made absolute into @real (fuse_daemonize() changes to /). */
static int pick_dir(const struct sfs_options *o, char *real)
{
    char lib[PATH_MAX], why[256];
    const char *dir = o->dir != NULL ? o->dir : o->nnonopt == 2 ? o->nonopt[0] : NULL;
    const char *env = getenv("SPECULO_DIR");
    int is_lib, rc;

    if (speculo_segment_dir(lib, sizeof lib) < 0) {
        fprintf(stderr, "speculofs: the segment directory's path is too long\n");
        return -1;
    }
    dir = dir != NULL ? dir : lib;
    is_lib = !strncmp(dir, lib, strlen(lib)) && !dir[strlen(lib) + strspn(dir + strlen(lib), "/")];
    if (is_lib && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "speculofs: cannot create segment directory %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    rc =
        speculo_dir_check(is_lib && (env == NULL || *env == '\0') ? NULL : dir, 0, why, sizeof why);
    if (rc == -EPERM)
        fprintf(stderr, "speculofs: segment directory %s refused: %s\n", dir, why);
    else if (rc < 0)
        fprintf(stderr, "speculofs: segment directory %s: %s%s\n", dir, strerror(-rc),
                rc == -ENOENT ? " (a speculo writer creates it)" : "");
    else if (realpath(dir, real) == NULL)
        fprintf(stderr, "speculofs: segment directory %s: %s\n", dir, strerror((rc = -errno)));
    return rc < 0 ? -1 : 0;
}

static int has_opt(const struct fuse_args *args, const char *prefix)
{
    for (int i = 0; i < args->argc; i++)
        if (strstr(args->argv[i], prefix) != NULL)
            return 1;
    return 0;
}

/* An empty directory, or a /dev/fd/N passed by a mount helper: a mount made
 * before we started (mount.fuse3's drop_privileges) with the options we are
 * given, add_default_opts() adding nothing to it. Without
 * default_permissions nobody checks the files' modes: other users of an
 * allow_other mount would read what they deny. */
static int check_mountpoint(const char *mnt, const struct fuse_args *args)
{
    unsigned fd;
    char end;
    DIR *d;
    struct dirent *de;
    int entries = 0;

    if (sscanf(mnt, "/dev/fd/%u%c", &fd, &end) == 1) {
        if (has_opt(args, "default_permissions"))
            return 0;
        fprintf(stderr,
                "speculofs: %s is a mount made without default_permissions, which speculofs "
                "needs: add default_permissions,ro to its options\n",
                mnt);
        return -1;
    }
    d = opendir(mnt);
    if (d == NULL && errno == ENOTCONN) {
        /* A FUSE mount whose server died (killed, crashed) stays until
         * someone unmounts it; only then can it be mounted again. */
        fprintf(stderr,
                "speculofs: mountpoint %s: still mounted by a server that is gone (%s): "
                "unmount it first with 'fusermount3 -u %s'\n",
                mnt, strerror(errno), mnt);
        return -1;
    }
    if (d == NULL) {
        fprintf(stderr, "speculofs: mountpoint %s: %s\n", mnt,
                errno == ENOTDIR ? "not a directory" : strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL)
        entries += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    if (entries > 0)
        fprintf(stderr, "speculofs: mountpoint %s is not an empty directory\n", mnt);
    return entries > 0 ? -1 : 0;
}

/* The mount's source in the mount table: the directory shown, or the
 * SEGMENT_DIR argument when -o dir= makes it a name (mount -a finds the
 * line of an fstab already mounted by its source). */
static const char *mount_name(const struct sfs_options *o, const char *dir)
{
    return o->dir != NULL && o->nnonopt == 2 ? o->nonopt[0] : dir;
}

/* Permissions checked by the kernel from our modes, the mount named @name:
 * put first, so that the user's options win. Read-only: put last, so that
 * it wins over the "rw" that mount(8) passes. */
static int add_default_opts(struct fuse_args *args, const char *name)
{
    char *opts = NULL;
    char *fsname = NULL;
    int rc = fuse_opt_add_opt(&opts, "default_permissions");

    if (rc == 0 && !has_opt(args, "subtype="))
        rc = fuse_opt_add_opt(&opts, "subtype=speculofs");
    if (rc == 0 && !has_opt(args, "fsname=")) {
        if (asprintf(&fsname, "fsname=%s", name) < 0)
            rc = -1;
        else
            rc = fuse_opt_add_opt_escaped(&opts, fsname);
    }
    if (rc == 0)
        rc = fuse_opt_insert_arg(args, 1, "-o");
    if (rc == 0)
        rc = fuse_opt_insert_arg(args, 2, opts);
    if (rc == 0)
        rc = fuse_opt_add_arg(args, "-oro");
    free(fsname);
    free(opts);
    return rc;
}

/* Without -d, the debug messages of fuse_log() are not shown (libfuse's
 * own log function shows every level). */
static void log_no_debug(enum fuse_log_level level, const char *fmt, va_list ap)
{
    if (level < FUSE_LOG_DEBUG)
        vfprintf(stderr, fmt, ap);
}

static int run_loop(struct fuse_session *se, const struct fuse_cmdline_opts *cmd)
{
    struct fuse_loop_config *cfg;
    unsigned max = cmd->max_threads;
    int rc;

    if (cmd->singlethread)
        return fuse_session_loop(se);
    if (max == 0 || max > MAX_THREADS_LIMIT)
        max = max == 0 ? DEFAULT_MAX_THREADS : MAX_THREADS_LIMIT;
    cfg = fuse_loop_cfg_create();
    if (cfg == NULL)
        return -ENOMEM;
    fuse_loop_cfg_set_clone_fd(cfg, (unsigned)cmd->clone_fd);
    fuse_loop_cfg_set_max_threads(cfg, max);
    fuse_loop_cfg_set_idle_threads(cfg, cmd->max_idle_threads < max ? cmd->max_idle_threads : max);
    rc = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
    return rc;
}

/* A path of /proc/self/mountinfo, its escapes (\040 for a space) undone. */
static char *unescape(char *s)
{
    char *o = s;

    for (const char *p = s; *p; o++)
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
            p += 4;
        } else {
            *o = *p++;
        }
    *o = '\0';
    return s;
}

/* The kernel reads a file in requests no larger than its readahead window
 * for the mount, 128 KiB unless raised, each a round trip to us: 1 MiB
 * (SFS_READAHEAD) makes a large chunk's requests 8 times fewer. Only root
 * may raise it (sysfs); before INIT, whose reply can only lower it
 * (sfs_init() asks for as much). */
static void raise_readahead(const char *mnt)
{
    char line[2 * PATH_MAX], point[PATH_MAX], path[64] = "", kb[16];
    unsigned maj, min;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    int fd;

    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, point) == 3 &&
            strcmp(unescape(point), mnt) == 0) /* the last line: the newest mount there */
            snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
    if (f != NULL)
        fclose(f);
    snprintf(kb, sizeof kb, "%u", SFS_READAHEAD / 1024);
    if (path[0] != '\0' && (fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
        if (write(fd, kb, strlen(kb)) != (ssize_t)strlen(kb))
            fuse_log(FUSE_LOG_DEBUG, "speculofs: %s: %s\n", path, strerror(errno));
        close(fd);
    }
}

/* Mount, serve until unmounted or signalled, unmount. */
static int serve(struct fuse_args *args, const struct fuse_cmdline_opts *cmd)
{
    struct fuse_session *se = fuse_session_new(args, &sfs_ops, sizeof sfs_ops, NULL);
    int rc = 1, left;

    if (se == NULL)
        return 1;
    if (fuse_set_signal_handlers(se) != 0)
        goto out_destroy;
    if (fuse_session_mount(se, cmd->mountpoint) != 0)
        goto out_signals;
    raise_readahead(cmd->mountpoint);
    fuse_daemonize(cmd->foreground);
    if (notify_start(se) != 0)
        goto out_unmount;
    rc = run_loop(se, cmd);
    /* libfuse reports the signal that stopped the loop: a clean end */
    rc = rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
out_unmount:
    /* The notifiers end first: fuse_session_unmount() closes the device
     * they write to. One left behind (notify_stop()) may still use the
     * tables. */
    left = notify_stop();
    fuse_session_unmount(se);
    if (left != 0) {
        fprintf(stderr, "speculofs: a notifier thread did not end\n");
        exit(rc); /* what it may still use is not freed */
    }
    sfs_ops_cleanup();
out_signals:
    fuse_remove_signal_handlers(se);
out_destroy:
    fuse_session_destroy(se);
    return rc;
}

static int help_or_version(struct fuse_args *args, struct fuse_cmdline_opts *cmd)
{
    if (fuse_parse_cmdline(args, cmd) != 0)
        return 2;
    if (cmd->show_help) {
        usage(stdout);
        fuse_cmdline_help();
        fuse_lowlevel_help();
    } else {
        printf("speculofs %s (libspeculo format %d)\n", SPECULO_VERSION, SPECULO_FORMAT_VERSION);
        fuse_lowlevel_version();
    }
    return 0;
}

/* A held segment file keeps a descriptor once it served an OPEN (holds.c):
 * with the usual soft limit of 1024, a thousand segments would end in
 * EMFILE. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Everything before mounting. Returns an exit status, or -1 when the
 * filesystem is to be served. */
static int start(struct fuse_args *args, struct sfs_options *o, struct fuse_cmdline_opts *cmd)
{
    char dir[PATH_MAX];
    const char *mnt = o->nnonopt > 0 ? o->nonopt[o->nnonopt - 1] : NULL;
    int own_threads = has_opt(args, "max_threads="); /* else libfuse's default is not ours */

    if (o->help || o->version)
        return help_or_version(args, cmd);
    if (mnt == NULL) {
        usage(stderr);
        return 2;
    }
    if (check_mountpoint(mnt, args) != 0 || pick_dir(o, dir) != 0)
        return 1;
    if (fuse_opt_add_arg(args, mnt) != 0 || fuse_parse_cmdline(args, cmd) != 0)
        return 2;
    if (!own_threads)
        cmd->max_threads = DEFAULT_MAX_THREADS;
    if (!cmd->debug)
        fuse_set_log_func(log_no_debug);
    raise_nofile();
    if (segtab_init(dir) != 0 || nodes_init() != 0 || guard_install() != 0 ||
        add_default_opts(args, mount_name(o, dir)) != 0) {
        fprintf(stderr, "speculofs: cannot start: %s\n", strerror(errno));
        return 1;
    }
    return -1;
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct sfs_options o;
    struct fuse_cmdline_opts cmd;
    int rc;

    memset(&o, 0, sizeof o);
    memset(&cmd, 0, sizeof cmd);
    if (fuse_opt_parse(&args, &o, sfs_opt_spec, opt_proc) != 0) {
        usage(stderr);
        rc = 2;
    } else {
        rc = start(&args, &o, &cmd);
    }
    if (rc < 0) {
        rc = serve(&args, &cmd);
        segtab_fini();
        nodes_fini();
    }
    free(cmd.mountpoint);
    fuse_opt_free_args(&args);
    free(o.dir);
    free(o.nonopt[0]);
    free(o.nonopt[1]);
    return rc;
}
