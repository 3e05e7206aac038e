/*
 * The bridge: `speculo bridge out` and `in` through NATS JetStream on
 * loopback, with one server (R1) and a 3-node cluster (an R3 stream).
 *
 *   latency  a chunk's commit at the origin to the moment a blocking reader
 *            of the mirror has it (the mirror keeps the origin's commit time),
 *            at 1 k chunks/s; against, in the same run and interleaved round
 *            by round, NATS core publish → receive and JetStream publish (with
 *            its ack) → push consumer, 64 B at 1 k/s each. The same at full
 *            speed, where it is queueing that one sees.
 *   tput     64 B chunks/s end to end (commit to the mirror having the last
 *            one), and 1 MiB chunks in MB/s against a plain JetStream
 *            publisher of the same bytes (1 MiB messages, one in flight).
 *   writer   speculo_writer_put() latency (64 B, 5 k/s) on a segment that
 *            `bridge out` forwards, against one that nobody reads and one that
 *            a blocking reader follows (R1).
 *
 * Parts (-p): r1, r3. nats-server is found in $PATH or the sbin directories
 * (skipped when absent); $SPECULO_CLI is cli/speculo; stores and segments go
 * under $BENCH_TMP. Every process started dies with this one. BENCH_DEBUG=1
 * prints each latency round's medians on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bc.h"
#include "speculo.h"
#include "t_nats.h"
#include "t_util.h"

#define WAIT_MS 120000
#define MAX_ROUNDS 8

static char cli[PATH_MAX];
static char base[PATH_MAX - 64];
static double ns_per_tick;

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Latencies measured in ns go into the tick histograms of bc.h. */
static void hist_add_ns(struct bc_hist *h, int64_t ns)
{
    bc_hist_add(h, ns > 0 ? (uint64_t)((double)ns / ns_per_tick) : 0);
}

static struct bc_hist *hist_new(void)
{
    struct bc_hist *h = malloc(sizeof *h);
    if (!h)
        bc_die("out of memory");
    bc_hist_reset(h);
    return h;
}

