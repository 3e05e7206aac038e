/*
 * What `tail -f` needs besides the library: ending cleanly on a signal or
 * when the reader of its output goes away, and waiting for a segment that
 * does not exist yet — all without polling.
 *
 * The follow loop spends its idle time blocked in speculo_reader_wait (a
 * futex) or in read(2) on an inotify descriptor. Neither can also watch a
 * signal or stdout, so a helper thread does that: it sleeps in poll(2) on a
 * signalfd (SIGINT, SIGTERM, SIGHUP, blocked in every thread) and, when
 * stdout is a pipe or socket, on stdout itself (POLLERR/POLLHUP once the
 * other end is closed). When either fires it records why and interrupts
 * the main thread with SIGUSR1, whose handler does nothing: installed
 * without SA_RESTART, it makes the blocking call fail with EINTR. The kick
 * is repeated until the process ends, because a kick that lands just before
 * the main thread blocks would otherwise be lost.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Process-wide state of the one follow loop a process runs. */
static _Atomic int stop_why = STOP_NONE;
static _Atomic int stop_signo;
static pthread_t follower;

static void on_kick(int sig)
{
    (void)sig; /* only there to interrupt a blocking call */
}

static bool output_is_pipe(void)
{
    struct stat st;
    return fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* Sleep in poll(2) until a stop signal arrives or stdout is closed on the
 * other end; returns why. */
static enum stop_reason watch(int sfd, bool watch_stdout)
{
    struct pollfd p[2] = {{sfd, POLLIN, 0}, {STDOUT_FILENO, 0, 0}};
    for (;;) {
        if (poll(p, watch_stdout ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return STOP_NONE;
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                atomic_store(&stop_signo, (int)si.ssi_signo);
                return STOP_SIGNAL;
            }
        }
        if (watch_stdout && (p[1].revents & (POLLERR | POLLHUP)))
            return STOP_OUTPUT_GONE;
    }
}

static void *watch_thread(void *arg)
{
    int sfd = (int)(intptr_t)arg;
    enum stop_reason why = watch(sfd, output_is_pipe());
    if (why == STOP_NONE)
        return NULL;
    atomic_store(&stop_why, why);
    for (;;) {
        pthread_kill(follower, SIGUSR1);
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int stop_watch_start(void)
{
    sigset_t stops, kick;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGHUP);
    sigemptyset(&kick);
    sigaddset(&kick, SIGUSR1);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_kick; /* no SA_RESTART: blocking calls fail with EINTR */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) < 0)
        return -errno;

    /* Block the stop signals for good (the thread inherits the mask), and
     * SIGUSR1 only while creating the thread, so that only we get kicks. */
    sigset_t old, both = stops;
    sigaddset(&both, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &both, &old);
    int sfd = signalfd(-1, &stops, SFD_CLOEXEC);
    int rc = sfd < 0 ? -errno : 0;
    pthread_t t;
    follower = pthread_self();
    if (rc == 0 && (rc = -pthread_create(&t, NULL, watch_thread, (void *)(intptr_t)sfd)) == 0)
        pthread_detach(t);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    if (rc < 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (sfd >= 0)
            close(sfd);
    }
    return rc;
}

enum stop_reason stop_requested(void)
{
    return (enum stop_reason)atomic_load(&stop_why);
}

int stop_exit(enum stop_reason why)
{
    if (why != STOP_SIGNAL)
        return EXIT_OK;
    /* Die of the signal, as an interrupted program should: the shell then
     * knows it was interrupted (and e.g. stops a loop). The signal is
     * blocked, so raise() leaves it pending until the unblock. */
    int sig = atomic_load(&stop_signo);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    signal(sig, SIG_DFL);
    raise(sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    return EXIT_ERR; /* not reached */
}

/* The watch mask: for the segment directory, entries that appear; for an
 * ancestor, anything that may mean a missing directory appeared. */
#define DIR_EVENTS (IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

/* Add a watch on `dir`, or on its nearest existing ancestor; tells which. */
static int watch_nearest(int ifd, const char *dir, bool *on_dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -ENAMETOOLONG;
    *on_dir = true;
    for (;;) {
        if (inotify_add_watch(ifd, path, DIR_EVENTS | IN_ONLYDIR) >= 0)
            return 0;
        if (errno != ENOENT && errno != ENOTDIR)
            return -errno;
        char *slash = strrchr(path, '/');
        if (!slash)
            return -ENOENT;
        if (slash == path)
            slash[1] = '\0'; /* "/" itself */
        else
            *slash = '\0';
        *on_dir = false;
    }
}

/* Does an inotify event batch concern our segment (or the directory)? */
static bool events_matter(const char *buf, ssize_t len, const char *segment, bool on_dir)
{
    if (!on_dir)
        return true;
    for (const char *p = buf; p < buf + len;) {
        const struct inotify_event *ev = (const void *)p;
        if (!(ev->mask & (IN_CREATE | IN_MOVED_TO)) || (ev->len && !strcmp(ev->name, segment)))
            return true;
        p += sizeof *ev + ev->len;
    }
    return false;
}

static int wait_events(int ifd, const char *segment, bool on_dir)
{
    /* Aligned for struct inotify_event, room for several at once. */
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(ifd, buf, sizeof buf);
        if (n < 0) {
            if (errno != EINTR)
                return -errno;
            if (stop_requested() != STOP_NONE)
                return -EINTR;
            continue;
        }
        if (events_matter(buf, n, segment, on_dir))
            return 0;
    }
}

int wait_for_segment(const char *segment)
{
    char dir[PATH_MAX], file[PATH_MAX + 256];
    int rc = speculo_segment_dir(dir, sizeof dir);
    if (rc < 0)
        return rc;
    snprintf(file, sizeof file, "%s/%s", dir, segment);

    int ifd = inotify_init1(IN_CLOEXEC);
    if (ifd < 0)
        return -errno;
    bool on_dir;
    rc = watch_nearest(ifd, dir, &on_dir);
    /* Checked after the watch is in place, so that nothing created in
     * between is missed. */
    if (rc == 0 && access(on_dir ? file : dir, F_OK) != 0)
        rc = wait_events(ifd, segment, on_dir);
    close(ifd);
    return rc;
}
