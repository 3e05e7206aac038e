/*
 * Wake-ups. The writer wakes only when a reader has said it is waiting.
 * Both sides meet on one atomic, `waiters`, with read-modify-writes:
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
 * check. If the writer bumps wake_seq after the reader read it, futex_wait
 * returns at once. No fences are needed, which also keeps the protocol
 * visible to ThreadSanitizer. A writer with no waiting reader pays one
 * locked add on a line that stays in its own cache.
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
    /* observes: registered readers; releases our commit to later ones */
    if (atomic_fetch_add_explicit(&h->waiters, 0, memory_order_acq_rel) == 0)
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
