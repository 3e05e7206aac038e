/*
 * Process plumbing of the crash and stress drivers; see payload.h.
 */
#include "payload.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

int pl_private_dir(const char *tag)
{
    const char *env = getenv("SPECULO_DIR");
    if (env && *env)
        return 0;
    if (!t_private_dir(tag)) {
        perror("pl_private_dir");
        return -1;
    }
    return 0;
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
