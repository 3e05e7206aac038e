/*
 * Telling the kernel that a name it cached is gone.
 *
 * The kernel caches names (entries) for the timeout each reply gives it.
 * speculofs lets it cache two kinds, and takes them back here:
 *
 * - The name of an unnamed chunk (its padded id) in a segment directory.
 *   It dies when the chunk expires (the entry timeout never runs past the
 *   expiry: nothing to do here) or is obsoleted, by `replaces` or by
 *   speculo_writer_obsolete(). A *watcher* thread per segment incarnation
 *   whose chunk names the kernel may cache blocks in
 *   speculo_reader_watch(), which the writer wakes at every commit and
 *   obsoletion, and invalidates the names of chunks the kernel holds
 *   (nodes.c) that are no longer live.
 *
 * - The name of a segment directory in the root. It dies when the segment
 *   is removed or created again (another incarnation), not when the
 *   garbage collector renames a new file over it. One *inotify* thread
 *   watches the segment directory, has segtab.c look at every name an
 *   event is about, and invalidates the names of incarnations that died,
 *   with their chunk names.
 *
 * A name may be cached only while it can be taken back: a chunk's while
 * its segment's watcher runs (notify_follow()), a segment's while inotify
 * works (notify_root_ok()); else the replies give a timeout of 0.
 *
 * The race between a reply that lets the kernel cache a name and the
 * invalidation of that name is closed by the incarnation's `hand` lock
 * (sfs.h): once woken by an obsoletion, a watcher copies the names the
 * kernel holds while holding it exclusively, so every name given before
 * the copy is in it, and every name given after was checked live after
 * the obsoletion. The checks of the copied names, and the invalidations,
 * come after the lock is released: lookups wait only for the copy, and
 * fuse_lowlevel_notify_inval_entry() waits for the kernel's lock on the
 * directory, which a lookup holds while it waits for our reply, which may
 * wait for `hand`.
 *
 * This is the only file that calls fuse_lowlevel_notify_*() or makes
 * threads, so that an in-process test can link a stub of it instead.
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

/* At most this many watchers at a time; segments beyond get no cached
 * chunk names (timeouts of 0, as without a watcher). */
#define MAX_WATCHERS 1024

#define WATCHER_STACK ((size_t)256 << 10)

/* The signal that interrupts a watcher's wait when the server stops. */
#define WAKE_SIGNAL SIGUSR1

#define INOTIFY_MASK                                                                               \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF |            \
     IN_MOVE_SELF | IN_ONLYDIR)

struct watcher {
    struct watcher *next;
    struct sfs_seg *seg;
    speculo_reader *r;    /* the watcher's own: positioned after the last commit seen */
    speculo_reader *scan; /* for walks over the records (keep_dead()); or NULL */
    uint64_t *pend;       /* chunks replaced by commits read, not yet seen dead */
    size_t npend, cappend;
    int64_t balance; /* obsoletions reported less those commits explained */
    pthread_t thread;
    atomic_int done; /* the thread returned: it may be joined at once */
};

static struct {
    struct fuse_session *se;
    pthread_mutex_t lock; /* the list of watchers, and their starting */
    struct watcher *watchers;
    size_t nwatchers;
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

static int follow_state(const struct sfs_seg *seg)
{
    /* observes: the state set under `hand` (see retire()) */
    return atomic_load_explicit(&seg->follow, memory_order_acquire);
}

static void set_follow(struct sfs_seg *seg, int state)
{
    /* publishes: whether replies may give the segment's chunk names a
     * positive timeout */
    atomic_store_explicit(&seg->follow, state, memory_order_release);
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
    if (rc != 0 && rc != -ENOENT && sfs_debug)
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

/*
 * No name of @seg's chunks may be cached from now on: the incarnation died,
 * or its watcher can no longer tell what dies. Every unnamed chunk name the
 * kernel holds is invalidated, live or not.
 */
static void retire(struct sfs_seg *seg, const char *why)
{
    uint64_t *ids;
    size_t n;

    if (sfs_debug && why != NULL)
        fuse_log(FUSE_LOG_DEBUG, "speculofs: %s: no longer followed: %s\n", seg->name, why);
    pthread_rwlock_wrlock(&seg->hand);
    set_follow(seg, SFS_FOLLOW_OFF);
    n = nodes_unnamed(seg->slot, &ids);
    pthread_rwlock_unlock(&seg->hand);
    if (n == SIZE_MAX)
        fuse_log(FUSE_LOG_ERR, "speculofs: %s: out of memory: cached names not taken back\n",
                 seg->name);
    else
        inval_chunks(seg, ids, n);
    free(ids);
}

/* Keep the ids of @ids[0..n) that the kernel holds as unnamed chunks. */
static size_t keep_held(uint64_t *ids, size_t n, uint64_t slot)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        struct sfs_meta m;
        if (node_get(sfs_ino(slot, ids[i]), &m) == 0 && !m.named)
            ids[k++] = ids[i];
    }
    return k;
}