/* Sleep until the absolute monotonic instant `at`. */
static void sleep_until(int64_t at)
{
    struct timespec ts = {(time_t)(at / 1000000000), (long)(at % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ---- the engine ------------------------------------------------------------------------ */

struct engine {
    const char *name; /* "R1", "R3" */
    int replicas;
    char urls[256];
    struct t_nats one;
    struct t_nats_cluster three;
    natsConnection *nc; /* the baselines' */
    jsCtx *js;
};

static void engine_start(struct engine *e, int replicas)
{
    e->replicas = replicas;
    e->name = replicas == 1 ? "R1" : "R3";
    int rc;
    if (replicas == 1) {
        rc = t_nats_start(&e->one, base, "r1", true, WAIT_MS);
        snprintf(e->urls, sizeof e->urls, "%s", e->one.url);
    } else {
        rc = t_nats_cluster_start(&e->three, base, WAIT_MS);
        snprintf(e->urls, sizeof e->urls, "%s", e->three.urls);
    }
    if (rc < 0)
        bc_die("nats-server (%s): %s", e->name, strerror(-rc));
    natsOptions *o;
    const char *list[3];
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", e->urls);
    for (char *p = strtok(buf, ","); p && n < 3; p = strtok(NULL, ","))
        list[n++] = p;
    if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetServers(o, list, n) != NATS_OK ||
        natsOptions_SetSendAsap(o, true) != NATS_OK ||
        natsConnection_Connect(&e->nc, o) != NATS_OK ||
        natsConnection_JetStream(&e->js, e->nc, NULL) != NATS_OK)
        bc_die("baseline client: %s", nats_GetLastError(NULL));
    natsOptions_Destroy(o);
}

static void engine_stop(struct engine *e)
{
    jsCtx_Destroy(e->js);
    natsConnection_Destroy(e->nc);
    if (e->replicas == 1)
        t_nats_stop(&e->one, SIGTERM);
    else
        for (int i = 0; i < 3; i++)
            t_nats_stop(&e->three.s[i], SIGTERM);
}

/* A stream for a baseline, of the engine's replicas. */
static void stream_create(struct engine *e, const char *name, const char *subject)
{
    const char *subjects[] = {subject};
    jsStreamConfig c;
    jsStreamConfig_Init(&c);
    c.Name = name;
    c.Subjects = subjects;
    c.SubjectsLen = 1;
    c.Storage = js_FileStorage;
    c.Replicas = e->replicas;
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    if (js_AddStream(&si, e->js, &c, NULL, &je) != NATS_OK)
        bc_die("stream %s: %s", name, nats_GetLastError(NULL));
    jsStreamInfo_Destroy(si);
}

/* ---- a forwarded segment ------------------------------------------------------------------ */

struct pair {
    char seg[32];
    char origin[PATH_MAX], mirror[PATH_MAX];
    pid_t out, in;
    speculo_writer *w;
};

static void spawn_bridge(struct engine *e, struct pair *p, bool out, pid_t *pid)
{
    char log[PATH_MAX + 32], rep[8];
    snprintf(log, sizeof log, "%s/%s-%s-%s.log", base, p->seg, e->name, out ? "out" : "in");
    snprintf(rep, sizeof rep, "%d", e->replicas);
    char *argv[] = {"speculo",  "bridge", out ? "out" : "in",        p->seg,
                    "--server", e->urls,  out ? "--replicas" : NULL, rep,
                    NULL};
    *pid = t_speculo_spawn(cli, out ? p->origin : p->mirror, log, argv);
    if (*pid < 0)
        bc_die("cannot start speculo bridge");
}

static uint64_t mirror_last_id(const struct pair *p)
{
    speculo_reader *r;
    struct speculo_segment_info info = {0};
    if (speculo_reader_open_at(p->mirror, p->seg, 0, &r) == 0) {
        speculo_reader_info(r, &info);
        speculo_reader_close(r);
    }
    return info.last_id;
}

/* Origin (with a writer), out and in when asked; the first chunk through. */
static void pair_start(struct engine *e, struct pair *p, const char *seg, size_t capacity,
                       bool with_out, bool with_in)
{
    memset(p, 0, sizeof *p);
    snprintf(p->seg, sizeof p->seg, "%s", seg);
    snprintf(p->origin, sizeof p->origin, "%s/%s-%s-origin", base, seg, e->name);
    snprintf(p->mirror, sizeof p->mirror, "%s/%s-%s-mirror", base, seg, e->name);
    if (mkdir(p->origin, 0700) < 0 || mkdir(p->mirror, 0700) < 0)
        bc_die("mkdir %s: %s", p->origin, strerror(errno));
    struct speculo_writer_options wo = {.capacity = capacity};
    int rc = speculo_writer_open_at(p->origin, seg, &wo, &p->w);
    if (rc < 0)
        bc_die("writer: %s", speculo_strerror(rc));
    uint64_t id;
    if ((rc = speculo_writer_put(p->w, "hello", 5, NULL, &id)) < 0)
        bc_die("put: %s", speculo_strerror(rc));
    if (with_out)
        spawn_bridge(e, p, true, &p->out);
    if (!with_in)
        return;
    spawn_bridge(e, p, false, &p->in);
    int64_t t0 = t_mono_ns();
    while (mirror_last_id(p) < id) {
        if (t_ms_since(t0) > WAIT_MS)
            bc_die("the bridge does not start (logs in %s)", base);
        t_sleep_ms(10);
    }
}

static void pair_stop(struct pair *p)
{
    if (p->out > 0)
        t_kill_wait(p->out, SIGTERM);
    if (p->in > 0)
        t_kill_wait(p->in, SIGTERM);
    speculo_writer_close(p->w);
    speculo_segment_remove_at(p->origin, p->seg, SPECULO_REMOVE_FORCE);
    speculo_segment_remove_at(p->mirror, p->seg, SPECULO_REMOVE_FORCE);
}

/* A blocking reader of the mirror, in a thread: records how long after its
 * commit each chunk past `after` became visible, until chunk `until`. */
struct follower {
    const char *dir, *seg;
    uint64_t after, until;
    struct bc_hist *h;
    int64_t done_ns; /* wall clock when `until` was seen */
    pthread_t th;
};

static void *follow_main(void *arg)
{
    struct follower *f = arg;
    speculo_reader *r;
    int rc = speculo_reader_open_at(f->dir, f->seg, 0, &r);
    if (rc < 0)
        bc_die("mirror reader: %s", speculo_strerror(rc));
    speculo_reader_seek(r, f->after);
    int64_t t0 = t_mono_ns();
    for (;;) {
        speculo_chunk c;
        rc = speculo_reader_next(r, &c);
        if (rc == -EAGAIN) {
            if (t_ms_since(t0) > WAIT_MS)
                bc_die("the mirror did not reach chunk %" PRIu64 " (logs in %s)", f->until, base);
            speculo_reader_wait(r, 1000);
            continue;
        }
        if (rc < 0)
            bc_die("mirror reader: %s", speculo_strerror(rc));
        int64_t now = wall_ns();
        if (f->h)
            hist_add_ns(f->h, now - c.committed_ns);
        if (c.id >= f->until) {
            f->done_ns = now;
            break;
        }
    }
    speculo_reader_close(r);
    return NULL;
}

static void follow_start(struct follower *f, const struct pair *p, uint64_t after, uint64_t until,
                         struct bc_hist *h)
{
    *f = (struct follower){.dir = p->mirror, .seg = p->seg, .after = after, .until = until, .h = h};
    if (pthread_create(&f->th, NULL, follow_main, f) != 0)
        bc_die("thread");
}

/* Commit n chunks of `size` bytes, one every `gap_ns` (0: back to back). */
static int64_t commit_n(struct pair *p, long n, size_t size, int64_t gap_ns, uint64_t *first,
                        uint64_t *last)
{
    static unsigned char buf[1 << 20];
    int64_t start = wall_ns(), next = t_mono_ns();
    for (long i = 0; i < n; i++) {
        if (gap_ns) {
            next += gap_ns;
            sleep_until(next);
        }
        uint64_t id;
        memcpy(buf, &i, sizeof i);
        int rc = speculo_writer_put(p->w, buf, size, NULL, &id);
        if (rc < 0)
            bc_die("put: %s", speculo_strerror(rc));
        if (i == 0)
            *first = id;
        *last = id;
    }
    return start;
}

/* ---- the baselines: NATS core and JetStream, 64 B at a rate ------------------------------------ */

struct receiver {
    struct bc_hist *h;
    _Atomic long got; /* a count, polled by the publishing thread */
};

static void on_timestamped(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    struct receiver *r = arg;
    int64_t sent;
    if (natsMsg_GetDataLength(msg) >= (int)sizeof sent) {
        memcpy(&sent, natsMsg_GetData(msg), sizeof sent);
        hist_add_ns(r->h, wall_ns() - sent);
    }
    natsMsg_Destroy(msg);
    /* publishes: one more received (a count) */
    atomic_fetch_add_explicit(&r->got, 1, memory_order_relaxed);
}

static void wait_received(struct receiver *r, long n)
{
    int64_t t0 = t_mono_ns();
    /* observes: the receiving thread's count */
    while (atomic_load_explicit(&r->got, memory_order_relaxed) < n) {
        if (t_ms_since(t0) > WAIT_MS)
            bc_die("baseline: %ld of %ld messages received", (long)r->got, n);
        t_sleep_ms(1);
    }
}

/* Publish n timestamped 64 B messages, one every gap_ns, through NATS core
 * (js NULL) or JetStream (waiting for each ack), to a subscriber of their
 * subject (for JetStream an ordered push consumer). */
static void baseline_run(struct engine *e, bool jetstream, long n, int64_t gap_ns,
                         struct bc_hist *h)
{
    static int serial;
    char subject[64];
    snprintf(subject, sizeof subject, "benchjs.%d", ++serial);
    struct receiver r = {.h = h};
    natsSubscription *sub = NULL;
    jsErrCode je = 0;
    natsStatus s;
    if (jetstream) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = "benchjs";
        so.Ordered = true;
        so.Config.DeliverPolicy = js_DeliverNew;
        s = js_Subscribe(&sub, e->js, subject, on_timestamped, &r, NULL, &so, &je);
    } else {
        s = natsConnection_Subscribe(&sub, e->nc, subject, on_timestamped, &r);
        if (s == NATS_OK)
            s = natsConnection_Flush(e->nc);
    }
    if (s != NATS_OK)
        bc_die("baseline subscribe: %s", nats_GetLastError(NULL));
    unsigned char msg[64] = {0};
    int64_t next = t_mono_ns();
    for (long i = 0; i < n; i++) {
        next += gap_ns;
        sleep_until(next);
        int64_t now = wall_ns();
        memcpy(msg, &now, sizeof now);
        if (jetstream) {
            jsPubAck *pa = NULL;
            s = js_Publish(&pa, e->js, subject, msg, sizeof msg, NULL, &je);
            jsPubAck_Destroy(pa);
        } else {
            s = natsConnection_Publish(e->nc, subject, msg, sizeof msg);
        }
        if (s != NATS_OK)
            bc_die("baseline publish: %s", nats_GetLastError(NULL));
    }
    wait_received(&r, n);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

/* ---- latency at 1 k/s, and at full speed --------------------------------------------------------- */

static const char *const lat_cases[] = {"bridge", "jetstream", "core"};

static void lat_report(const char *label, const struct bc_hist *h, const char *outdir)
{
    bc_hist_report(h, label);
    if (outdir)
        bc_hist_dump(h, outdir, label);
}

static void part_latency(const struct bc_opts *o, struct engine *e, struct pair *p)
{
    int rounds = o->quick ? 3 : 7; /* the median of per-round ratios: a round that a burst
                                        of load on the machine spoils does not decide */
    long n = o->quick ? 300 : 1000, warm = 50;
    const int64_t gap = 1000000; /* 1 k/s */
    struct bc_hist *merged[3], *h = hist_new();
    for (int k = 0; k < 3; k++)
        merged[k] = hist_new();
    double med[3][MAX_ROUNDS], ratio_js[MAX_ROUNDS], ratio_core[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 3; i++) {
            int k = (i + r) % 3;
            bc_hist_reset(h);
            if (k == 0) {
                uint64_t first, last;
                commit_n(p, warm, 64, gap, &first, &last);
                struct follower f;
                follow_start(&f, p, last, last + (uint64_t)n, h);
                commit_n(p, n, 64, gap, &first, &last);
                pthread_join(f.th, NULL);
            } else {
                struct bc_hist *scratch = hist_new();
                baseline_run(e, k == 1, warm, gap, scratch);
                free(scratch);
                baseline_run(e, k == 1, n, gap, h);
            }
            med[k][r] = bc_hist_ns(h, 0.5);
            bc_hist_merge(merged[k], h);
            if (getenv("BENCH_DEBUG"))
                fprintf(stderr, "round %d %s: median %.0f ns p99 %.0f\n", r, lat_cases[k],
                        med[k][r], bc_hist_ns(h, 0.99));
        }
        ratio_js[r] = med[0][r] / med[1][r];
        ratio_core[r] = med[0][r] / med[2][r];
    }
    char label[64], a[32], b[32], what[160];
    for (int k = 0; k < 3; k++) {
        snprintf(label, sizeof label, "%s-%s-1k", lat_cases[k], e->name);
        lat_report(label, merged[k], o->out);
        bc_row("bridge", "%s|%s|1 k/s|%s|%s|%s", e->name,
               k == 0   ? "speculo bridge: commit → mirror's reader"
               : k == 1 ? "JetStream publish (ack) → push consumer"
                        : "NATS core publish → subscriber",
               bc_fmt_ns(a, sizeof a, bc_hist_ns(merged[k], 0.5)),
               bc_fmt_ns(b, sizeof b, bc_hist_ns(merged[k], 0.99)), "-");
    }
    snprintf(what, sizeof what,
             "bridge commit → mirror, median, 1 k chunks/s, %s, vs JetStream publish → consume",
             e->name);
    bc_target(e->replicas == 1 ? "11a" : "11b", what,
              bc_fmt_ns(a, sizeof a, bc_hist_ns(merged[0], 0.5)),
              bc_fmt_ns(b, sizeof b, bc_hist_ns(merged[1], 0.5)),
              bc_median(ratio_js, (size_t)rounds), false, 2.0);
    snprintf(what, sizeof what, "same, %s, vs NATS core publish → receive", e->name);
    bc_factor(
        e->replicas == 1 ? "11c" : "11d", what, bc_fmt_ns(a, sizeof a, bc_hist_ns(merged[0], 0.5)),
        bc_fmt_ns(b, sizeof b, bc_hist_ns(merged[2], 0.5)), bc_median(ratio_core, (size_t)rounds));
    for (int k = 0; k < 3; k++)
        free(merged[k]);
    free(h);
}

/* 64 B chunks back to back: the latency each one sees, and chunks/s end to end. */
static double part_full_speed(const struct bc_opts *o, struct engine *e, struct pair *p)
{
    long n = o->quick ? 200000 : 1000000;
    struct bc_hist *h = hist_new();
    uint64_t last0 = mirror_last_id(p);
    struct follower f;
    follow_start(&f, p, last0, last0 + (uint64_t)n, h);
    uint64_t first, last;
    int64_t start = commit_n(p, n, 64, 0, &first, &last);
    int64_t committed = wall_ns();
    pthread_join(f.th, NULL);
    double secs = (double)(f.done_ns - start) / 1e9;
    double rate = (double)n / secs;
    char label[64], a[32], b[32], c[32], d[32];
    snprintf(label, sizeof label, "bridge-%s-full", e->name);
    lat_report(label, h, o->out);
    bc_row("bridge",
           "%s|speculo bridge: commit → mirror's reader|full speed, 64 B|%s|%s|%s "
           "end to end (the writer: %s)",
           e->name, bc_fmt_ns(a, sizeof a, bc_hist_ns(h, 0.5)),
           bc_fmt_ns(b, sizeof b, bc_hist_ns(h, 0.99)), bc_fmt_rate(c, sizeof c, rate, "chunks/s"),
           bc_fmt_rate(d, sizeof d, (double)n * 1e9 / (double)(committed - start), "chunks/s"));
    free(h);
    return rate;
}

/* 1 MiB chunks back to back, MB/s end to end; a plain JetStream publisher
 * of as many 1 MiB messages. */
static void part_big(const struct bc_opts *o, struct engine *e, struct pair *p, double *bridge,
                     double *plain)
{
    long n = o->quick ? 48 : 192;
    const size_t size = (size_t)1 << 20;
    uint64_t last0 = mirror_last_id(p);
    struct follower f;
    follow_start(&f, p, last0, last0 + (uint64_t)n, NULL);
    uint64_t first, last;
    int64_t start = commit_n(p, n, size, 0, &first, &last);
    pthread_join(f.th, NULL);
    *bridge = (double)n * (double)size / ((double)(f.done_ns - start) / 1e9);

    static unsigned char buf[1 << 20];
    int64_t t0 = wall_ns();
    for (long i = 0; i < n; i++) {
        jsPubAck *pa = NULL;
        jsErrCode je = 0;
        if (js_Publish(&pa, e->js, "benchbig.x", buf, (int)size, NULL, &je) != NATS_OK)
            bc_die("plain publish: %s", nats_GetLastError(NULL));
        jsPubAck_Destroy(pa);
    }
    *plain = (double)n * (double)size / ((double)(wall_ns() - t0) / 1e9);
    char a[32], b[32];
    bc_row("bridge", "%s|speculo bridge vs a plain JetStream publisher|1 MiB chunks|-|-|%s vs %s",
           e->name, bc_fmt_rate(a, sizeof a, *bridge, "B/s"),
           bc_fmt_rate(b, sizeof b, *plain, "B/s"));
}

/* ---- the writer, with and without a forwarder ------------------------------------------------------ */

struct blocking_reader {
    const char *dir, *seg;
    _Atomic int stop; /* a flag */
    pthread_t th;
};

static void *blocking_main(void *arg)
{
    struct blocking_reader *b = arg;
    speculo_reader *r;
    if (speculo_reader_open_at(b->dir, b->seg, 0, &r) < 0)
        bc_die("reader");
    /* observes: the request to stop (a flag) */
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        speculo_chunk c;
        if (speculo_reader_next(r, &c) == -EAGAIN)
            speculo_reader_wait(r, 100);
    }
    speculo_reader_close(r);
    return NULL;
}

