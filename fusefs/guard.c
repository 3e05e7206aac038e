/*
 * Surviving a segment file truncated under our mappings.
 *
 * Touching a page of a shared mapping that lies past the end of its file
 * raises SIGBUS. Another process may truncate a segment file at any time,
 * and the server must not die of it: every access to a mapping (ours, or
 * the library's inside its calls) runs under guard_call(), which arms a
 * per-thread jump buffer. The SIGBUS handler jumps back to it, and the
 * caller gets SFS_FAULT, which the operations turn into EIO.
 *
 * A fault inside a library call abandons that call half-way: the reader it
 * was using is closed, never reused (see seg_reader_give()). A SIGBUS that
 * is not under a guard is a real bug and kills the process as usual.
 */
#include <setjmp.h>
#include <signal.h>
#include <string.h>

#include "sfs.h"

static _Thread_local sigjmp_buf *t_jump;
static _Thread_local int t_unblocked;

static void on_sigbus(int sig, siginfo_t *si, void *uctx)
{
    sigjmp_buf *jb = t_jump;

    (void)si;
    (void)uctx;
    if (jb != NULL) {
        t_jump = NULL;
        siglongjmp(*jb, 1);
    }
    /* Not ours: the faulting access runs again and dies of the default. */
    signal(sig, SIG_DFL);
}

/* SA_NODEFER: SIGBUS stays unblocked in the handler, so that jumping out
 * of it (without restoring a saved mask, which costs a system call per
 * guard) leaves the thread able to take the next one. */
int guard_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, NULL) != 0)
        return -errno;
    return 0;
}

/* A synchronous SIGBUS in a thread that blocks it kills the process
 * whatever the handler; make sure this thread does not (once per thread). */
static void unblock_sigbus(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    t_unblocked = 1;
}

int guard_call(int (*fn)(void *), void *arg)
{
    sigjmp_buf jb;
    sigjmp_buf *prev = t_jump;
    int rc;

    if (!t_unblocked)
        unblock_sigbus();
    if (sigsetjmp(jb, 0) != 0) {
        t_jump = prev;
        return SFS_FAULT;
    }
    t_jump = &jb;
    rc = fn(arg);
    t_jump = prev;
    return rc;
}

/* Arguments of the guarded calls below, one struct for all of them. */
struct g_args {
    speculo_reader *r;
    speculo_reader **out;
    const char *name;
    uint64_t id;
    speculo_chunk *chunk;
    uint64_t *replaces;
    struct speculo_segment_info *info;
    struct sfs_meta *meta;
    struct speculo_watch *ev;
    struct speculo_wait_item *items;
    speculo_wakeup *wk;
    unsigned flags;
    char *buf;
    size_t size;
    const void *p;
};

static int do_reader_open(void *v)
{
    struct g_args *a = v;
    return speculo_reader_open_at(segtab_dir(), a->name, 0, a->out);
}

int g_reader_open(const char *segment, speculo_reader **out)
{
    struct g_args a = {.name = segment, .out = out};
    return guard_call(do_reader_open, &a);
}

/* The replaced id is read while the chunk is surely valid: right after the
 * call that found it, under the same guard. */
static int do_fetch(void *v)
{
    struct g_args *a = v;
    int rc;

    if (a->name != NULL)
        rc = speculo_reader_get(a->r, a->name, a->chunk);
    else
        rc = speculo_reader_get_id(a->r, a->id, a->chunk);
    if (rc == 0 && a->replaces != NULL)
        *a->replaces = speculo_chunk_replaces(a->chunk);
    return rc;
}

int g_fetch_name(speculo_reader *r, const char *name, speculo_chunk *c, uint64_t *replaces)
{
    struct g_args a = {.r = r, .name = name, .chunk = c, .replaces = replaces};
    return guard_call(do_fetch, &a);
}

int g_fetch_id(speculo_reader *r, uint64_t id, speculo_chunk *c, uint64_t *replaces)
{
    struct g_args a = {.r = r, .id = id, .chunk = c, .replaces = replaces};
    return guard_call(do_fetch, &a);
}

static int do_fetch_version(void *v)
{
    struct g_args *a = v;
    return speculo_reader_get_version(a->r, a->id, a->flags, a->chunk);
}

int g_fetch_version(speculo_reader *r, uint64_t id, unsigned flags, speculo_chunk *c)
{
    struct g_args a = {.r = r, .id = id, .flags = flags, .chunk = c};
    return guard_call(do_fetch_version, &a);
}

