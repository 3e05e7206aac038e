/*
 * Waiting: both halves of the protocol, and waits on several readers with
 * an interruption from outside.
 *
 * The writer wakes only when a reader has said it is waiting. Both sides
 * meet on one atomic, `waiters`, with read-modify-writes:
 *
 *   writer:  commit word := len (release); w := fetch_add(waiters, 0);
 *            if w: wake_seq += 1; futex_wake(wake_seq)
 *   reader:  fetch_add(waiters, 1); s := wake_seq; check commit word;
 *            if nothing new: futex_wait(wake_seq, s); fetch_sub(waiters, 1)
 *
 * The two RMWs on `waiters` are ordered one way or the other. If the
 * reader's comes first, the writer reads a waiter and wakes. If the
 * writer's comes first, the reader's RMW reads from it (acquire after
 * release), so the commit stored before it is visible to the reader's
 * check. If the writer bumps wake_seq after the reader read it, the futex
 * wait returns at once. No fences are needed, which also keeps the
 * protocol visible to ThreadSanitizer.
 *
 * The writer's RMW waits for its commit to leave its store buffer: in a
 * stream of commits that a busy reader follows, it is what keeps the
 * writer from running ahead. So it is made only once a reader has waited
 * on the file (`wait_armed`); until then a writer whose process is
 * registered for membarrier(2) loads `wait_armed` (and `waiters`) plainly.
 * A reader about to wait on a file for the first time makes the barrier
 * for both sides:
 *
 *   reader:  wait_armed := ARMING; membarrier(GLOBAL_EXPEDITED);
 *            wait_armed := ARMED; then as above
 *   writer:  commit word := len; if wait_armed or waiters: as above
 *
 * membarrier() returns once every thread of every registered process has
 * passed a full barrier. A commit whose load of `wait_armed` saw 0 made
 * that load before the writer's barrier (after it, the reader's store is
 * visible), so its commit word, stored before the load, is visible by the
 * time membarrier() returns and the reader looks. "Stored before the load"
 * must hold in the program as compiled: a compiler fence keeps the load
 * after the release store (internal.h). Commits that see the file armed
 * make the RMW. A reader that finds it ARMED needs no barrier
 * of its own: it was made after the file was marked. A reader that cannot
 * make the barrier (no membarrier: Linux before 4.16, a seccomp filter)
 * registers and sleeps in slices of at most SLICE_NS, as one that cannot
 * register does.
 *
 * A wait on several readers registers on each, and sleeps on all their
 * futex words at once (futex_waitv), plus the word of a speculo_wakeup,
 * which another thread or a signal handler sets to end the wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "reader.h"

#define SLICE_NS 1000000 /* the sleep of a reader that cannot register */

struct speculo_wakeup {
    _Atomic uint32_t word; /* 1 once signalled, until cleared; a private futex */
};

/* ---- the writer's half ------------------------------------------------ */

/* The look at `waiters` is speculo__wake_waiters(), inline in internal.h
 * (every commit makes it); this is the rest, when someone waits. */
bool speculo__wait_register_writer(void)
{
    /* once per process; later calls return at once */
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}

