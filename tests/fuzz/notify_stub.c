/*
 * fusefs/notify.c's interface, for in-process tests (fuzz_fs and its
 * replay), which link this instead: notify.c makes threads (notifiers, an
 * inotify thread) and talks to the kernel, neither of which an
 * in-process, deterministic test can have.
 *
 * What it pretends is chosen by the test (fz_notify_on): when on, every
 * readable segment is "followed" at once and the segment directory is
 * "watched", so the operations take their caching paths (entry timeouts,
 * entries_lock) exactly as with notify.c running; when off, as when
 * inotify or a notifier could not start. Nothing is ever
 * invalidated: the simulated kernel asks again for every name anyway.
 */
#include "notify_stub.h"
#include "sfs.h"

int fz_notify_on = 1;

int notify_start(struct fuse_session *se)
{
    (void)se;
    return 0;
}

int notify_stop(void)
{
    return 0;
}

/* As notify.c does once a notifier follows the segment. */
void notify_follow(struct sfs_seg *seg)
{
    if (!fz_notify_on || seg->bad)
        return;
    pthread_rwlock_wrlock(&seg->entries_lock);
    seg->follow = SFS_FOLLOW_ON;
    pthread_rwlock_unlock(&seg->entries_lock);
}

int notify_root_ok(void)
{
    return fz_notify_on;
}
