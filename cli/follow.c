/*
 * What `tail -f` needs besides the library: ending cleanly on a signal or
 * when the reader of its output goes away, noticing that the segment's file
 * was removed behind the library's back, and waiting for a segment that
 * does not exist yet — all without polling.
 *
 * The follow loop spends its idle time in speculo_wait() on its reader and
 * on a speculo_wakeup (follow_wait()), or in poll(2) on an inotify
 * descriptor and an eventfd (wait_for_segment()). A helper thread sleeps in
 * poll(2) on a signalfd (SIGINT, SIGTERM, SIGHUP, blocked in every thread),
 * on an inotify descriptor watching the segment directory for the removal
 * of the segment's file and, when stdout is a pipe or socket, on stdout
 * itself (POLLERR/POLLHUP once the other end is closed). When one fires it
 * records what happened, then signals the wakeup (and, for a stop, the
 * eventfd): the wait returns, and the loop looks at what was recorded. No
 * signal is sent to the loop's thread: one blocked elsewhere (a write to a
 * pipe nobody reads) when a stop signal comes is ended by the signal
 * itself, STOP_GRACE_MS later.
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
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* How long the loop has to end by itself after a stop signal. */
#define STOP_GRACE_MS 1000

/* Process-wide state of the one follow loop a process runs. */
static _Atomic int stop_why = STOP_NONE;
static _Atomic int stop_signo;
static speculo_wakeup *news; /* signalled by the helper thread after recording */
static int stop_fd = -1;     /* an eventfd, readable once a stop was recorded */

/* The removal watch: the inotify descriptor the helper thread polls (the
 * main thread adds the directory to it), the segment it is about, and how
 * many removals the helper noticed and the main thread took in. */
static int removal_fd = -1;
static const char *watched_segment;
static _Atomic unsigned removals_noticed;
static _Atomic unsigned removals_taken;

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
                /* publishes: a removal, to removal_noticed() (the wakeup
                 * signalled after it releases it too) */
                atomic_fetch_add_explicit(&removals_noticed, 1, memory_order_release);
            p += sizeof *ev + ev->len;
        }
    }
}

/* Sleep in poll(2) until a stop signal arrives or stdout is closed on the
 * other end, returning why; meanwhile tell the loop of every removal of
 * the segment's file. */
static enum stop_reason watch(int sfd, bool watch_stdout)
{
    struct pollfd p[3] = {{sfd, POLLIN, 0}, {removal_fd, POLLIN, 0}, {STDOUT_FILENO, 0, 0}};
    for (;;) {
        if (poll(p, watch_stdout ? 3 : 2, -1) < 0) {
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
        if (p[1].revents & POLLIN) {
            note_removals();
            speculo_wakeup_signal(news);
        }
        if (watch_stdout && (p[2].revents & (POLLERR | POLLHUP)))
            return STOP_OUTPUT_GONE;
    }
}

static void *watch_thread(void *arg)
{
    int sfd = (int)(intptr_t)arg;
    uint64_t one = 1;
    enum stop_reason why = watch(sfd, output_is_pipe());
    if (why == STOP_NONE)
        return NULL;
    atomic_store(&stop_why, why);
    speculo_wakeup_signal(news);
    ssize_t w = write(stop_fd, &one, sizeof one); /* 8 bytes to an eventfd: cannot fail */
    (void)w;
    if (why == STOP_SIGNAL) {
        struct timespec ts = {STOP_GRACE_MS / 1000, STOP_GRACE_MS % 1000 * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        stop_exit(STOP_SIGNAL); /* the loop did not end the process by now */
    }
    return NULL;
}

int follow_watch_start(const char *segment)
{
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGHUP);

    watched_segment = segment;
    int rc = speculo_wakeup_create(&news);
    if (rc < 0)
        return rc;
    removal_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    stop_fd = eventfd(0, EFD_CLOEXEC);
    if (removal_fd < 0 || stop_fd < 0)
        return -errno;

    /* Block the stop signals for good (the thread inherits the mask). */
    pthread_sigmask(SIG_BLOCK, &stops, NULL);
    int sfd = signalfd(-1, &stops, SFD_CLOEXEC);
    if (sfd < 0)
        return -errno;
    pthread_t t;
    rc = -pthread_create(&t, NULL, watch_thread, (void *)(intptr_t)sfd);
    if (rc < 0) {
        close(sfd);
        return rc;
    }
    pthread_detach(t);
    return 0;
}

int follow_wait(speculo_reader *r, int timeout_ms)
{
    struct speculo_wait_item item = {.reader = r};
    int rc = speculo_wait(&item, r != NULL, news, timeout_ms);
    if (rc == -ECANCELED)
        speculo_wakeup_clear(news); /* what it was for is read after this */
    return rc < 0 ? rc : 0;
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
    /* only this thread reads it: relaxed */
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

/* Until an event about the segment comes, or a stop (-EINTR). */
static int wait_events(int ifd, const char *segment, bool on_dir)
{
    /* Aligned for struct inotify_event, room for several at once. */
    char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
        __attribute__((aligned(__alignof__(struct inotify_event))));
    struct pollfd p[2] = {{ifd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    for (;;) {
        if (poll(p, stop_fd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (p[1].revents & POLLIN)
            return -EINTR;
        ssize_t n = read(ifd, buf, sizeof buf);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0 && events_matter(buf, n, segment, on_dir))
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