/* n puts of 64 B, one every gap_ns (0: back to back), each timed. */
static void put_round(speculo_writer *w, long n, int64_t gap_ns, struct bc_hist *h)
{
    unsigned char msg[64] = {0};
    int64_t next = t_mono_ns();
    for (long i = 0; i < n; i++) {
        if (gap_ns) {
            next += gap_ns;
            sleep_until(next);
        }
        memcpy(msg, &i, sizeof i);
        uint64_t t0 = bc_ticks();
        int rc = speculo_writer_put(w, msg, sizeof msg, NULL, NULL);
        uint64_t t1 = bc_ticks();
        if (rc < 0)
            bc_die("put: %s", speculo_strerror(rc));
        bc_hist_add(h, t1 - t0);
    }
}

static void part_writer(const struct bc_opts *o, struct engine *e)
{
    static const char *const labels[] = {"put-no-reader", "put-blocking-reader", "put-forwarded"};
    static const char *const how[] = {"nobody reads", "a blocking reader follows",
                                      "bridge out forwards"};
    int rounds = o->quick ? 3 : 7;
    long n = o->quick ? 1000 : 5000, fast = o->quick ? 50000 : 200000;
    /* room for every chunk of every round: no collection in the measurement */
    size_t cap = (size_t)(rounds * (n + fast)) * 128 + ((size_t)8 << 20);
    struct pair none, blocking, fwd;
    pair_start(e, &none, "wnone", cap, false, false);
    pair_start(e, &blocking, "wblock", cap, false, false);
    struct blocking_reader br = {.dir = blocking.origin, .seg = blocking.seg};
    if (pthread_create(&br.th, NULL, blocking_main, &br) != 0)
        bc_die("thread");
    pair_start(e, &fwd, "wfwd", cap, true, false); /* forwarded by `out` */
    struct pair *pairs[] = {&none, &blocking, &fwd};
    struct bc_hist *merged[2][3], *h = hist_new();
    double med[2][3][MAX_ROUNDS], vs_block[MAX_ROUNDS], vs_none[MAX_ROUNDS],
        vs_none_fast[MAX_ROUNDS];
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 3; k++)
            merged[g][k] = hist_new();
    for (int r = 0; r < rounds; r++) {
        for (int g = 0; g < 2; g++) /* g 0: 5 k/s; g 1: back to back */
            for (int i = 0; i < 3; i++) {
                int k = (i + r) % 3;
                bc_hist_reset(h);
                put_round(pairs[k]->w, g ? fast : n, g ? 0 : 200000, h);
                med[g][k][r] = bc_hist_ns(h, 0.5);
                bc_hist_merge(merged[g][k], h);
            }
        vs_block[r] = med[0][2][r] / med[0][1][r];
        vs_none[r] = med[0][2][r] / med[0][0][r];
        vs_none_fast[r] = med[1][2][r] / med[1][0][r];
    }
    char a[32], b[32], label[64];
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 3; k++) {
            snprintf(label, sizeof label, "%s%s", labels[k], g ? "-full" : "");
            lat_report(label, merged[g][k], o->out);
            bc_row("bridge", "%s|speculo_writer_put(), %s|%s|%s|%s|-", e->name, how[k],
                   g ? "back to back, 64 B" : "5 k/s, 64 B",
                   bc_fmt_ns(a, sizeof a, bc_hist_ns(merged[g][k], 0.5)),
                   bc_fmt_ns(b, sizeof b, bc_hist_ns(merged[g][k], 0.99)));
        }
    bc_target("11h",
              "writer put() latency (median), 5 k/s, forwarded by bridge out vs followed "
              "by a blocking reader",
              bc_fmt_ns(a, sizeof a, bc_hist_ns(merged[0][2], 0.5)),
              bc_fmt_ns(b, sizeof b, bc_hist_ns(merged[0][1], 0.5)),
              bc_median(vs_block, (size_t)rounds), false, 1.10);
    bc_factor("11i", "same, forwarded vs nobody reading (the wake-up of a sleeping reader)",
              bc_fmt_ns(a, sizeof a, bc_hist_ns(merged[0][2], 0.5)),
              bc_fmt_ns(b, sizeof b, bc_hist_ns(merged[0][0], 0.5)),
              bc_median(vs_none, (size_t)rounds));
    double q = bc_median(vs_none_fast, (size_t)rounds);
    printf("T|11j|writer put() latency (median), back to back, forwarded by bridge out vs nobody "
           "reading|%s|%s|%.3f|≈ 1.00 (0.90-1.10)|%s\n",
           bc_fmt_ns(a, sizeof a, bc_hist_ns(merged[1][2], 0.5)),
           bc_fmt_ns(b, sizeof b, bc_hist_ns(merged[1][0], 0.5)), q,
           q >= 0.9 && q <= 1.1 ? "met" : "MISSED");
    fflush(stdout);
    /* publishes: stop (a flag) */
    atomic_store_explicit(&br.stop, 1, memory_order_relaxed);
    pthread_join(br.th, NULL);
    pair_stop(&none);
    pair_stop(&blocking);
    pair_stop(&fwd);
    for (int g = 0; g < 2; g++)
        for (int k = 0; k < 3; k++)
            free(merged[g][k]);
    free(h);
}

