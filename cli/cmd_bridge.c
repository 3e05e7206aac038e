/*
 * speculo bridge out|in SEG ...: mirror a segment through NATS JetStream.
 *
 * The bridge is a program of its own, speculo-bridge, installed next to
 * speculo and built only where the NATS client library is: speculo itself
 * needs no NATS library, and works on hosts that have none. This command
 * runs the speculo-bridge found next to its own executable (in the build
 * tree as installed), with the same arguments.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define BRIDGE_PROGRAM "speculo-bridge"

/* dirname(/proc/self/exe) + "/speculo-bridge" */
static int bridge_path(char *buf, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    if (snprintf(buf, size, "%s/%s", exe, BRIDGE_PROGRAM) >= (int)size)
        return -1;
    return 0;
}

int cmd_bridge(int argc, char **argv)
{
    (void)argc;
    char path[PATH_MAX];
    if (bridge_path(path, sizeof path) < 0)
        return fail("bridge", "cannot find where speculo is installed");
    argv[0] = path;
    execv(path, argv);
    if (errno == ENOENT)
        return fail("bridge",
                    "not available: %s is not installed (it is built when the NATS "
                    "client library, libnats-dev, is present)",
                    path);
    return fail("bridge", "cannot run %s: %s", path, strerror(errno));
}
