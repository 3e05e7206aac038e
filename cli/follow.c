/*
 * What `tail -f` needs besides the library: ending cleanly on a signal or
 * when the reader of its output goes away, noticing that the segment's file
 * was removed behind the library's back, and waiting for a segment that
 * does not exist yet — all without polling.
 *
 * The follow loop spends its idle time blocked in speculo_reader_wait (a
 * futex) or in read(2) on an inotify descriptor. Neither can also watch a
 * signal, stdout or the segment directory, so a helper thread does that: it
 * sleeps in poll(2) on a signalfd (SIGINT, SIGTERM, SIGHUP, blocked in
 * every thread), on an inotify descriptor watching the segment directory
 * for the removal of the segment's file and, when stdout is a pipe or
 * socket, on stdout itself (POLLERR/POLLHUP once the other end is closed).
 * When one fires it records what happened and interrupts the main thread
 * with SIGUSR1, whose handler does nothing: installed without SA_RESTART,
 * it makes the blocking call fail with EINTR. A kick that lands just before
 * the main thread blocks would be lost, so the kicks are repeated: until
 * the process ends after a stop, until the main thread takes it in after a
 * removal.
 *
 * Why removals need watching: `speculo rm` marks the file removed and wakes
 * the readers, but a plain rm(1) or mv(1) of the file does not, and a
 * reader blocked on the old file's futex would wait for ever.
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

/* The removal watch: the inotify descriptor the helper thread polls (the
 * main thread adds the directory to it), the segment it is about, and how
 * many removals the helper noticed and the main thread took in. */
static int removal_fd = -1;
static const char *watched_segment;
static _Atomic unsigned removals_noticed;
static _Atomic unsigned removals_taken;

/* How often a kick is repeated until the main thread reacts to it. */
#define KICK_INTERVAL_MS 20

static void on_kick(int sig)
{
    (void)sig; /* only there to interrupt a blocking call */
}

static bool output_is_pipe(void)
{
    struct stat st;
    return fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* What the removal watch reports on the segment directory: the file's
 * name going away, or the directory itself. */
#define REMOVAL_EVENTS (IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF)

static bool is_removal(const struct inotify_event *ev)
{
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF))
        return true;
    return (ev->mask & (IN_DELETE | IN_MOVED_FROM)) && ev->len &&
           strcmp(ev->name, watched_segment) == 0;
}

/* Read what the removal watch has to say (without blocking: the descriptor
 * is non-blocking) and count the removals of our segment. */
static void note_removals(void)
{
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(removal_fd, buf, sizeof buf)) > 0) {
        for (const char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const void *)p;
            if (is_removal(ev))
                /* publishes: a removal, to removal_noticed() */
                atomic_fetch_add_explicit(&removals_noticed, 1, memory_order_release);
            p += sizeof *ev + ev->len;
        }
    }
}

static bool removal_pending(void)
{
    /* observes: whether the main thread took in every removal so far */
    return atomic_load_explicit(&removals_noticed, memory_order_relaxed) !=
           atomic_load_explicit(&removals_taken, memory_order_relaxed);
}

/* Sleep in poll(2) until a stop signal arrives or stdout is closed on the
 * other end, returning why; meanwhile note removals of the segment's file
 * and kick the main thread until it takes them in. */
static enum stop_reason watch(int sfd, bool watch_stdout)
{
    struct pollfd p[3] = {{sfd, POLLIN, 0}, {removal_fd, POLLIN, 0}, {STDOUT_FILENO, 0, 0}};
    for (;;) {
        bool pending = removal_pending();
        if (pending)
            pthread_kill(follower, SIGUSR1);
        if (poll(p, watch_stdout ? 3 : 2, pending ? KICK_INTERVAL_MS : -1) < 0) {
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
        if (p[1].revents & POLLIN)
            note_removals();
        if (watch_stdout && (p[2].revents & (POLLERR | POLLHUP)))
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
        struct timespec ts = {0, KICK_INTERVAL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int follow_watch_start(const char *segment)
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

    watched_segment = segment;
    removal_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (removal_fd < 0)
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
        close(removal_fd);
        removal_fd = -1;
    }
    return rc;
}

int removal_watch_arm(void)
{
    char dir[PATH_MAX];
    int rc = speculo_segment_dir(dir, sizeof dir);
    if (rc < 0)
        return rc;
    /* The same directory again only renews the watch; a directory made
     * anew (the old one removed) gets a watch of its own. */
    if (inotify_add_watch(removal_fd, dir, REMOVAL_EVENTS | IN_ONLYDIR) < 0)
        return -errno;
    return 0;
}

bool removal_noticed(void)
{
    /* observes: the removals the helper thread counted */
    unsigned noticed = atomic_load_explicit(&removals_noticed, memory_order_acquire);
    if (noticed == atomic_load_explicit(&removals_taken, memory_order_relaxed))
        return false;
    /* publishes: taken in, so the helper thread stops kicking */
    atomic_store_explicit(&removals_taken, noticed, memory_order_relaxed);
    return true;
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
            /* Waiting for the segment to exist is already what a removal
             * calls for: take it in, so that the kicks stop. */
            removal_noticed();
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
