/*
 * Telling the kernel that a name it cached is gone (DESIGN-speculofs.md,
 * "Caching and invalidation"). A *notifier* thread follows up to
 * SPECULO_WAIT_MAX segment incarnations, a reader each, in one
 * speculo_wait() that commits and obsoletions wake, and invalidates the
 * cached names (nodes.c) of chunks obsoleted. The *inotify* thread has
 * segtab.c look at each segment an event names, and invalidates the names
 * of the incarnations that died, with their chunks'.
 *
 * A reply that lets the kernel cache a chunk name holds the segment's
 * entries_lock shared from the check that the chunk is live to the reply;
 * a notifier takes the list of names held with it exclusively: every name
 * is in the list or was checked after the obsoletion. It invalidates with
 * no lock held: an invalidation waits for the kernel's lock on the
 * directory, which a lookup holds while it waits for our reply.
 *
 * No thread is sent a signal: a notifier waits on a wakeup too, the
 * inotify thread on an eventfd. This is the only file that notifies or
 * makes threads: in-process tests link a stub of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "sfs.h"

/* Notifiers at most, each following SPECULO_WAIT_MAX segments; chunk
 * names of segments beyond are not cached. */
#define MAX_NOTIFIERS 8

/* How long the end waits for a thread stuck in a notification. */
#define STOP_WAIT_S 2

#define INOTIFY_MASK                                                                               \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF |            \
     IN_MOVE_SELF | IN_ONLYDIR)

/* A segment incarnation a notifier follows. */
struct followed {
    struct sfs_seg *seg;
    speculo_reader *r;    /* after the last commit read; counts obsoletions since its open */
    speculo_reader *scan; /* for walks over the records (live_by_walk()), or NULL */
    uint64_t *pend;       /* chunks replaced by the commits read, not yet seen dead */
    size_t npend, cappend;
    /* Obsoletions reported less those the commits read explain. A commit
     * may be read before the count that includes it, so this dips below 0
     * for a round; above 0, a chunk no commit names was obsoleted. */
    int64_t unexplained;
};

struct notifier {
    pthread_t thread;
    speculo_wakeup *wake;                 /* segments to take in; the end */
    struct followed *f[SPECULO_WAIT_MAX]; /* under W.lock; NULL: a free place */
};

static struct {
    struct fuse_session *se;
    pthread_mutex_t lock; /* the notifiers and the segments each follows */
    struct notifier nt[MAX_NOTIFIERS];
    size_t nnt;
    atomic_int stop;    /* notify_stop() began */
    atomic_int root_ok; /* inotify watches the segment directory */
    int ifd, efd;       /* inotify; an eventfd that ends its thread */
    pthread_t ithread;
    int ithread_on;
} W = {.lock = PTHREAD_MUTEX_INITIALIZER, .ifd = -1, .efd = -1};

static int stopping(void)
{
    /* observes: notify_stop() began; no new notification is sent then */
    return atomic_load_explicit(&W.stop, memory_order_acquire);
}

int notify_root_ok(void)
{
    /* observes: the inotify watch is in place (or was lost) */
    return atomic_load_explicit(&W.root_ok, memory_order_acquire);
}

/* ------------------------------------------------------------------ */
/* invalidations                                                       */

static void inval_name(fuse_ino_t parent, const char *name)
{
    int rc;

    if (stopping())
        return;
    rc = fuse_lowlevel_notify_inval_entry(W.se, parent, name, strlen(name));
    /* -ENOENT: the kernel holds no such name (any more) */
    if (rc != 0 && rc != -ENOENT)
        fuse_log(FUSE_LOG_DEBUG, "speculofs: invalidate %#" PRIx64 "/%s: %s\n", (uint64_t)parent,
                 name, strerror(-rc));
}

static void inval_chunks(const struct sfs_seg *seg, const uint64_t *ids, size_t n)
{
    char name[SFS_IDNAME_LEN + 1];

    for (size_t i = 0; i < n; i++) {
        sfs_idname(name, ids[i]);
        inval_name(sfs_ino(seg->slot, 0), name);
    }
}