/* Did @r's last answers come from @seg? A reader that followed the name
 * to another incarnation knows nothing of @seg's chunks. */
static int reader_on(const struct sfs_seg *seg, const speculo_reader *r)
{
    struct speculo_segment_ident id;

    return speculo_reader_ident(r, &id) == 0 && seg_same(seg, &id);
}

/* Mark which of @ids are live, one lookup each (O(log n) apiece). */
static void live_by_lookup(const uint64_t *ids, size_t n, unsigned char *alive, speculo_reader *r,
                           int *broken)
{
    for (size_t i = 0; i < n && !stopping(); i++) {
        speculo_chunk c;
        int rc = g_fetch_id(r, ids[i], &c, NULL);
        if (rc == SFS_FAULT)
            *broken = 1;
        alive[i] = rc == 0;
    }
}

/*
 * Mark which of @ids are live by one walk of the records from the least to
 * the greatest: the live ones are those next() returns. @ids (unsorted)
 * span [lo, lo + span): a bitmap of the span says which are asked about.
 */
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

/*
 * Put the ids of @ids[0..n) that are not live chunks of @seg first, and
 * return how many they are; the live ones follow. Many names held over a
 * small range of ids (after an `ls -l` of the segment) are checked by one
 * walk of that range (100,000 in about 15 ms), a few by a lookup each (1.5
 * us, but 100,000 of them take 170 ms). If a reader turns out to be on
 * another incarnation, all of them go.
 */
static size_t keep_dead(uint64_t *ids, size_t n, const struct sfs_seg *seg, struct watcher *w,
                        int *broken)
{
    unsigned char *alive;
    uint64_t lo = UINT64_MAX, hi = 0;
    size_t k = 0;

    if (n == 0)
        return 0;
    alive = calloc(n, 1);
    if (alive == NULL)
        return n; /* cannot tell: all of them go */
    for (size_t i = 0; i < n; i++) {
        lo = ids[i] < lo ? ids[i] : lo;
        hi = ids[i] > hi ? ids[i] : hi;
    }
    if (n >= 64 && hi - lo < 8 * (uint64_t)n &&
        (w->scan != NULL || g_reader_open(seg->name, &w->scan) == 0)) {
        live_by_walk(ids, n, lo, hi - lo + 1, alive, w->scan, broken);
        *broken |= !reader_on(seg, w->scan);
    } else {
        live_by_lookup(ids, n, alive, w->r, broken);
        *broken |= !reader_on(seg, w->r);
    }
    for (size_t i = 0; i < n; i++)
        if (*broken || !alive[i]) {
            uint64_t t = ids[k];
            ids[k++] = ids[i];
            ids[i] = t;
            alive[i] = alive[k - 1];
        }
    free(alive);
    return k;
}

/*
 * Which names does the kernel hold: of @ids[0..n) (kept in place), or with
 * @all, every unnamed chunk of @seg (into a new *ids). Read under `hand`,
 * exclusively: every name a reply gave before is in the table, and every
 * reply after checked its chunk after the obsoletion that woke us (see the
 * top of this file). The checks and notifications come after, with no
 * lock held: lookups wait only for this copy.
 */
static size_t held(struct sfs_seg *seg, uint64_t **ids, size_t n, int all)
{
    pthread_rwlock_wrlock(&seg->hand);
    if (all)
        n = nodes_unnamed(seg->slot, ids);
    else
        n = keep_held(*ids, n, seg->slot);
    pthread_rwlock_unlock(&seg->hand);
    return n;
}

/* Every unnamed chunk name the kernel holds: invalidate those dead. 1
 * when a reader can no longer be trusted. */
static int inval_all_dead(struct sfs_seg *seg, struct watcher *w)
{
    uint64_t *ids = NULL;
    int broken = 0;
    size_t n = held(seg, &ids, 0, 1);

    if (n == SIZE_MAX)
        return 1; /* out of memory: retire() tries again */
    n = keep_dead(ids, n, seg, w, &broken);
    inval_chunks(seg, ids, n);
    free(ids);
    return broken;
}