void speculo__wake(struct seg_header *h)
{
    /* publishes: a new wake generation; waiters compare against it */
    atomic_fetch_add_explicit(&h->wake_seq, 1, memory_order_release);
    syscall(SYS_futex, &h->wake_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- wakeups ------------------------------------------------------------ */

int speculo_wakeup_create(speculo_wakeup **out)
{
    if (!out)
        return -EINVAL;
    speculo_wakeup *wk = calloc(1, sizeof *wk);
    if (!wk)
        return -ENOMEM;
    *out = wk;
    return 0;
}

void speculo_wakeup_destroy(speculo_wakeup *wk)
{
    free(wk);
}

/* Async-signal-safe: one atomic exchange and, the first time, one system
 * call; errno is kept for the interrupted code. */
void speculo_wakeup_signal(speculo_wakeup *wk)
{
    if (!wk)
        return;
    /* publishes: the wakeup, to waits that load it before sleeping */
    if (atomic_exchange_explicit(&wk->word, 1, memory_order_release) == 0) {
        int saved = errno;
        syscall(SYS_futex, &wk->word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        errno = saved;
    }
}

int speculo_wakeup_clear(speculo_wakeup *wk)
{
    if (!wk)
        return -EINVAL;
    /* observes: a signal; clears it for the next waits */
    return (int)atomic_exchange_explicit(&wk->word, 0, memory_order_acq_rel);
}

static bool wakeup_set(speculo_wakeup *wk)
{
    /* observes: speculo_wakeup_signal() */
    return wk && atomic_load_explicit(&wk->word, memory_order_acquire);
}

/* ---- one reader's news ------------------------------------------------- */

/* Is a record committed at our position (or has the segment moved on)?
 * With `watch`, also: did the reader move, or was a chunk obsoleted since
 * the last speculo_reader_watch() report? */
static bool reader_pending(const speculo_reader *r, bool watch)
{
    if (watch && (r->moved || r->obs_pending || r_obsolete_count(r) != r->obs_seen))
        return true;
    if (r->pos <= r->map.size - REC_HEADER_SIZE) {
        const struct rec_header *rec = (const struct rec_header *)(r->map.base + r->pos);
        /* observes: a commit at our position */
        if (atomic_load_explicit(&((struct rec_header *)rec)->commit, memory_order_acquire))
            return true;
    }
    return r_superseded(r);
}

/* Arm the file for waiting (see the top of this file): true once every
 * commit checks `waiters` with a read-modify-write. */
static bool arm_file(struct seg_header *wh)
{
    /* observes: the mark of a reader whose barrier is made */
    if (atomic_load_explicit(&wh->wait_armed, memory_order_acquire) == WAIT_ARMED)
        return true;
    uint32_t none = 0;
    /* publishes: "readers wait here", to commits after our barrier */
    atomic_compare_exchange_strong_explicit(&wh->wait_armed, &none, WAIT_ARMING,
                                            memory_order_seq_cst, memory_order_relaxed);
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) != 0)
        return false;
    /* publishes: the barrier is made, later readers need none */
    atomic_store_explicit(&wh->wait_armed, WAIT_ARMED, memory_order_release);
    return true;
}

/* Map the header page writable so that we can count ourselves as a waiter,
 * and arm the file. Without write access to the file we wait by sleeping
 * instead. */
static void map_wait_header(speculo_reader *r)
{
    if (r->whdr || r->wait_fallback)
        return;
    int dirfd, fd;
    struct stat st;
    r->wait_fallback = true;
    if (speculo__dir_open(&r->dir, false, &dirfd) < 0)
        return;
    int rc = speculo__ns_open_segment(dirfd, r->segment, true, &fd, &st);
    close(dirfd);
    if (rc < 0)
        return;
    if (st.st_dev == r->map.dev && st.st_ino == r->map.ino) {
        void *p = mmap(NULL, SEG_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            r->whdr = p;
            r->wait_fallback = false;
            r->wait_unarmed = !arm_file(r->whdr);
        }
    }
    close(fd);
}

void speculo__reader_drop_wait(speculo_reader *r)
{
    if (r->whdr)
        munmap(r->whdr, SEG_HEADER_SIZE);
    r->whdr = NULL;
    r->wait_fallback = false;
    r->wait_unarmed = false;
}

enum news { NEWS, QUIET, SLICE };

/* What a reader has before its wait sleeps: news; none, and it can sleep
 * on its futex; none, but it can only sleep in slices (no write access to
 * register, or a switch half done). */
static enum news reader_news(speculo_reader *r, bool watch)
{
    if (r->gone || r_superseded(r)) {
        if (r->flags & SPECULO_READER_PINNED)
            return NEWS; /* its file will see no more commits */
        if (speculo__reader_switch(r) != 0)
            return NEWS; /* switched, removed or unreadable: next() says which */
        return SLICE;    /* marked but not yet renamed: microseconds away */
    }
    if (reader_pending(r, watch))
        return NEWS;
    map_wait_header(r);
    return r->whdr && !r->wait_unarmed ? QUIET : SLICE;
}

/* ---- sleeping ------------------------------------------------------------ */

static int64_t remaining_ns(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - speculo__clock_mono_ns();
    return left > 0 ? left : 0;
}

static struct timespec ts_of(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    return ts;
}

/* Sleep on the futex words of @v until one changes, is woken, or @left ns
 * (negative: for ever) pass. 0, or -EINTR. */
static int sleep_on(struct futex_waitv *v, unsigned k, int64_t left)
{
    struct timespec abs, rel, *at = NULL;
    if (left >= 0) {
        abs = ts_of(speculo__clock_mono_ns() + left);
        rel = ts_of(left);
        at = &abs;
    }
    long rc = k ? syscall(SYS_futex_waitv, v, k, 0, at, CLOCK_MONOTONIC) : -1;
    if (k == 0 || (rc < 0 && errno == ENOSYS)) {
        /* no futex_waitv (Linux before 5.16): one word, or slices */
        if (k == 1)
            rc = syscall(SYS_futex, (void *)(uintptr_t)v[0].uaddr,
                         (v[0].flags & FUTEX_PRIVATE_FLAG) ? FUTEX_WAIT_PRIVATE : FUTEX_WAIT,
                         (uint32_t)v[0].val, at ? &rel : NULL, NULL, 0);
        else {
            struct timespec slice = ts_of(left >= 0 && left < SLICE_NS ? left : SLICE_NS);
            rc = nanosleep(&slice, NULL);
        }
    }
    return rc < 0 && errno == EINTR ? -EINTR : 0;
}

/*
 * Register on every reader that can, sleep, unregister. The news is
 * checked again after registering (see the protocol above), so a commit
 * is never slept through.
 */
static int sleep_all(struct speculo_wait_item *items, size_t n, speculo_wakeup *wk, int64_t left)
{
    struct futex_waitv v[SPECULO_WAIT_MAX + 1] = {0};
    bool reg[SPECULO_WAIT_MAX] = {0};
    bool news = false;
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
        struct seg_header *w = items[i].reader->whdr;
        if (!w)
            continue;
        /* publishes: we wait; acquires the commits of writers that looked
         * before us */
        atomic_fetch_add_explicit(&w->waiters, 1, memory_order_acq_rel);
        reg[i] = true;
        /* observes: the wake generation before we check for news */
        v[k].val = atomic_load_explicit(&w->wake_seq, memory_order_acquire);
        v[k].uaddr = (uintptr_t)&w->wake_seq;
        v[k++].flags = FUTEX_32; /* shared: the writer wakes through its own mapping */
        news = news || reader_pending(items[i].reader, items[i].events & SPECULO_WAIT_WATCH);
    }
    if (wk) {
        v[k].val = 0;
        v[k].uaddr = (uintptr_t)&wk->word;
        v[k++].flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
    }
    int rc = news || wakeup_set(wk) ? 0 : sleep_on(v, k, left);
    for (size_t i = 0; i < n; i++) {
        if (reg[i])
            /* publishes: we no longer wait */
            atomic_fetch_sub_explicit(&items[i].reader->whdr->waiters, 1, memory_order_relaxed);
    }
    return rc;
}

