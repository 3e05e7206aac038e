/*
 * nats-server processes for tests and benchmarks (t_nats.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_nats.h"
#include "t_util.h"

char t_nats_server[PATH_MAX];

bool t_nats_find(void)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s:/usr/sbin:/usr/local/sbin:/sbin", path ? path : "/usr/bin");
    for (char *dir = strtok(buf, ":"); dir; dir = strtok(NULL, ":")) {
        snprintf(t_nats_server, sizeof t_nats_server, "%s/nats-server", dir);
        if (access(t_nats_server, X_OK) == 0)
            return true;
    }
    t_nats_server[0] = '\0';
    return false;
}

int t_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int rc = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                     getsockname(fd, (struct sockaddr *)&a, &len) == 0
                 ? ntohs(a.sin_port)
                 : -errno;
    close(fd);
    return rc;
}

static int write_config(const struct t_nats *s)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/server.conf", s->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fprintf(f, "server_name: %s\nlisten: 127.0.0.1:%d\n", s->name, s->port);
    if (s->jetstream)
        fprintf(f,
                "jetstream {\n"
                "  store_dir: \"%s/store\"\n"
                "  max_memory_store: 64MB\n"
                "  max_file_store: 4GB\n"
                "}\n",
                s->dir);
    if (s->routes[0])
        fprintf(f,
                "cluster {\n"
                "  name: t\n"
                "  listen: 127.0.0.1:%d\n"
                "  routes: [%s]\n"
                "}\n",
                s->cluster_port, s->routes);
    return fclose(f) == 0 ? 0 : -errno;
}

static int spawn(struct t_nats *s)
{
    char conf[PATH_MAX], log[PATH_MAX];
    snprintf(conf, sizeof conf, "%s/server.conf", s->dir);
    snprintf(log, sizeof log, "%s/server.log", s->dir);
    pid_t pid = t_fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execl(t_nats_server, "nats-server", "-c", conf, "-l", log, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    return 0;
}

/* Does the server answer (and JetStream, with a meta leader, when on)? */
static bool answers(const struct t_nats *s)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsAccountInfo *ai = NULL;
    jsErrCode je = 0;
    bool ok = natsOptions_Create(&o) == NATS_OK && natsOptions_SetURL(o, s->url) == NATS_OK &&
              natsOptions_SetTimeout(o, 2000) == NATS_OK &&
              natsOptions_SetAllowReconnect(o, false) == NATS_OK &&
              natsConnection_Connect(&nc, o) == NATS_OK;
    if (ok && s->jetstream)
        ok = natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
             js_GetAccountInfo(&ai, js, NULL, &je) == NATS_OK;
    jsAccountInfo_Destroy(ai);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return ok;
}

static int wait_ready(struct t_nats *s, int timeout_ms)
{
    int64_t t0 = t_mono_ns();
    while (!answers(s)) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return -ECHILD;
        }
        if (t_ms_since(t0) >= timeout_ms)
            return -ETIMEDOUT;
        t_sleep_ms(50);
    }
    return 0;
}

static int prepare(struct t_nats *s, const char *parent, const char *name, bool jetstream)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->dir, sizeof s->dir, "%s/nats-%s", parent, name);
    s->jetstream = jetstream;
    if (mkdir(s->dir, 0700) < 0)
        return -errno;
    s->port = t_free_port();
    s->cluster_port = t_free_port();
    if (s->port < 0 || s->cluster_port < 0)
        return -EADDRNOTAVAIL;
    snprintf(s->url, sizeof s->url, "nats://127.0.0.1:%d", s->port);
    return 0;
}

int t_nats_start(struct t_nats *s, const char *parent, const char *name, bool jetstream,
                 int timeout_ms)
{
    int rc = prepare(s, parent, name, jetstream);
    if (rc == 0)
        rc = write_config(s);
    if (rc == 0)
        rc = spawn(s);
    return rc == 0 ? wait_ready(s, timeout_ms) : rc;
}

int t_nats_restart(struct t_nats *s, int timeout_ms)
{
    if (s->pid)
        return -EBUSY;
    int rc = spawn(s);
    return rc == 0 ? wait_ready(s, timeout_ms) : rc;
}

void t_nats_stop(struct t_nats *s, int sig)
{
    if (s->pid > 0)
        t_kill_wait(s->pid, sig);
    s->pid = 0;
}

int t_nats_cluster_start(struct t_nats_cluster *c, const char *parent, int timeout_ms)
{
    static const char *names[] = {"n0", "n1", "n2"};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = prepare(&c->s[i], parent, names[i], true);
    for (int i = 0; i < 3 && rc == 0; i++) {
        size_t n = 0;
        for (int k = 0; k < 3; k++)
            if (k != i)
                n += (size_t)snprintf(c->s[i].routes + n, sizeof c->s[i].routes - n,
                                      "%snats-route://127.0.0.1:%d", n ? ", " : "",
                                      c->s[k].cluster_port);
        rc = write_config(&c->s[i]);
    }
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = spawn(&c->s[i]);
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = wait_ready(&c->s[i], timeout_ms);
    snprintf(c->urls, sizeof c->urls, "%s,%s,%s", c->s[0].url, c->s[1].url, c->s[2].url);
    return rc;
}

struct t_nats *t_nats_cluster_find(struct t_nats_cluster *c, const char *name)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(c->s[i].name, name))
            return &c->s[i];
    return NULL;
}

pid_t t_speculo_spawn(const char *cli, const char *dir, const char *log, char *const argv[])
{
    pid_t pid = t_fork();
    if (pid != 0)
        return pid < 0 ? -errno : pid;
    int null = open("/dev/null", O_RDWR);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null < 0 || fd < 0)
        _exit(126);
    dup2(null, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("SPECULO_DIR", dir, 1);
    execv(cli, argv);
    _exit(127);
}