static void inval_attrs(fuse_ino_t ino)
{
    if (!stopping())
        (void)fuse_lowlevel_notify_inval_inode(W.se, ino, -1, 0);
}

/* No chunk name of @seg may be cached from now on (it died, or its
 * notifier cannot tell what dies): every one held is invalidated. 1 if it
 * was followed (its notifier is to let it go). */
static int retire(struct sfs_seg *seg, const char *why)
{
    uint64_t *ids;
    size_t n;
    int was;

    if (why != NULL)
        fuse_log(FUSE_LOG_DEBUG, "speculofs: %s: no longer followed: %s\n", seg->name, why);
    pthread_rwlock_wrlock(&seg->entries_lock);
    was = seg->follow == SFS_FOLLOW_ON;
    seg->follow = SFS_FOLLOW_OFF;
    n = nodes_unnamed(seg->slot, &ids);
    pthread_rwlock_unlock(&seg->entries_lock);
    if (n == SIZE_MAX)
        fuse_log(FUSE_LOG_ERR, "speculofs: %s: out of memory: cached names not taken back\n",
                 seg->name);
    else
        inval_chunks(seg, ids, n);
    free(ids);
    return was;
}

/* Mark which of @ids are live by one walk of the records from the least to
 * the greatest: the live ones are those next() returns. @ids (unsorted)
 * span [lo, lo + span): a bitmap of the span says which are asked about. */
