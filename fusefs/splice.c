/* Replies to READ spliced from a segment file: the kernel moves references
 * to the file's pages into a pipe and copies them once, into the reader's
 * page cache; this process neither copies nor touches a mapping (no page
 * faults on a fresh one). The bytes go through a pipe of the thread's own
 * first, so that a file cut under us is seen (a short splice) before
 * anything is sent: a short reply would tell the kernel the file ends
 * there. */
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "sfs.h"

struct tpipe {
    int fd[2];
    size_t room; /* bytes it takes */
};

static pthread_key_t pipe_key;
static pthread_once_t pipe_once = PTHREAD_ONCE_INIT;
static int have_key; /* written once, under pipe_once */

static void pipe_free(void *p)
{
    struct tpipe *t = p;

    close(t->fd[0]);
    close(t->fd[1]);
    free(t);
}

static void pipe_key_init(void)
{
    have_key = pthread_key_create(&pipe_key, pipe_free) == 0;
}

/* This thread's pipe, made to take a whole reply if it may (beyond
 * /proc/sys/fs/pipe-max-size only with CAP_SYS_RESOURCE); NULL if none. */
static struct tpipe *thread_pipe(void)
{
    struct tpipe *t;
    int size;

    pthread_once(&pipe_once, pipe_key_init);
    if (!have_key)
        return NULL;
    if ((t = pthread_getspecific(pipe_key)) != NULL)
        return t;
    if ((t = malloc(sizeof *t)) == NULL)
        return NULL;
    if (pipe2(t->fd, O_CLOEXEC) != 0) {
        free(t);
        return NULL;
    }
    (void)fcntl(t->fd[0], F_SETPIPE_SZ, SFS_READ_MAX + SFS_PAGE);
    size = fcntl(t->fd[0], F_GETPIPE_SZ);
    t->room = size > 0 ? (size_t)size : 0;
    if (pthread_setspecific(pipe_key, t) != 0) {
        pipe_free(t);
        return NULL;
    }
    return t;
}

/* After a failure the pipe may hold bytes: the next reply makes a new one. */
static void pipe_drop(struct tpipe *t)
{
    (void)pthread_setspecific(pipe_key, NULL);
    pipe_free(t);
}

/*
 * Reply to @req with the @n bytes at @off in @fd. 0: replied (or the
 * request is gone); -EIO: the file ends before them, nothing was sent;
 * 1: not possible here (the pipe cannot take them), nothing was sent.
 */
int splice_reply(fuse_req_t req, int fd, uint64_t off, size_t n)
{
    struct fuse_bufvec v = FUSE_BUFVEC_INIT(n);
    struct tpipe *t = thread_pipe();
    loff_t pos = (loff_t)off;
    size_t got = 0;
    ssize_t k = 1;

    /* the range may start inside a page: one page more than n */
    if (t == NULL || n + SFS_PAGE > t->room)
        return 1;
    while (got < n && (k = splice(fd, &pos, t->fd[1], NULL, n - got, SPLICE_F_NONBLOCK)) > 0)
        got += (size_t)k;
    if (got < n) {
        pipe_drop(t);
        return k == 0 ? -EIO : 1;
    }
    v.buf[0].flags = FUSE_BUF_IS_FD;
    v.buf[0].fd = t->fd[0];
    if (fuse_reply_data(req, &v, 0) != 0)
        pipe_drop(t);
    return 0;
}
