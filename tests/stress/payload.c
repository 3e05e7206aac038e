/*
 * Process plumbing of the crash and stress drivers; see payload.h.
 */
#include "payload.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

void pl_fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s[%d]: ", program_invocation_short_name, (int)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(3);
}

static char private_dir[PATH_MAX];

/* atexit: only the driver registers it (before forking any child), and
 * children leave with _exit(), so the directory goes once, at the end. */
static void remove_private_dir(void)
{
    DIR *d = opendir(private_dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[PATH_MAX + 256];
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", private_dir, e->d_name);
                unlink(path);
            }
        }
        closedir(d);
    }
    rmdir(private_dir);
}

int pl_private_dir(const char *tag)
{
    const char *env = getenv("SPECULO_DIR");
    if (env && *env)
        return 0;
    snprintf(private_dir, sizeof private_dir, "/dev/shm/speculo-%s-XXXXXX", tag);
    if (!mkdtemp(private_dir)) {
        perror("mkdtemp");
        return -1;
    }
    setenv("SPECULO_DIR", private_dir, 1);
    atexit(remove_private_dir);
    return 0;
}

void *pl_shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return NULL;
    }
    return p;
}

speculo_reader *pl_open_reader(const char *segment, int k)
{
    speculo_reader *r = NULL;
    int rc = speculo_reader_open(segment, &r);
    if (rc < 0)
        pl_fail("reader %d: open: %s", k, speculo_strerror(rc));
    return r;
}

pid_t pl_fork(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
    } else if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* the driver may have died before the request took effect */
        if (getppid() != parent)
            _exit(3);
    }
    return pid;
}