static void live_by_walk(const uint64_t *ids, size_t n, uint64_t lo, uint64_t span,
                         unsigned char *alive, speculo_reader *scan, int *broken)
{
    char name[SPECULO_CHUNK_NAME_MAX + 1];
    uint64_t *asked = calloc(span / 64 + 1, sizeof *asked);
    struct sfs_meta m;
    int rc;

    if (asked == NULL) {
        *broken = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        asked[(ids[i] - lo) / 64] |= UINT64_C(1) << ((ids[i] - lo) % 64);
    rc = g_seek(scan, lo - 1);
    while (rc == 0 && !stopping() && (rc = g_next_meta(scan, &m, name, sizeof name)) == 0 &&
           m.id - lo < span)
        /* live: no longer asked about */
        asked[(m.id - lo) / 64] &= ~(UINT64_C(1) << ((m.id - lo) % 64));
    if (rc != 0 && rc != -EAGAIN)
        *broken = 1;
    for (size_t i = 0; i < n; i++)
        alive[i] = !(asked[(ids[i] - lo) / 64] >> ((ids[i] - lo) % 64) & 1);
    free(asked);
}

/* Reorder @ids[0..n) so that the chunks of @f's segment that are not live
 * come first, and return how many they are. Many ids over a small range
 * (after an `ls -l`) are checked by one walk of it (100,000 in 15 ms), a
 * few by a lookup each (1.5 us). If a reader cannot tell, or is on another
 * incarnation, all count as dead. */
static size_t split_dead(uint64_t *ids, size_t n, struct followed *f, int *broken)
{
    unsigned char *alive;
    uint64_t lo = UINT64_MAX, hi = 0;
    size_t k = 0;

    if (n == 0)
        return 0;
    alive = calloc(n, 1);
    if (alive == NULL)
        return n;
    for (size_t i = 0; i < n; i++) {
        lo = ids[i] < lo ? ids[i] : lo;
        hi = ids[i] > hi ? ids[i] : hi;
    }
    if (n >= 64 && hi - lo < 8 * (uint64_t)n &&
        (f->scan != NULL || g_reader_open(f->seg->name, &f->scan) == 0)) {
        live_by_walk(ids, n, lo, hi - lo + 1, alive, f->scan, broken);
        *broken |= !seg_reads(f->seg, f->scan);
    } else {
        for (size_t i = 0; i < n && !stopping(); i++) {
            speculo_chunk c;
            int rc = g_fetch(f->r, NULL, ids[i], &c, NULL);
            *broken |= rc == SFS_FAULT;
            alive[i] = rc == 0;
        }
        *broken |= !seg_reads(f->seg, f->r);
    }
    /* ids[0..k) are dead, ids[k..i) live: a dead ids[i] swaps with ids[k] */
    for (size_t i = 0; i < n; i++) {
        if (*broken || !alive[i]) {
            uint64_t t = ids[k];
            ids[k++] = ids[i];
            ids[i] = t;
        }
    }
    free(alive);
    return k;
}

/* The names the kernel holds: those of @ids[0..n) (kept in place), or with
 * @all every unnamed chunk's of @seg (a new *ids). Taken with entries_lock
 * held exclusively (see the top of this file). */
static size_t held(struct sfs_seg *seg, uint64_t **ids, size_t n, int all)
{
    size_t k = 0;

    pthread_rwlock_wrlock(&seg->entries_lock);
    if (all)
        k = nodes_unnamed(seg->slot, ids);
    else
        for (size_t i = 0; i < n; i++) {
            struct sfs_meta m;
            if (node_get(sfs_ino(seg->slot, (*ids)[i]), &m) == 0 && !m.named)
                (*ids)[k++] = (*ids)[i];
        }
    pthread_rwlock_unlock(&seg->entries_lock);
    return k;
}

/* Every unnamed chunk name the kernel holds: invalidate those dead. 1
 * when a reader can no longer be trusted. */
static int inval_all_dead(struct followed *f)
{
    uint64_t *ids = NULL;
    int broken = 0;
    size_t n = held(f->seg, &ids, 0, 1);

    if (n == SIZE_MAX)
        return 1; /* out of memory: retire() tries again */
    n = split_dead(ids, n, f, &broken);
    inval_chunks(f->seg, ids, n);
    free(ids);
    return broken;
}

/* The chunks replaced by the commits read (f->pend): invalidate those the
 * kernel holds that are dead. One found live stays pending: a commit is
 * visible before the writer marks what it replaced (just after), and the
 * count that then wakes us again guarantees the mark is visible. */
static int inval_replaced(struct followed *f)
{
    int broken = 0;
    size_t n = f->npend > 0 ? held(f->seg, &f->pend, f->npend, 0) : 0;
    size_t k = split_dead(f->pend, n, f, &broken);

    inval_chunks(f->seg, f->pend, k);
    if (n > k)
        memmove(f->pend, f->pend + k, (n - k) * sizeof *f->pend);
    f->npend = broken ? 0 : n - k;
    return broken;
}

/* ------------------------------------------------------------------ */
/* notifiers                                                           */

/* Read the chunks committed since the last call: the ids they replaced
 * join f->pend; returns how many, or the reader's error (-ENOENT: the
 * segment is gone). *@overflow: not all could be kept. */
static int64_t drain(struct followed *f, int *overflow)
{
    char name[SPECULO_CHUNK_NAME_MAX + 1];
    struct sfs_meta m;
    int64_t explained = 0;
    int rc;

    while ((rc = g_next_meta(f->r, &m, name, sizeof name)) == 0) {
        if (m.replaces == 0)
            continue;
        explained++;
        if (sfs_grow(&f->pend, &f->cappend, f->npend + 1, sizeof *f->pend) == 0)
            f->pend[f->npend++] = m.replaces;
        else
            *overflow = 1;
    }
    return rc == -EAGAIN ? explained : rc;
}

/* Take in what @f's reader reports: the obsoletions commits explain (their
 * replaces field) are checked one by one; any other, or a move (several GC
 * switches at once), makes a check of every name held. Returns why the
 * segment can no longer be followed, or NULL. */
static const char *take_news(struct followed *f)
{
    struct speculo_watch ev;
    int overflow = 0;
    int64_t explained;
    int rc = g_watch(f->r, &ev);

    if (rc == -ETIMEDOUT)
        return NULL;
    if (rc != 0)
        return speculo_strerror(rc);
    explained = drain(f, &overflow);
    if (explained >= 0 && !seg_reads(f->seg, f->r))
        explained = -ENOENT; /* the reader followed the name to another incarnation */
    if (explained < 0)
        return explained == -ENOENT ? "removed or replaced" : speculo_strerror((int)explained);
    f->unexplained += (int64_t)(ev.obsoleted > INT32_MAX ? INT32_MAX : ev.obsoleted) - explained;
    if (ev.moved || overflow || f->unexplained > 0) {
        f->unexplained = 0;
        if (inval_all_dead(f))
            return "the reader faulted or moved";
    }
    return inval_replaced(f) ? "the reader faulted or moved" : NULL;
}

static void followed_free(struct followed *f)
{
    if (f == NULL)
        return;
    g_reader_close(f->r);
    g_reader_close(f->scan);
    free(f->pend);
    free(f);
}

/* The segments @nt follows now, into @f and @items: those that stopped
 * being followed (retire()) are let go. */
static size_t members(struct notifier *nt, struct followed **f, struct speculo_wait_item *items)
{
    size_t n = 0;

    pthread_mutex_lock(&W.lock);
    for (size_t i = 0; i < SPECULO_WAIT_MAX; i++) {
        int off;
        if (nt->f[i] == NULL)
            continue;
        pthread_rwlock_rdlock(&nt->f[i]->seg->entries_lock);
        off = nt->f[i]->seg->follow == SFS_FOLLOW_OFF;
        pthread_rwlock_unlock(&nt->f[i]->seg->entries_lock);
        if (off) {
            followed_free(nt->f[i]);
            nt->f[i] = NULL;
            continue;
        }
        f[n] = nt->f[i];
        items[n] = (struct speculo_wait_item){.reader = f[n]->r, .events = SPECULO_WAIT_WATCH};
        n++;
    }
    pthread_mutex_unlock(&W.lock);
    return n;
}

/* The news of the segments whose items are ready; -ECANCELED when one
 * can no longer be followed (the members are to be taken again), else 0. */
static int serve(struct followed **f, const struct speculo_wait_item *items, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n && !stopping(); i++) {
        const char *why = items[i].ready ? take_news(f[i]) : NULL;
        if (why != NULL && !stopping()) {
            retire(f[i]->seg, why);
            rc = -ECANCELED;
        }
    }
    return rc;
}

