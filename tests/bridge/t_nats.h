/*
 * nats-server processes on free loopback ports, each with its own
 * directory (configuration, log, JetStream store), for the bridge's tests
 * (tests/bridge/) and benchmarks (bench/bench_bridge.c). No dependency on
 * Check: functions return 0 or a negative errno. Processes are started
 * with t_fork() (t_util.h): they die with the process that started them.
 */
#ifndef T_NATS_H
#define T_NATS_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

struct t_nats {
    pid_t pid; /* 0 when not running */
    int port, cluster_port;
    char name[16];
    char dir[PATH_MAX - 64];
    char url[64];
    char routes[256]; /* a cluster's routes line; "" alone */
    bool jetstream;
};

struct t_nats_cluster {
    struct t_nats s[3];
    char urls[256]; /* the three, comma-separated */
};

/* The nats-server program ("" until t_nats_find() found it). */
extern char t_nats_server[PATH_MAX];
/* Look for nats-server in $PATH and the sbin directories. */
bool t_nats_find(void);
/* A free TCP port on 127.0.0.1, or -errno. */
int t_free_port(void);

/* Start a server named `name` in PARENT/nats-NAME (made here), with
 * JetStream or not, and wait up to timeout_ms until it answers (JetStream
 * too when enabled). -ETIMEDOUT; -ECHILD when it exited (its log says
 * why: DIR/server.log). */
int t_nats_start(struct t_nats *s, const char *parent, const char *name, bool jetstream,
                 int timeout_ms);
/* Start a stopped server again: same port, same store. */
int t_nats_restart(struct t_nats *s, int timeout_ms);
/* Send sig (SIGTERM: stop, SIGKILL: kill) and reap it. */
void t_nats_stop(struct t_nats *s, int sig);
/* Three servers routed to each other on loopback, JetStream's meta group
 * up. */
int t_nats_cluster_start(struct t_nats_cluster *c, const char *parent, int timeout_ms);
/* The server of the cluster named `name`, or NULL. */
struct t_nats *t_nats_cluster_find(struct t_nats_cluster *c, const char *name);

/* Start `cli ARGS...` (argv[0] is shown as given) with SPECULO_DIR=dir,
 * stdin from /dev/null, stdout and stderr appended to `log`. The pid, or
 * -errno. */
pid_t t_speculo_spawn(const char *cli, const char *dir, const char *log, char *const argv[]);

#endif