/* ---- one engine ---------------------------------------------------------------------------------- */

static void run_engine(const struct bc_opts *o, int replicas)
{
    struct engine e = {0};
    engine_start(&e, replicas);
    stream_create(&e, "benchjs", "benchjs.>");
    stream_create(&e, "benchbig", "benchbig.>");
    char a[32], what[128];

    struct pair p;
    pair_start(&e, &p, "lat", 0, true, true);
    part_latency(o, &e, &p);
    pair_stop(&p);

    /* room for every chunk: no collection during the measurement */
    pair_start(&e, &p, "tput", (o->quick ? (size_t)64 : 256) << 20, true, true);
    double rate = part_full_speed(o, &e, &p);
    pair_stop(&p);
    snprintf(what, sizeof what, "bridge throughput, 64 B chunks end to end, %s, vs 200 k/s",
             e.name);
    if (replicas == 1)
        bc_target("11e", what, bc_fmt_rate(a, sizeof a, rate, "chunks/s"), "200 k/s",
                  rate / 200000.0, true, 1.0);
    else
        bc_factor("11f", what, bc_fmt_rate(a, sizeof a, rate, "chunks/s"), "200 k/s",
                  rate / 200000.0);

    pair_start(&e, &p, "big", (o->quick ? (size_t)128 : 512) << 20, true, true);
    double bridge, plain;
    part_big(o, &e, &p, &bridge, &plain);
    pair_stop(&p);
    char b[32];
    snprintf(what, sizeof what,
             "bridge, 1 MiB chunks, MB/s end to end, %s, vs a plain JetStream publisher", e.name);
    bc_factor(replicas == 1 ? "11g" : "11g3", what, bc_fmt_rate(a, sizeof a, bridge, "B/s"),
              bc_fmt_rate(b, sizeof b, plain, "B/s"), bridge / plain);

    if (replicas == 1)
        part_writer(o, &e);
    engine_stop(&e);
}

