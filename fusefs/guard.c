/* Surviving a segment file cut under our mappings: touching a page past the
 * end of its file raises SIGBUS, and any process may truncate a segment
 * file. Every access to a mapping (ours, or the library's inside its calls)
 * runs under guarded(), which arms a per-thread jump buffer; the SIGBUS
 * handler jumps back to it and the caller gets SFS_FAULT (EIO to the
 * kernel). A reader whose call was abandoned half-way is closed, never
 * reused (seg_reader_give()). A SIGBUS with no guard armed is a real bug:
 * it kills the process as usual. */
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

/* One guarded library call: which, and its arguments. */
struct g_call {
    enum {
        G_OPEN,
        G_CLOSE,
        G_GET,
        G_VERSION,
        G_RECORD,
        G_SEEK,
        G_NEXT,
        G_WATCH,
        G_WAIT,
        G_INFO,
        G_DESCRIBE,
        G_PROBE
    } op;
    speculo_reader *r;
    const char *name;
    uint64_t id;
    unsigned flags;
    speculo_chunk *chunk;
    uint64_t *replaces;
    void *any; /* the reader opened, info, watch report, wait items, meta */
    speculo_wakeup *wk;
    char *buf;
    size_t size;
    const void *p;
};

/* For a listing: the chunk's attributes, and the name it shows under (its
 * name, else its padded id), copied out of the mapping while still under
 * the guard. An over-long name (a hostile file) comes out empty: the
 * caller skips it. */
static int next_meta(struct g_call *a, struct sfs_meta *m)
{
    speculo_chunk c;
    int rc = speculo_reader_next(a->r, &c);
    size_t n;

    if (rc != 0)
        return rc;
    *m = sfs_meta_of(&c, speculo_chunk_replaces(&c));
    if (c.name == NULL) {
        sfs_idname(a->buf, c.id);
        return 0;
    }
    n = strnlen(c.name, a->size);
    n = n == a->size ? 0 : n;
    memcpy(a->buf, c.name, n);
    a->buf[n] = '\0';
    return 0;
}

/* Touch one byte of every page of [p, p+size): if the file behind any of
 * them was truncated away, the fault happens here, under the guard, not
 * later. The kernel's copy out of the range in fuse_reply_buf() fails
 * cleanly (EFAULT, the request ends in EIO) if the file shrinks after. */
static int probe(const volatile unsigned char *q, size_t size)
{
    const volatile unsigned char *end = q + size;
    unsigned sum = 0;

    for (; q < end; q += 4096)
        sum += *q;
    if (size > 0)
        sum += end[-1];
    return (int)(sum & 0);
}

static int call(struct g_call *a)
{
    struct speculo_record rec;
    int rc;

    switch (a->op) {
    case G_OPEN:
        return speculo_reader_open_at(segtab_dir(), a->name, 0, a->any);
    case G_CLOSE:
        speculo_reader_close(a->r);
        return 0;
    case G_GET: /* the replaced id is read while the chunk is surely valid */
        rc = a->name != NULL ? speculo_reader_get(a->r, a->name, a->chunk)
                             : speculo_reader_get_id(a->r, a->id, a->chunk);
        if (rc == 0 && a->replaces != NULL)
            *a->replaces = speculo_chunk_replaces(a->chunk);
        return rc;
    case G_VERSION:
        if (a->flags != SFS_GET_ANY)
            return speculo_reader_get_version(a->r, a->id, a->flags, a->chunk);
        rc = speculo_reader_get_record(a->r, a->id, &rec);
        if (rc == 0)
            *a->chunk = rec.chunk;
        return rc;
    case G_RECORD:
        return a->flags ? speculo_reader_walk(a->r, a->id, a->any)
                        : speculo_reader_get_record(a->r, a->id, a->any);
    case G_SEEK:
        return speculo_reader_seek(a->r, a->id);
    case G_NEXT:
        return next_meta(a, a->any);
    case G_WATCH:
        return speculo_reader_watch(a->r, 0, a->any);
    case G_WAIT:
        return speculo_wait(a->any, a->size, a->wk, -1);
    case G_INFO:
        return speculo_reader_info(a->r, a->any);
    case G_DESCRIBE:
        return speculo_segment_describe_at(segtab_dir(), a->name, a->buf, a->size);
    default:
        return probe(a->p, a->size);
    }
}

/* Run @a under the guard: SFS_FAULT if it touched a mapping cut under it. */
static int guarded(struct g_call *a)
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
    rc = call(a);
    t_jump = prev;
    return rc;
}

int g_reader_open(const char *segment, speculo_reader **out)
{
    return guarded(&(struct g_call){.op = G_OPEN, .name = segment, .any = out});
}

/* A reader that faulted may be half-way through a call; closing it may
 * touch the mapping again. NULL is a no-op. */
void g_reader_close(speculo_reader *r)
{
    if (r != NULL)
        (void)guarded(&(struct g_call){.op = G_CLOSE, .r = r});
}

/* The live chunk named @name, or (@name NULL) of id @id. */
int g_fetch(speculo_reader *r, const char *name, uint64_t id, speculo_chunk *c, uint64_t *replaces)
{
    return guarded(&(struct g_call){
        .op = G_GET, .r = r, .name = name, .id = id, .chunk = c, .replaces = replaces});
}

int g_fetch_version(speculo_reader *r, uint64_t id, unsigned flags, speculo_chunk *c)
{
    return guarded(&(struct g_call){.op = G_VERSION, .r = r, .id = id, .flags = flags, .chunk = c});
}

/* The record @id whatever its state; with @walk, the first after @id. */
int g_record(speculo_reader *r, uint64_t id, int walk, struct speculo_record *rec)
{
    return guarded(
        &(struct g_call){.op = G_RECORD, .r = r, .id = id, .flags = walk != 0, .any = rec});
}

int g_seek(speculo_reader *r, uint64_t after_id)
{
    return guarded(&(struct g_call){.op = G_SEEK, .r = r, .id = after_id});
}

/* @name: at least SFS_IDNAME_LEN + 1 bytes. */
int g_next_meta(speculo_reader *r, struct sfs_meta *m, char *name, size_t size)
{
    return guarded(&(struct g_call){.op = G_NEXT, .r = r, .any = m, .buf = name, .size = size});
}

/* What a watch reports now, without waiting; -ETIMEDOUT: nothing. */
int g_watch(speculo_reader *r, struct speculo_watch *ev)
{
    return guarded(&(struct g_call){.op = G_WATCH, .r = r, .any = ev});
}

/* Until news, or @wk. A fault does not say whose mapping it was. */
int g_wait(struct speculo_wait_item *items, size_t n, speculo_wakeup *wk)
{
    return guarded(&(struct g_call){.op = G_WAIT, .any = items, .size = n, .wk = wk});
}

int g_info(speculo_reader *r, struct speculo_segment_info *info)
{
    return guarded(&(struct g_call){.op = G_INFO, .r = r, .any = info});
}

int g_describe(const char *segment, char *buf, size_t size)
{
    return guarded(&(struct g_call){.op = G_DESCRIBE, .name = segment, .buf = buf, .size = size});
}

int g_probe(const void *p, size_t len)
{
    return guarded(&(struct g_call){.op = G_PROBE, .p = p, .size = len});
}
