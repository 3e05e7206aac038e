/*
 * speculo-bridge: the program behind `speculo bridge` (which execs it, so
 * that the speculo command itself needs no NATS library). Options,
 * signals, exit status.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "cli.h"

/* Flags only: what a thread must see after them travels by the wakeups
 * and the locks, so relaxed accesses do. */
static atomic_int stop;
static atomic_int failed;
speculo_wakeup *br_wakeup;
speculo_wakeup *br_kick;

static const char bridge_help[] =
    "Usage: speculo bridge out SEG --server URL[,URL...] [--stream NAME] [--replicas N]\n"
    "       speculo bridge in  SEG --server URL[,URL...] [--stream NAME]\n"
    "\n"
    "Mirror segment SEG to other hosts through NATS JetStream.\n"
    "\n"
    "  out   forward every chunk of local segment SEG (those already there, then\n"
    "        each new one) to a JetStream stream, creating the stream if needed\n"
    "  in    be the writer of local segment SEG and commit into it every chunk of\n"
    "        the stream, with the id, name, bytes, commit time and expiry it had\n"
    "        at the origin\n"
    "\n"
    "Both run until SIGINT or SIGTERM, and may be killed and restarted at any\n"
    "time: they resume where they were, without gap or duplicate. The local\n"
    "writer never waits for the network: with the server down, commits go on\n"
    "and are forwarded when it is back. One line per state change on stderr.\n"
    "\n"
    "Options:\n"
    "  -s, --server URL[,URL...]  NATS servers: nats://HOST[:PORT], tls://..., or\n"
    "                             HOST[:PORT] (port 4222 by default); user and\n"
    "                             password as nats://USER:PASS@HOST\n"
    "      --stream NAME          the stream (default speculo-SEG, with every byte\n"
    "                             of SEG other than [A-Za-z0-9-] written _XX)\n"
    "  -r, --replicas N           out: replicas of the stream when it creates it\n"
    "                             (1 to 5; default 1)\n"
    "  -h, --help                 show this help\n"
    "\n"
    "Exit status: 0 stopped by a signal, 1 error (message on stderr), 2 usage\n"
    "error. See speculo(1) and speculo-bridge(1).\n";

/* ---- stopping ---------------------------------------------------------------- */

bool br_stopping(void)
{
    /* observes: the stop flag (nothing else is published with it) */
    return atomic_load_explicit(&stop, memory_order_relaxed);
}

static void on_signal(int sig)
{
    (void)sig;
    /* publishes: the stop flag; the wakeups end the waits */
    atomic_store_explicit(&stop, 1, memory_order_relaxed);
    speculo_wakeup_signal(br_wakeup);
    speculo_wakeup_signal(br_kick);
}

void br_fatal(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* publishes: the failure, once (the first one is logged) */
    if (!atomic_exchange_explicit(&failed, 1, memory_order_relaxed))
        br_log("%s", msg);
    /* publishes: the stop flag */
    atomic_store_explicit(&stop, 1, memory_order_relaxed);
    speculo_wakeup_signal(br_wakeup);
    speculo_wakeup_signal(br_kick);
}

bool br_failed(void)
{
    /* observes: a failure flagged by any thread */
    return atomic_load_explicit(&failed, memory_order_relaxed);
}

bool br_sleep_ms(int ms)
{
    if (br_stopping())
        return false;
    speculo_wait(NULL, 0, br_wakeup, ms); /* br_wakeup is only ever set to stop */
    return !br_stopping();
}

int64_t br_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t br_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int br_segment_path(const char *segment, char *buf, size_t size)
{
    char dir[PATH_MAX];
    if (speculo_segment_dir(dir, sizeof dir) < 0 ||
        snprintf(buf, size, "%s/%s", dir, segment) >= (int)size) {
        br_log("the segment directory's path is too long");
        return -1;
    }
    return 0;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* ---- options ---------------------------------------------------------------------- */

enum { OPT_STREAM = 256 };

static int parse(int argc, char **argv, struct br_args *a)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'},
        {"stream", required_argument, NULL, OPT_STREAM},
        {"replicas", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *prog = argv[0], *stream = NULL;
    int opt;
    /* options anywhere: before or after the direction and SEG */
    while ((opt = cli_getopt(argc, argv, "s:r:h", longopts)) != -1) {
        uint64_t n;
        switch (opt) {
        case 's':
            a->servers = optarg;
            break;
        case OPT_STREAM:
            stream = optarg;
            break;
        case 'r':
            if (!parse_u64(optarg, &n) || n < 1 || n > 5)
                return usage_error(prog, "invalid number of replicas '%s' (1 to 5)",
                                   printable(optarg));
            a->replicas = (int)n;
            break;
        default:
            return common_option(opt, prog, bridge_help);
        }
    }
    if (optind >= argc)
        return usage_error(prog, "missing direction: out or in");
    const char *dir = argv[optind++];
    if (strcmp(dir, "out") != 0 && strcmp(dir, "in") != 0)
        return usage_error(prog, "unknown direction '%s' (out or in)", printable(dir));
    a->out = !strcmp(dir, "out");
    int rc = segment_operand(argc, argv, &a->segment);
    if (rc != CLI_CONTINUE)
        return rc;
    if (!a->servers)
        return usage_error(prog, "missing --server URL");
    if (!a->out && a->replicas)
        return usage_error(prog, "--replicas is for out (the stream is made there)");
    if (stream) {
        if (!br_stream_name_ok(stream))
            return usage_error(prog, "invalid stream name '%s' (1-255 bytes of [A-Za-z0-9_-])",
                               printable(stream));
        snprintf(a->stream, sizeof a->stream, "%s", stream);
    } else if (br_stream_default(a->segment, a->stream, sizeof a->stream) < 0) {
        return usage_error(prog, "the stream name made from '%s' is too long: give --stream",
                           printable(a->segment));
    }
    return CLI_CONTINUE;
}

int main(int argc, char **argv)
{
    guard_standard_fds();
    /* messages name the command the user typed (speculo bridge execs us) */
    char prog[] = "speculo bridge";
    argv[0] = prog;
    struct br_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != CLI_CONTINUE)
        return rc;
    br_log_init(a.out ? "out" : "in", a.segment);
    if (speculo_wakeup_create(&br_wakeup) < 0 || speculo_wakeup_create(&br_kick) < 0 ||
        install_signals() < 0) {
        br_log("cannot set up: %s", strerror(ENOMEM));
        return BR_EXIT_ERR;
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    rc = a.out ? br_out(&a) : br_in(&a);
    nats_Close();
    return rc;
}