int main(int argc, char **argv)
{
    struct bc_opts o;
    bc_parse(argc, argv, &o);
    ns_per_tick = bc_ticks_to_ns(1000000000) / 1e9;
    const char *tmp = getenv("BENCH_TMP"), *c = getenv("SPECULO_CLI");
    if (!t_nats_find()) {
        bc_note("bridge: skipped (nats-server not installed)");
        return 0;
    }
    if (!c || !realpath(c, cli) || access(cli, X_OK) != 0)
        bc_die("SPECULO_CLI must name cli/speculo");
    snprintf(base, sizeof base, "%s/bridge-%s", tmp ? tmp : "/tmp", bc_tag());
    if (mkdir(base, 0700) < 0)
        bc_die("mkdir %s: %s", base, strerror(errno));
    if (nats_Open(-1) != NATS_OK)
        bc_die("nats_Open");
    bc_head("bridge", "engine|path|load|median|p99|throughput");
    if (bc_want(&o, "r1"))
        run_engine(&o, 1);
    if (bc_want(&o, "r3"))
        run_engine(&o, 3);
    bc_note("bridge: nats-server on loopback (one, or three routed to each other), file storage "
            "on tmpfs; the bridge's processes, the servers and this program share the machine's "
            "CPUs, unpinned");
    nats_Close();
    t_rm_rf(base);
    return 0;
}
