/*
 * Wake-ups. The writer wakes only when a reader has said it is waiting:
 *
 *   writer:  commit word := len (release); fence(seq_cst); load waiters;
 *            if waiters: wake_seq += 1; futex_wake(wake_seq)
 *   reader:  waiters += 1; fence(seq_cst); s := wake_seq; check commit word;
 *            if nothing new: futex_wait(wake_seq, s)
 *
 * With a full fence on each side, either the writer sees the waiter, or
 * the reader sees the commit (the store-buffering outcome where neither
 * sees the other is forbidden). If the writer bumps wake_seq after the
 * reader read it, futex_wait returns at once. A writer with no waiting
 * reader pays one fence and one load of a line that stays in its cache.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void wake_waiters(struct seg_header *h)
{
    atomic_thread_fence(memory_order_seq_cst);
    /* observes: readers that registered before our commit's fence */
    if (atomic_load_explicit(&h->waiters, memory_order_relaxed) == 0)
        return;
    /* publishes: a new wake generation; waiters compare against it */
    atomic_fetch_add_explicit(&h->wake_seq, 1, memory_order_release);
    syscall(SYS_futex, &h->wake_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Sleep on a shared futex word while it holds `expected`. Shared (not
 * FUTEX_PRIVATE) because the writer wakes through its own mapping of the
 * same file. 0 woken or value changed, -ETIMEDOUT, -EINTR. */
int futex_wait_shared(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    if (syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0) == 0)
        return 0;
    if (errno == EAGAIN)
        return 0;
    return errno == ETIMEDOUT ? -ETIMEDOUT : errno == EINTR ? -EINTR : -errno;
}