/* A reader that faulted may be half-way through a call; closing it may
 * touch the mapping again, hence the guard. NULL is a no-op. */
static int do_close(void *r)
{
    speculo_reader_close(r);
    return 0;
}

void g_reader_close(speculo_reader *r)
{
    if (r != NULL)
        (void)guard_call(do_close, r);
}

static int do_seek(void *v)
{
    struct g_args *a = v;
    return speculo_reader_seek(a->r, a->id);
}

int g_seek(speculo_reader *r, uint64_t after_id)
{
    struct g_args a = {.r = r, .id = after_id};
    return guard_call(do_seek, &a);
}

/* For readdir: the chunk's attributes, and the name it shows under (its
 * name, else its padded id), copied out of the mapping while still under
 * the guard. An over-long name (a hostile file) comes out empty: the
 * caller skips it. */
static int do_next_meta(void *v)
{
    struct g_args *a = v;
    speculo_chunk c;
    int rc = speculo_reader_next(a->r, &c);

    if (rc != 0)
        return rc;
    memset(a->meta, 0, sizeof *a->meta);
    a->meta->id = c.id;
    a->meta->named = c.name != NULL;
    a->meta->size = c.size;
    a->meta->replaces = speculo_chunk_replaces(&c);
    a->meta->committed_ns = c.committed_ns;
    a->meta->expires_ns = c.expires_ns;
    if (c.name == NULL) {
        if (a->size > SFS_IDNAME_LEN)
            sfs_idname(a->buf, c.id);
        else
            a->buf[0] = '\0';
    } else {
        size_t n = strnlen(c.name, a->size);
        if (n == a->size)
            n = 0;
        memcpy(a->buf, c.name, n);
        a->buf[n] = '\0';
    }
    return 0;
}

int g_next_meta(speculo_reader *r, struct sfs_meta *m, char *name, size_t size)
{
    struct g_args a = {.r = r, .meta = m, .buf = name, .size = size};
    return guard_call(do_next_meta, &a);
}

/* What a watch reports now (no waiting): it reads the header and the
 * record at the reader's position. -ETIMEDOUT: nothing. */
static int do_watch(void *v)
{
    struct g_args *a = v;
    return speculo_reader_watch(a->r, 0, a->ev);
}

int g_watch(speculo_reader *r, struct speculo_watch *ev)
{
    struct g_args a = {.r = r, .ev = ev};
    return guard_call(do_watch, &a);
}

/* A wait for ever (until news, or @wk). A fault does not say whose
 * mapping it was. */
static int do_wait(void *v)
{
    struct g_args *a = v;
    return speculo_wait(a->items, a->size, a->wk, -1);
}

int g_wait(struct speculo_wait_item *items, size_t n, speculo_wakeup *wk)
{
    struct g_args a = {.items = items, .size = n, .wk = wk};
    return guard_call(do_wait, &a);
}

static int do_info(void *v)
{
    struct g_args *a = v;
    return speculo_reader_info(a->r, a->info);
}

int g_info(speculo_reader *r, struct speculo_segment_info *info)
{
    struct g_args a = {.r = r, .info = info};
    return guard_call(do_info, &a);
}

static int do_describe(void *v)
{
    struct g_args *a = v;
    return speculo_segment_describe_at(segtab_dir(), a->name, a->buf, a->size);
}

int g_describe(const char *segment, char *buf, size_t size)
{
    struct g_args a = {.name = segment, .buf = buf, .size = size};
    return guard_call(do_describe, &a);
}

/* Touch one byte of every page of [p, p+len): if the file behind any of
 * them was truncated away, the fault happens here, under the guard, not
 * later. The kernel's copy out of the range in fuse_reply_buf() fails
 * cleanly (EFAULT, the request ends in EIO) if the file shrinks after. */
static int do_probe(void *v)
{
    struct g_args *a = v;
    const volatile unsigned char *q = a->p;
    const volatile unsigned char *end = q + a->size;
    unsigned sum = 0;

    for (; q < end; q += 4096)
        sum += *q;
    sum += end[-1];
    return (int)(sum & 0);
}

int g_probe(const void *p, size_t len)
{
    struct g_args a = {.p = p, .size = len};

    if (len == 0)
        return 0;
    return guard_call(do_probe, &a);
}
