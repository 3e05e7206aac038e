/*
 * The writer role. A writer holds an open file description lock (F_OFD_SETLK)
 * on its segment file for as long as it is the writer. The kernel drops the
 * lock when the last descriptor of that description is closed, so when the
 * process dies, however it dies, and whatever PID namespace it lives in:
 * the lock is on the file, not on a pid. Anyone who can open the file can
 * ask whether it is held (F_OFD_GETLK), also from another namespace.
 *
 * Why not a process-associated lock (F_SETLK)? Closing any descriptor of
 * the file releases those, and a process that writes a segment may well
 * read it too (a reader opens and closes the file at each switch).
 *
 * A description is shared with a child made by fork(), which would keep
 * the lock, and so the role, alive after the writer died: through the
 * descriptor, and through the writer's mapping too (a mapping holds a
 * reference on the description it was made from). So the writer's
 * mappings are not inherited (MADV_DONTFORK), and the library keeps a
 * list of its writers and closes their descriptors in the child
 * (pthread_atfork). That list is the library's only process-wide state:
 * fork is a process-wide event. The child's copies of the handles are
 * marked `forked`: they can be closed, and refuse to write.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "writer.h"

/* The byte the role's lock covers. */
#define ROLE_LOCK_START 0
#define ROLE_LOCK_LEN 1

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static speculo_writer *registry; /* writers of this process, linked by role_next */
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

static void registry_prepare(void)
{
    pthread_mutex_lock(&registry_lock);
}

static void registry_parent(void)
{
    pthread_mutex_unlock(&registry_lock);
}

/* In the child of a fork: the writers' descriptors are the parent's. */
static void registry_child(void)
{
    for (speculo_writer *w = registry; w; w = w->role_next) {
        if (w->fd >= 0)
            close(w->fd);
        if (w->new_fd >= 0)
            close(w->new_fd);
        w->fd = w->new_fd = -1;
        w->forked = true;
        w->reserved = false;
        w->map.base = NULL; /* not inherited: MADV_DONTFORK */
        w->map.size = 0;
    }
    registry = NULL;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_setup(void)
{
    pthread_atfork(registry_prepare, registry_parent, registry_child);
}

void speculo__role_register(speculo_writer *w)
{
    pthread_once(&registry_once, registry_setup);
    w->fd = w->new_fd = -1;
    pthread_mutex_lock(&registry_lock);
    w->role_next = registry;
    w->role_prev = NULL;
    if (registry)
        registry->role_prev = w;
    registry = w;
    pthread_mutex_unlock(&registry_lock);
}

void speculo__role_unregister(speculo_writer *w)
{
    pthread_mutex_lock(&registry_lock);
    if (!w->forked) {
        if (w->role_prev)
            w->role_prev->role_next = w->role_next;
        else
            registry = w->role_next;
        if (w->role_next)
            w->role_next->role_prev = w->role_prev;
    }
    if (w->fd >= 0)
        close(w->fd);
    if (w->new_fd >= 0)
        close(w->new_fd);
    w->fd = w->new_fd = -1;
    pthread_mutex_unlock(&registry_lock);
}

/*
 * Open a file for the writer: with the registry locked, so that a fork
 * cannot copy the descriptor before the registry knows it. The descriptor
 * goes to w->fd (the segment file) or w->new_fd (a file being made).
 */
int speculo__role_openat(speculo_writer *w, bool new_file, int dirfd, const char *path, int flags,
                         mode_t mode)
{
    pthread_mutex_lock(&registry_lock);
    int fd = openat(dirfd, path, flags | O_CLOEXEC, mode);
    int rc = fd < 0 ? -errno : fd;
    if (fd >= 0)
        *(new_file ? &w->new_fd : &w->fd) = fd;
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

/* Map the file of @fd (open for writing) for the writer, checking its
 * header unless @raw: not inherited by a fork, and made with the registry
 * locked so that no fork comes between the mapping and its madvise. */
int speculo__role_map(int fd, const struct stat *st, bool raw, struct seg_map *m)
{
    pthread_mutex_lock(&registry_lock);
    int rc = raw ? speculo__ns_map_fd_raw(fd, st, m) : speculo__ns_map_fd(fd, st, true, m);
    if (rc == 0 && madvise(m->base, m->size, MADV_DONTFORK) < 0) {
        rc = -errno;
        speculo__ns_unmap(m);
    }
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

/* Close w->fd, or w->new_fd, under the registry's lock. */
void speculo__role_close(speculo_writer *w, bool new_file)
{
    pthread_mutex_lock(&registry_lock);
    int *fd = new_file ? &w->new_fd : &w->fd;
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    pthread_mutex_unlock(&registry_lock);
}

/* The file being made becomes the segment file; the old one's descriptor
 * (and so its lock) goes. */
void speculo__role_switch(speculo_writer *w)
{
    pthread_mutex_lock(&registry_lock);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = w->new_fd;
    w->new_fd = -1;
    pthread_mutex_unlock(&registry_lock);
}

static struct flock role_range(short type)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = ROLE_LOCK_START;
    fl.l_len = ROLE_LOCK_LEN;
    return fl;
}

/* Take the role's lock on @fd (open for writing): 0, or -EBUSY when
 * another description holds it. */
int speculo__role_lock(int fd)
{
    struct flock fl = role_range(F_WRLCK);
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
}

/* Is the role's lock on the file of @fd (open for reading suffices) held
 * by anyone? 1 held, 0 free, or a negative errno. */
int speculo__role_held(int fd)
{
    struct flock fl = role_range(F_WRLCK);
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return -errno;
    return fl.l_type != F_UNLCK;
}

/* Is the writer role of the segment file @segment in @dirfd held? */
int speculo__role_held_at(int dirfd, const char *segment)
{
    int fd = openat(dirfd, segment, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) /* no file, or not one a writer could hold (a symlink...) */
        return speculo__ns_open_error(errno) == -EPERM || errno == ENOENT ? 0 : -errno;
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? speculo__role_held(fd) : 0;
    close(fd);
    return rc;
}

/* Owner token: the pid in the low bits, the process start time (clock
 * ticks since boot, field 22 of /proc/PID/stat) above. It only names the
 * writer for people (speculo info); liveness is the lock's. */
uint64_t speculo__owner_self_token(void)
{
    char buf[1024];
    uint64_t start = 0;
    pid_t pid = getpid();
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        /* the command name (field 2) may hold spaces and parentheses */
        char *p = strrchr(buf, ')');
        unsigned long long st;
        if (p && sscanf(p + 1,
                        " %*c"
                        " %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s"
                        " %*s %*s %*s %*s %*s %*s %*s %*s %llu",
                        &st) == 1)
            start = st;
    }
    uint64_t start_mask = (UINT64_C(1) << (64 - OWNER_PID_BITS)) - 1;
    return ((start & start_mask) << OWNER_PID_BITS) | ((uint64_t)pid & OWNER_PID_MASK);
}
