/*
 * The writer role. The owner word in a segment's header holds the writer's
 * pid and its process start time, so a dead writer is told from a live one
 * even when its pid has been reused. A zombie counts as dead: its mapping
 * is gone and it will never commit again.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define START_MASK ((UINT64_C(1) << (64 - OWNER_PID_BITS)) - 1)

/* Read state and start time (field 22) from /proc/PID/stat. The command
 * name (field 2) may hold spaces and parentheses: parse after the last ')'.
 * 0 on success, -ENOENT when the process does not exist, -EIO otherwise. */
static int proc_stat(long pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : -EIO;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -EIO;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -EIO;
    unsigned long long st;
    /* after ')': state (3), then 18 fields up to starttime (22) */
    if (sscanf(p + 1,
               " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu",
               state, &st) != 2)
        return -EIO;
    *start = st;
    return 0;
}

uint64_t owner_self_token(void)
{
    char state;
    uint64_t start = 0;
    pid_t pid = getpid();
    if (proc_stat(pid, &state, &start) < 0)
        start = 0;
    return ((start & START_MASK) << OWNER_PID_BITS) | ((uint64_t)pid & OWNER_PID_MASK);
}

bool owner_alive(uint64_t token)
{
    long pid = (long)(token & OWNER_PID_MASK);
    if (pid == 0)
        return false;
    char state;
    uint64_t start;
    int rc = proc_stat(pid, &state, &start);
    if (rc == -ENOENT)
        return false;
    if (rc < 0) /* no /proc: fall back to existence alone */
        return kill((pid_t)pid, 0) == 0 || errno == EPERM;
    if (state == 'Z' || state == 'X')
        return false;
    return (start & START_MASK) == (token >> OWNER_PID_BITS);
}