/*
 * The chunks replaced by the commits read (w->pend): invalidate those the
 * kernel holds that are dead. One found live is kept for the next round:
 * a commit is visible before the writer marks what it replaced (it marks
 * it just after), and the count that then wakes us again guarantees the
 * mark is visible.
 */
static int inval_replaced(struct sfs_seg *seg, struct watcher *w)
{
    int broken = 0;
    size_t n = w->npend > 0 ? held(seg, &w->pend, w->npend, 0) : 0;
    size_t k = keep_dead(w->pend, n, seg, w, &broken);

    inval_chunks(seg, w->pend, k);
    if (n > k)
        memmove(w->pend, w->pend + k, (n - k) * sizeof *w->pend);
    w->npend = broken ? 0 : n - k;
    return broken;
}

/* ------------------------------------------------------------------ */
/* watchers: one per segment incarnation whose chunk names are cached  */

/* Append @id to a growing array; on failure it is cut short, and the
 * caller falls back to a full check. */
static int push_id(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        uint64_t *nv = realloc(*v, nc * sizeof *nv);
        if (nv == NULL)
            return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = id;
    return 0;
}

/* Read the chunks committed since the last call: the ids they replaced
 * join w->pend (each commit that replaced one obsoleted it); *explained
 * counts them. 0 or the reader's error (-ENOENT: the segment is gone). */
static int drain(struct watcher *w, size_t *explained, int *overflow)
{
    char name[SPECULO_CHUNK_NAME_MAX + 1];
    struct sfs_meta m;
    int rc;

    while ((rc = g_next_meta(w->r, &m, name, sizeof name)) == 0) {
        if (m.replaces == 0)
            continue;
        (*explained)++;
        if (push_id(&w->pend, &w->npend, &w->cappend, m.replaces) != 0)
            *overflow = 1;
    }
    return rc == -EAGAIN ? 0 : rc;
}

/*
 * One round of a watcher, after speculo_reader_watch() reported @ev.
 * Obsoletions that a commit explains (its replaces field) are checked one
 * by one; any other (an explicit obsoletion, a second one by the same
 * commit) or a move (several GC switches at once) makes a check of every
 * name held. A single GC switch is neither: the library counts across it.
 * w->balance carries the obsoletions reported but not explained yet: a
 * commit may be read before the count that includes it is (its count is
 * published just after), and is then explained before it is reported.
 * Returns why the watcher must stop, or NULL.
 */
static const char *watch_round(struct sfs_seg *seg, struct watcher *w,
                               const struct speculo_watch *ev)
{
    size_t explained = 0;
    int overflow = 0, broken = 0;
    int rc = drain(w, &explained, &overflow);

    if (rc == 0 && !reader_on(seg, w->r))
        rc = -ENOENT; /* the reader followed the name to another incarnation */
    if (rc != 0)
        return rc == -ENOENT ? "removed or replaced" : speculo_strerror(rc);
    w->balance += (int64_t)(ev->obsoleted > INT32_MAX ? INT32_MAX : ev->obsoleted);
    w->balance -= (int64_t)explained;
    if (ev->moved || overflow || w->balance > 0) {
        w->balance = 0;
        broken = inval_all_dead(seg, w);
    }
    if (!broken)
        broken = inval_replaced(seg, w);
    return broken ? "the reader faulted or moved" : NULL;
}

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    const char *why = NULL;

    while (why == NULL && !stopping() && follow_state(w->seg) != SFS_FOLLOW_OFF) {
        struct speculo_watch ev;
        int rc = g_watch(w->r, -1, &ev);
        if (rc == -EINTR || stopping())
            continue;
        if (rc != 0)
            why = speculo_strerror(rc);
        else
            why = watch_round(w->seg, w, &ev);
    }
    if (why != NULL && !stopping())
        retire(w->seg, why);
    g_reader_close(w->r);
    g_reader_close(w->scan);
    w->r = w->scan = NULL;
    free(w->pend);
    w->pend = NULL;
    /* publishes: the thread is ending and touches nothing more */
    atomic_store_explicit(&w->done, 1, memory_order_release);
    return NULL;
}

