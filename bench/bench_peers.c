/*
 * Peers, side by side with speculo in the same run, same ping-pong harness
 * (64-byte messages, parent on CPU 0, child on CPU 1):
 *
 *   iceoryx  (HAVE_ICEORYX) iceoryx 2.0 C binding, busy-polling subscribers
 *            (iox_sub_take_chunk in a loop), zero-copy loaned chunks. Needs a
 *            running RouDi (scripts/bench starts one). Each process starts its
 *            own runtime after fork: the pinging side is a process of its own.
 *   zmq      (HAVE_ZMQ) ZeroMQ PAIR sockets over ipc://, blocking receive.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lat.h"

#ifdef HAVE_ICEORYX
#include <sys/wait.h>

#include "iceoryx_binding_c/log.h"
#include "iceoryx_binding_c/publisher.h"
#include "iceoryx_binding_c/runtime.h"
#include "iceoryx_binding_c/subscriber.h"

struct iox_side {
    iox_pub_storage_t pst;
    iox_sub_storage_t sst;
    iox_pub_t pub;
    iox_sub_t sub;
};

/* Publisher on `out`, subscriber on `in`, runtime named after the process. */
static void iox_side_open(struct iox_side *s, const char *role, const char *tag, const char *out,
                          const char *in)
{
    char name[96];
    snprintf(name, sizeof name, "spbench-%s-%ld", role, (long)getpid());
    iox_set_loglevel(Iceoryx_LogLevel_Error);
    iox_runtime_init(name);
    iox_pub_options_t po;
    iox_pub_options_init(&po);
    po.historyCapacity = 0;
    s->pub = iox_pub_init(&s->pst, "speculo-bench", tag, out, &po);
    iox_sub_options_t so;
    iox_sub_options_init(&so);
    so.queueCapacity = 4;
    so.historyRequest = 0;
    s->sub = iox_sub_init(&s->sst, "speculo-bench", tag, in, &so);
    /* both directions connected before the first ping */
    while (iox_sub_get_subscription_state(s->sub) != SubscribeState_SUBSCRIBED ||
           !iox_pub_has_subscribers(s->pub))
        usleep(1000);
}

static void iox_side_close(struct iox_side *s)
{
    iox_sub_deinit(s->sub);
    iox_pub_deinit(s->pub);
    iox_runtime_shutdown();
}

static void iox_send(struct iox_side *s, uint64_t v)
{
    void *p;
    enum iox_AllocationResult a = iox_pub_loan_chunk(s->pub, &p, 64);
    if (a != AllocationResult_SUCCESS)
        bc_die("iceoryx: loan failed (%d)", (int)a);
    memset(p, 0, 64);
    *(uint64_t *)p = v;
    iox_pub_publish_chunk(s->pub, p);
}

static uint64_t iox_take(struct iox_side *s)
{
    const void *p;
    enum iox_ChunkReceiveResult r;
    while ((r = iox_sub_take_chunk(s->sub, &p)) == ChunkReceiveResult_NO_CHUNK_AVAILABLE)
        ;
    if (r != ChunkReceiveResult_SUCCESS)
        bc_die("iceoryx: take failed (%d)", (int)r);
    uint64_t v = *(const uint64_t *)p;
    iox_sub_release_chunk(s->sub, p);
    return v;
}

static void iox_serve(struct pp_ctx *x)
{
    struct iox_side s;
    iox_side_open(&s, "serve", x->seg_ping, "pong", "ping");
    for (long i = 0; i < pp_limit(x); i++)
        iox_send(&s, iox_take(&s));
    /* the last answer must reach the other side before our ports go away */
    pp_await_parent(x, 9);
    iox_side_close(&s);
    /* exit(), not _exit(): the runtime tells RouDi it goes from a destructor
     * at exit; without it RouDi waits for a heartbeat that never comes, then
     * fails to stop the process when itself stopped (stdio was flushed
     * before the fork) */
    exit(0);
}

/* The pinging side in a process of its own (its own runtime); the
 * histogram comes back through shared memory. */
static void iox_ping(struct pp_ctx *x)
{
    struct bc_hist *h = bc_shared(sizeof *h);
    bc_hist_reset(h);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bc_die("fork: %s", strerror(errno));
    if (pid == 0) {
        bc_pin(0);
        struct iox_side s;
        iox_side_open(&s, "ping", x->seg_ping, "ping", "pong");
        for (long i = 0; i < pp_limit(x); i++) {
            pp_check_time(x, i);
            uint64_t t0 = bc_ticks();
            iox_send(&s, (uint64_t)i);
            uint64_t v = iox_take(&s);
            uint64_t t1 = bc_ticks();
            if (v != (uint64_t)i)
                bc_die("iceoryx ping-pong: wrong answer");
            if (i >= x->warm)
                bc_hist_add(h, t1 - t0);
        }
        pp_parent_step(x, 9);
        iox_side_close(&s);
        exit(0); /* see iox_serve */
    }
    bc_wait_child(pid, "iceoryx pinger");
    bc_hist_merge(x->hist, h);
    bc_unshared(h, sizeof *h);
}