int speculo_wait(struct speculo_wait_item *items, size_t n, speculo_wakeup *wk, int timeout_ms)
{
    if ((n && !items) || n > SPECULO_WAIT_MAX || (n == 0 && !wk))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].reader || (items[i].events & ~SPECULO_WAIT_WATCH))
            return -EINVAL;
    }
    int64_t deadline =
        timeout_ms < 0 ? -1 : speculo__clock_mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        if (wakeup_set(wk))
            return -ECANCELED;
        int ready = 0;
        bool slice = false;
        for (size_t i = 0; i < n; i++) {
            enum news st = reader_news(items[i].reader, items[i].events & SPECULO_WAIT_WATCH);
            items[i].ready = st == NEWS;
            ready += st == NEWS;
            slice = slice || st == SLICE;
        }
        if (ready)
            return ready;
        int64_t left = remaining_ns(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        if (slice && (left < 0 || left > SLICE_NS))
            left = SLICE_NS;
        if (sleep_all(items, n, wk, left) == -EINTR)
            return -EINTR;
    }
}

int speculo_reader_wait(speculo_reader *r, int timeout_ms)
{
    if (!r)
        return -EINVAL;
    struct speculo_wait_item item = {.reader = r};
    int rc = speculo_wait(&item, 1, NULL, timeout_ms);
    return rc < 0 ? rc : 0;
}

int speculo_reader_watch(speculo_reader *r, int timeout_ms, struct speculo_watch *ev)
{
    if (!r || !ev)
        return -EINVAL;
    struct speculo_wait_item item = {.reader = r, .events = SPECULO_WAIT_WATCH};
    int rc = speculo_wait(&item, 1, NULL, timeout_ms);
    if (rc < 0)
        return rc;
    uint64_t count = r_obsolete_count(r);
    struct speculo_watch w = {0};
    if (count < r->obs_seen)
        r->moved = true; /* counts only grow within a file: something rewrote it */
    else
        w.obsoleted = r->obs_pending + (count - r->obs_seen);
    w.moved = r->moved;
    r->obs_seen = count;
    r->obs_pending = 0;
    r->moved = false;
    *ev = w;
    return 0;
}