static void *notifier_main(void *arg)
{
    struct notifier *nt = arg;
    struct followed *f[SPECULO_WAIT_MAX];
    struct speculo_wait_item items[SPECULO_WAIT_MAX];
    size_t n = 0;
    int rc = -ECANCELED;

    while (!stopping()) {
        if (rc == -ECANCELED) {
            speculo_wakeup_clear(nt->wake); /* before looking: a later change wakes us */
            n = members(nt, f, items);
        }
        rc = g_wait(items, n, nt->wake);
        if (rc == SFS_FAULT) /* a mapping was cut: whose, each reader's next call tells */
            for (size_t i = 0; i < n; i++)
                items[i].ready = 1;
        if (rc > 0 || rc == SFS_FAULT)
            rc = serve(f, items, n);
    }
    pthread_mutex_lock(&W.lock);
    for (size_t i = 0; i < SPECULO_WAIT_MAX; i++)
        if (nt->f[i] != NULL)
            followed_free(nt->f[i]);
    pthread_mutex_unlock(&W.lock);
    return NULL;
}

/* Our threads take no signal meant for the process (SIGTERM must reach
 * libfuse's loop), only the synchronous ones (SIGBUS: see guard.c). */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
    static const int keep[] = {SIGBUS, SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        sigdelset(&all, keep[i]);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Locked. A free place in a notifier, starting one if all are full. */
static struct followed **free_place(struct notifier **out)
{
    for (size_t i = 0; i < MAX_NOTIFIERS && i <= W.nnt; i++) {
        struct notifier *nt = &W.nt[i];
        if (i == W.nnt) { /* all full */
            if (speculo_wakeup_create(&nt->wake) != 0)
                return NULL;
            if (spawn(&nt->thread, notifier_main, nt) != 0) {
                speculo_wakeup_destroy(nt->wake);
                return NULL;
            }
            W.nnt++;
        }
        for (size_t k = 0; k < SPECULO_WAIT_MAX; k++)
            if (nt->f[k] == NULL) {
                *out = nt;
                return &nt->f[k];
            }
    }
    return NULL;
}

/* Locked. Follow @seg, not followed yet, with a reader positioned after
 * everything committed so far: obsoletions are counted from its open on.
 * The library's wait sleeps on the segment's futex only with write access
 * to the file (it counts itself as a waiter); without, it would check every
 * millisecond: such a segment is not followed, nor one whose name holds
 * another incarnation now. */
static void follow_start(struct sfs_seg *seg)
{
    char path[PATH_MAX];
    struct notifier *nt;
    struct followed **place = free_place(&nt);
    struct followed *f = place != NULL ? calloc(1, sizeof *f) : NULL;
    int rc = -EACCES;

    if (f == NULL)
        return; /* tried again at the next lookup */
    f->seg = seg;
    if (snprintf(path, sizeof path, "%s/%s", segtab_dir(), seg->name) < (int)sizeof path &&
        faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0)
        rc = g_reader_open(seg->name, &f->r);
    if (rc == 0 && !seg_reads(seg, f->r))
        rc = -ENOENT;
    if (rc == 0)
        rc = g_seek(f->r, UINT64_MAX);
    pthread_rwlock_wrlock(&seg->entries_lock);
    if (seg->follow == SFS_FOLLOW_NONE)
        seg->follow = rc == 0 ? SFS_FOLLOW_ON : rc == -ENOMEM ? SFS_FOLLOW_NONE : SFS_FOLLOW_OFF;
    else
        rc = -EALREADY;
    pthread_rwlock_unlock(&seg->entries_lock);
    if (rc != 0) {
        followed_free(f);
        return;
    }
    *place = f;
    speculo_wakeup_signal(nt->wake); /* after: its look at the members sees f */
}

/* Called by a LOOKUP or READDIRPLUS that saw @seg not followed yet, before
 * it checks a chunk is live: once seg->follow is on, every obsoletion from
 * then on is taken back. */
void notify_follow(struct sfs_seg *seg)
{
    int none;

    if (W.se == NULL || stopping() || seg->bad)
        return;
    pthread_mutex_lock(&W.lock);
    pthread_rwlock_rdlock(&seg->entries_lock);
    none = seg->follow == SFS_FOLLOW_NONE; /* another lookup may have started it */
    pthread_rwlock_unlock(&seg->entries_lock);
    if (none)
        follow_start(seg);
    pthread_mutex_unlock(&W.lock);
}

/* ------------------------------------------------------------------ */
/* the segment directory: inotify                                      */

/* The incarnations that died: the root's name for each, and its chunk
 * names. */
static void reap(void)
{
    struct sfs_seg **dead;
    size_t n = segtab_take_dead(&dead);
    int followed = 0;

    for (size_t i = 0; i < n; i++) {
        inval_name(FUSE_ROOT_ID, dead[i]->name);
        followed |= retire(dead[i], NULL);
    }
    free(dead);
    if (!followed)
        return;
    pthread_mutex_lock(&W.lock); /* their notifiers let them go */
    for (size_t i = 0; i < W.nnt; i++)
        speculo_wakeup_signal(W.nt[i].wake);
    pthread_mutex_unlock(&W.lock);
}

/* The segment file's owner or mode changed: so did its directory's, and
 * every chunk's the kernel holds. */
static void owner_changed(struct sfs_seg *seg)
{
    struct stat st;
    fuse_ino_t *inos = NULL;
    size_t n = 0;

    if (seg_check(seg, &st) != 0)
        return;
    pthread_rwlock_wrlock(&seg->entries_lock);
    n = nodes_set_owner(seg->slot, &st, &inos);
    pthread_rwlock_unlock(&seg->entries_lock);
    for (size_t i = 0; i < n; i++)
        inval_attrs(inos[i]);
    inval_attrs(sfs_ino(seg->slot, 0));
    inval_attrs(sfs_ino(seg->slot, SFS_INFO_LOW));
    free(inos);
}

static void recheck(const char *name)
{
    struct sfs_seg *attr;

    if (segtab_recheck(name, &attr) == 0 && attr != NULL)
        owner_changed(attr);
}

/* Inotify can no longer tell (the directory went away, the queue
 * overflowed): look at every segment known. */
static void recheck_all(void)
{
    struct sfs_seg *seg;

    segtab_changed(NULL);
    for (uint64_t slot = 1; (seg = segtab_get(slot)) != NULL; slot++)
        recheck(seg->name); /* the current incarnation of that name */
}

/* The directory itself is gone or moved: no more events will come. */
static void lose_watch(void)
{
    /* publishes: replies give the root's names a timeout of 0 from now */
    atomic_store_explicit(&W.root_ok, 0, memory_order_release);
    segtab_verify_enable(0);
}

/* One read's worth of events: what was verified of each name is dropped
 * first, then each is looked at again. */
static void handle_events(const char *buf, size_t len)
{
    const char *names[256];
    size_t n = 0;
    int all = 0;

    for (size_t off = 0; off + sizeof(struct inotify_event) <= len;) {
        const struct inotify_event *e = (const struct inotify_event *)(const void *)(buf + off);
        off += sizeof *e + e->len;
        if (e->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
            lose_watch();
        if (e->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT))
            all = 1;
        if (e->len == 0 || speculo_segment_name_check(e->name) != 0)
            continue;
        segtab_changed(e->name);
        if (n < sizeof names / sizeof names[0])
            names[n++] = e->name;
        else
            all = 1;
    }
    if (all)
        recheck_all();
    else
        for (size_t i = 0; i < n; i++)
            recheck(names[i]);
    reap();
}

static void *inotify_main(void *arg)
{
    /* room for many events; aligned as struct inotify_event needs */
    static _Alignas(struct inotify_event) char buf[64 * 1024];
    struct pollfd fds[2] = {{.fd = W.ifd, .events = POLLIN}, {.fd = W.efd, .events = POLLIN}};

    (void)arg;
    while (!stopping()) {
        ssize_t n;
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents != 0)
            break;
        n = read(W.ifd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        handle_events(buf, (size_t)n);
    }
    if (!stopping()) {
        lose_watch();
        recheck_all();
        reap();
    }
    return NULL;
}

/* Start after the session is mounted (and daemonized: threads do not
 * survive a fork). Failing to watch only means timeouts of 0. */
int notify_start(struct fuse_session *se)
{
    W.se = se;
    W.ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    W.efd = eventfd(0, EFD_CLOEXEC);
    if (W.ifd < 0 || W.efd < 0 || inotify_add_watch(W.ifd, segtab_dir(), INOTIFY_MASK) < 0) {
        fuse_log(FUSE_LOG_DEBUG, "speculofs: no inotify on %s (%s): segment names are not cached\n",
                 segtab_dir(), strerror(errno));
        return 0;
    }
    segtab_verify_enable(1);
    /* publishes: the watch is in place before any name is cached */
    atomic_store_explicit(&W.root_ok, 1, memory_order_release);
    W.ithread_on = spawn(&W.ithread, inotify_main, NULL) == 0;
    if (!W.ithread_on)
        lose_watch();
    return 0;
}

/* After the loop ended, before the unmount. A thread that does not end
 * within STOP_WAIT_S is left behind with what it uses (one stuck in a
 * notification: the kernel waits for a lookup no worker answers now; the
 * unmount ends it, and it sends nothing more): the number of those is
 * returned, and the caller must not free the tables. */
int notify_stop(void)
{
    uint64_t one = 1;
    struct timespec until;
    int left = 0;

    if (W.se == NULL)
        return 0;
    /* publishes: no notification is sent from now on */
    atomic_store_explicit(&W.stop, 1, memory_order_release);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += STOP_WAIT_S;
    if (W.ithread_on && write(W.efd, &one, sizeof one) == sizeof one)
        left += pthread_timedjoin_np(W.ithread, NULL, &until) != 0;
    for (size_t i = 0; i < W.nnt; i++)
        speculo_wakeup_signal(W.nt[i].wake);
    for (size_t i = 0; i < W.nnt; i++) {
        if (pthread_timedjoin_np(W.nt[i].thread, NULL, &until) == 0)
            speculo_wakeup_destroy(W.nt[i].wake);
        else
            left++;
    }
    W.nnt = 0;
    if (W.ifd >= 0)
        close(W.ifd);
    if (W.efd >= 0)
        close(W.efd);
    W.ifd = W.efd = -1;
    return left;
}