static const struct pp_case pp_iceoryx = {"iceoryx", NULL, iox_serve, iox_ping, NULL};

static void part_iceoryx(const struct bc_opts *o)
{
    long n = o->quick ? 20000 : 100000;
    struct lat_item it[] = {
        {.c = &pp_spin, .label = "speculo-busy-vs-iceoryx", .size = 64, .warm = 2000, .n = n},
        {.c = &pp_iceoryx, .label = "iceoryx", .warm = 2000, .n = n},
    };
    lat_rounds(it, 2, o->quick ? 3 : 9);
    lat_report(&it[0], o->out);
    lat_report(&it[1], o->out);
    char a[32], b[32];
    bc_target("9a", "round trip, speculo busy-polling vs iceoryx busy-polling",
              lat_med(&it[0], a, sizeof a), lat_med(&it[1], b, sizeof b),
              lat_ratio(&it[0], &it[1]), false, 0.1);
}
#endif

#ifdef HAVE_ZMQ
#include <zmq.h>

static void zmq_endpoint(const struct pp_ctx *x, char *buf, size_t size)
{
    const char *d = getenv("BENCH_TMP");
    snprintf(buf, size, "ipc://%s/%s.zmq", d && *d ? d : "/tmp", x->seg_ping);
}

static void *zmq_pair(void **ctx, const struct pp_ctx *x, bool bind)
{
    char ep[4200];
    zmq_endpoint(x, ep, sizeof ep);
    *ctx = zmq_ctx_new();
    void *s = zmq_socket(*ctx, ZMQ_PAIR);
    int rc = bind ? zmq_bind(s, ep) : zmq_connect(s, ep);
    if (rc < 0)
        bc_die("zmq %s %s: %s", bind ? "bind" : "connect", ep, zmq_strerror(errno));
    return s;
}

static void zmq_xfer_recv(void *s, uint64_t *msg)
{
    while (zmq_recv(s, msg, 64, 0) != 64) {
        if (errno != EINTR)
            bc_die("zmq_recv: %s", zmq_strerror(errno));
    }
}

static void zmq_serve(struct pp_ctx *x)
{
    void *ctx;
    pp_await_parent(x, 1); /* bound */
    void *s = zmq_pair(&ctx, x, false);
    uint64_t msg[8];
    for (long i = 0; i < pp_limit(x); i++) {
        zmq_xfer_recv(s, msg);
        if (zmq_send(s, msg, 64, 0) != 64)
            bc_die("zmq_send: %s", zmq_strerror(errno));
    }
    int linger = 1000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static void zmq_ping(struct pp_ctx *x)
{
    void *ctx;
    void *s = zmq_pair(&ctx, x, true);
    pp_parent_step(x, 1);
    uint64_t msg[8] = {0};
    for (long i = 0; i < pp_limit(x); i++) {
        pp_check_time(x, i);
        msg[0] = (uint64_t)i;
        uint64_t t0 = bc_ticks();
        if (zmq_send(s, msg, 64, 0) != 64)
            bc_die("zmq_send: %s", zmq_strerror(errno));
        zmq_xfer_recv(s, msg);
        uint64_t t1 = bc_ticks();
        if (msg[0] != (uint64_t)i)
            bc_die("zmq ping-pong: wrong answer");
        if (i >= x->warm)
            bc_hist_add(x->hist, t1 - t0);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    char ep[4200];
    zmq_endpoint(x, ep, sizeof ep);
    unlink(ep + strlen("ipc://"));
}

static const struct pp_case pp_zmq = {"zmq", NULL, zmq_serve, zmq_ping, NULL};

static void part_zmq(const struct bc_opts *o)
{
    long n = o->quick ? 3000 : 20000;
    struct lat_item it[] = {
        {.c = &pp_wait, .label = "speculo-wait-vs-zmq", .size = 64, .warm = 500, .n = n},
        {.c = &pp_spin, .label = "speculo-busy-vs-zmq", .size = 64, .warm = 500, .n = n},
        {.c = &pp_zmq, .label = "zmq-ipc", .warm = 500, .n = n},
    };
    lat_rounds(it, 3, o->quick ? 3 : 5);
    for (int i = 0; i < 3; i++)
        lat_report(&it[i], o->out);
    char a[32], b[32];
    bc_factor("9d", "round trip, speculo blocking reader vs ZeroMQ ipc:// PAIR",
              lat_med(&it[0], a, sizeof a), lat_med(&it[2], b, sizeof b),
              lat_ratio(&it[0], &it[2]));
    bc_factor("9e", "round trip, speculo busy-polling vs ZeroMQ ipc:// PAIR",
              lat_med(&it[1], a, sizeof a), lat_med(&it[2], b, sizeof b),
              lat_ratio(&it[1], &it[2]));
}
#endif

int main(int argc, char **argv)
{
    struct bc_opts o;
    bc_parse(argc, argv, &o);
#ifdef HAVE_ICEORYX
    if (bc_want(&o, "iceoryx"))
        part_iceoryx(&o);
#endif
#ifdef HAVE_ZMQ
    if (bc_want(&o, "zmq"))
        part_zmq(&o);
#endif
    return 0;
}