/* Locked. Join the watchers that ended, freeing their places. */
static void sweep_done(void)
{
    struct watcher **pp = &W.watchers;

    while (*pp != NULL) {
        struct watcher *w = *pp;
        /* observes: the thread touches nothing more */
        if (atomic_load_explicit(&w->done, memory_order_acquire)) {
            pthread_join(w->thread, NULL);
            *pp = w->next;
            W.nwatchers--;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* Can the library's wait sleep on the segment's futex? Only with write
 * access to the file (it counts itself as a waiter); without, it would
 * check every millisecond, and the segment is better left unfollowed. */
static int can_sleep_on(const struct sfs_seg *seg)
{
    char path[PATH_MAX];

    if (snprintf(path, sizeof path, "%s/%s", segtab_dir(), seg->name) >= (int)sizeof path)
        return 0;
    return faccessat(AT_FDCWD, path, W_OK, AT_EACCESS) == 0;
}

/* Locked. A reader for the watcher, positioned after everything committed
 * so far. Obsoletions are counted from its open on: before the caller's
 * check that a chunk is live, as the caller needs. */
static int watch_reader(struct sfs_seg *seg, speculo_reader **out)
{
    struct speculo_segment_ident id;
    speculo_reader *r;
    int rc = can_sleep_on(seg) ? g_reader_open(seg->name, &r) : -EACCES;

    if (rc != 0)
        return rc;
    if (speculo_reader_ident(r, &id) != 0 || !seg_same(seg, &id))
        rc = -ENOENT;
    if (rc == 0)
        rc = g_seek(r, UINT64_MAX);
    if (rc != 0) {
        g_reader_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

/*
 * Our threads take no signal meant for the process (SIGTERM and the like
 * must reach libfuse's loop, which ends on them) but WAKE_SIGNAL and the
 * synchronous ones (SIGBUS: see guard.c). @stack: 0 for the default. A
 * watcher's calls are shallow (the library's wait, a notification): a
 * small stack, so that many followed segments cost little.
 */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg, size_t stack)
{
    static const int keep[] = {WAKE_SIGNAL, SIGBUS,  SIGSEGV, SIGFPE,
                               SIGILL,      SIGTRAP, SIGABRT, SIGSYS};
    sigset_t all, old;
    pthread_attr_t a;
    int rc = pthread_attr_init(&a);

    if (rc != 0)
        return rc;
    if (stack != 0)
        rc = pthread_attr_setstacksize(&a, stack);
    sigfillset(&all);
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        sigdelset(&all, keep[i]);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (rc == 0)
        rc = pthread_create(t, &a, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    return rc;
}

/* Locked. Interrupt the waits of watchers whose segment is no longer
 * followed. A signal that comes just before a thread enters its wait is
 * lost: this is repeated after every batch of inotify events and at stop. */
static void kick_retired(void)
{
    for (struct watcher *w = W.watchers; w != NULL; w = w->next)
        /* observes: the thread touches nothing more */
        if (!atomic_load_explicit(&w->done, memory_order_acquire) &&
            follow_state(w->seg) == SFS_FOLLOW_OFF)
            pthread_kill(w->thread, WAKE_SIGNAL);
}

/* Locked. The state is published once the thread runs (it runs while
 * the state is not SFS_FOLLOW_OFF). */
static int start_watcher(struct sfs_seg *seg)
{
    struct watcher *w;
    int rc;

    sweep_done();
    if (W.nwatchers >= MAX_WATCHERS)
        return -EAGAIN;
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    rc = watch_reader(seg, &w->r);
    if (rc != 0) {
        free(w);
        /* the name holds another file, or none; or one we cannot wait on */
        set_follow(seg, SFS_FOLLOW_OFF);
        return rc;
    }
    w->seg = seg;
    atomic_init(&w->done, 0);
    rc = spawn(&w->thread, watch_main, w, WATCHER_STACK);
    if (rc != 0) {
        g_reader_close(w->r);
        free(w);
        return -rc;
    }
    w->next = W.watchers;
    W.watchers = w;
    W.nwatchers++;
    /* publishes: chunk names may be cached; not over a retire() that came
     * meanwhile (the thread then ends at its next wake-up) */
    int none = SFS_FOLLOW_NONE;
    atomic_compare_exchange_strong_explicit(&seg->follow, &none, SFS_FOLLOW_ACTIVE,
                                            memory_order_acq_rel, memory_order_acquire);
    return 0;
}

/*
 * Before a reply gives a chunk name of @seg a positive timeout: make sure
 * a watcher follows the segment, counting obsoletions from now on. The
 * caller checks that the chunk is live after this returns, and looks at
 * seg->follow again under `hand` (a watcher may stop meanwhile).
 */
int notify_follow(struct sfs_seg *seg)
{
    int rc = 0;

    if (W.se == NULL || stopping() || seg->bad)
        return -1;
    if (follow_state(seg) == SFS_FOLLOW_ACTIVE)
        return 0;
    pthread_mutex_lock(&W.lock);
    if (follow_state(seg) == SFS_FOLLOW_NONE)
        rc = start_watcher(seg);
    pthread_mutex_unlock(&W.lock);
    return rc == 0 && follow_state(seg) == SFS_FOLLOW_ACTIVE ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* the segment directory: inotify                                      */

/* An incarnation died: the root's name for it, and its chunk names. */
static void reap(void)
{
    struct sfs_seg **dead;
    size_t n;

    segtab_root_hand(1);
    n = segtab_take_dead(&dead);
    segtab_root_unhand();
    for (size_t i = 0; i < n; i++) {
        inval_name(FUSE_ROOT_ID, dead[i]->name);
        retire(dead[i], NULL);
    }
    free(dead);
    pthread_mutex_lock(&W.lock);
    kick_retired();
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
    pthread_rwlock_wrlock(&seg->hand);
    n = nodes_set_owner(seg->slot, &st, &inos);
    pthread_rwlock_unlock(&seg->hand);
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
    char **names;
    size_t n;

    segtab_changed(NULL);
    if (segtab_current(&names, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        recheck(names[i]);
    segtab_free_list(names, n);
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

static void on_wake(int sig)
{
    (void)sig; /* only to interrupt a watcher's futex wait (EINTR) */
}

/* No SA_RESTART: a watcher's wait must return -EINTR. */
static int install_wake(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_wake;
    sigemptyset(&sa.sa_mask);
    return sigaction(WAKE_SIGNAL, &sa, NULL) == 0 ? 0 : -errno;
}

static int start_inotify(void)
{
    W.ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (W.ifd < 0)
        return -errno;
    if (inotify_add_watch(W.ifd, segtab_dir(), INOTIFY_MASK) < 0)
        return -errno;
    W.efd = eventfd(0, EFD_CLOEXEC);
    if (W.efd < 0)
        return -errno;
    segtab_verify_enable(1);
    /* publishes: the watch is in place before any name is cached */
    atomic_store_explicit(&W.root_ok, 1, memory_order_release);
    if (spawn(&W.ithread, inotify_main, NULL, 0) != 0) {
        lose_watch();
        return -EAGAIN;
    }
    W.ithread_on = 1;
    return 0;
}

/* Start after the session is mounted (and daemonized: threads do not
 * survive a fork). Failing to watch only means timeouts of 0. */
int notify_start(struct fuse_session *se)
{
    int rc = install_wake();

    if (rc != 0)
        return rc;
    W.se = se;
    rc = start_inotify();
    if (rc != 0 && sfs_debug)
        fuse_log(FUSE_LOG_DEBUG, "speculofs: no inotify on %s (%s): segment names are not cached\n",
                 segtab_dir(), strerror(-rc));
    return 0;
}

/* Interrupt @w's wait until its thread ends, for at most about 2 s: a
 * thread still inside fuse_lowlevel_notify_inval_entry() when the mount is
 * gone may take until the device is closed. 0 when joined. */
static int end_watcher(struct watcher *w)
{
    for (int i = 0; i < 200; i++) {
        struct timespec ts;
        /* observes: the thread touches nothing more */
        if (atomic_load_explicit(&w->done, memory_order_acquire))
            return pthread_join(w->thread, NULL);
        pthread_kill(w->thread, WAKE_SIGNAL);
        ts.tv_sec = 0;
        ts.tv_nsec = 10L * 1000000;
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* After the loop ended and the mount is gone. A thread that does not end
 * is left behind with what it uses (the process is about to exit): the
 * number of those is returned, and the caller must not free the tables. */
int notify_stop(void)
{
    uint64_t one = 1;
    int left = 0;

    if (W.se == NULL)
        return 0;
    /* publishes: no notification is sent from now on */
    atomic_store_explicit(&W.stop, 1, memory_order_release);
    if (W.ithread_on && write(W.efd, &one, sizeof one) == sizeof one)
        pthread_join(W.ithread, NULL);
    pthread_mutex_lock(&W.lock);
    while (W.watchers != NULL) {
        struct watcher *w = W.watchers;
        W.watchers = w->next;
        if (end_watcher(w) == 0)
            free(w);
        else
            left++;
    }
    W.nwatchers = 0;
    pthread_mutex_unlock(&W.lock);
    if (W.ifd >= 0)
        close(W.ifd);
    if (W.efd >= 0)
        close(W.efd);
    W.ifd = W.efd = -1;
    return left;
}
