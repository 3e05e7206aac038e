/*
 * Helpers of the bridge tests (tb.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "tb.h"

char tb_cli[PATH_MAX];

static char origin_dir[PATH_MAX - 16], mirror_dir[PATH_MAX - 16];
static int log_serial;

/* ---- directories ---------------------------------------------------------------- */

/* TB_KEEP=DIR: keep a copy of each test's directory (segments, server
 * stores and logs, bridge logs) in DIR, for a post-mortem; made at the
 * test process's exit, so also after a failed assertion. */
static void keep_copy(void)
{
    const char *keep = getenv("TB_KEEP");
    if (keep && t_dir()) {
        char cmd[2 * PATH_MAX + 64];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -a '%s' '%s/' 2>/dev/null", keep, t_dir(),
                 keep);
        if (system(cmd) != 0)
            fprintf(stderr, "TB_KEEP: could not copy %s\n", t_dir());
    }
}

void tb_setup(void)
{
    /* in each test's process: the library's threads do not survive a fork */
    ck_assert_int_eq(nats_Open(-1), NATS_OK);
    const char *d = t_dir_setup();
    if (getenv("TB_KEEP"))
        atexit(keep_copy); /* runs before t_dir_setup's removal */
    snprintf(origin_dir, sizeof origin_dir, "%s/origin", d);
    snprintf(mirror_dir, sizeof mirror_dir, "%s/mirror", d);
    ck_assert_int_eq(mkdir(origin_dir, 0700), 0);
    ck_assert_int_eq(mkdir(mirror_dir, 0700), 0);
}

void tb_teardown(void)
{
    keep_copy();
    t_dir_teardown();
}

const char *tb_origin(void)
{
    return origin_dir;
}

const char *tb_mirror(void)
{
    return mirror_dir;
}

/* ---- servers -------------------------------------------------------------------------- */

static void started(int rc, const struct t_nats *s)
{
    ck_assert_msg(rc == 0, "nats-server %s: %s (see %s/server.log)", s->name,
                  rc == -ECHILD ? "exited at start" : strerror(-rc), s->dir);
}

int tb_free_port(void)
{
    int port = t_free_port();
    ck_assert_int_gt(port, 0);
    return port;
}

void tb_server_start(struct t_nats *s, const char *name)
{
    started(t_nats_start(s, t_dir(), name, true, TB_WAIT_MS), s);
}

void tb_server_start_plain(struct t_nats *s, const char *name)
{
    started(t_nats_start(s, t_dir(), name, false, TB_WAIT_MS), s);
}

void tb_server_restart(struct t_nats *s)
{
    started(t_nats_restart(s, TB_WAIT_MS), s);
}

void tb_server_stop(struct t_nats *s)
{
    t_nats_stop(s, SIGTERM);
}

void tb_server_kill(struct t_nats *s)
{
    t_nats_stop(s, SIGKILL);
}

void tb_cluster_start(struct t_nats_cluster *c)
{
    int rc = t_nats_cluster_start(c, t_dir(), TB_WAIT_MS);
    ck_assert_msg(rc == 0, "cluster: %s (see %s/nats-*/server.log)", strerror(-rc), t_dir());
}

/* ---- bridges ------------------------------------------------------------------------------ */

static pid_t spawn_cli(const char *dir, const char *log, char **argv)
{
    pid_t pid = t_speculo_spawn(tb_cli, dir, log, argv);
    ck_assert_int_gt(pid, 0);
    return pid;
}

void tb_bridge_start(struct tb_bridge *b, const char *dir, const char *direction,
                     const char *segment, const char *servers, ...)
{
    char *argv[32] = {"speculo",       "bridge",   (char *)direction,
                      (char *)segment, "--server", (char *)servers};
    int n = 6;
    va_list ap;
    va_start(ap, servers);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 30)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    if (!b->log[0])
        snprintf(b->log, sizeof b->log, "%s/bridge-%s-%d.log", t_dir(), direction, ++log_serial);
    b->pid = spawn_cli(dir, b->log, argv);
}

/* A sanitizer's report in a log fails the test, whatever the exit status. */
static void no_sanitizer_report(const struct tb_bridge *b)
{
    if (tb_log_has(b, "runtime error:") || tb_log_has(b, "Sanitizer")) {
        tb_log_dump(b);
        ck_abort_msg("a sanitizer reported an error in %s", b->log);
    }
}

int tb_bridge_stop(struct tb_bridge *b)
{
    int rc = b->pid > 0 ? t_kill_wait(b->pid, SIGTERM) : -1;
    b->pid = 0;
    no_sanitizer_report(b);
    return rc;
}

void tb_bridge_kill(struct tb_bridge *b)
{
    if (b->pid > 0)
        t_kill_wait(b->pid, SIGKILL);
    b->pid = 0;
    no_sanitizer_report(b);
}

bool tb_bridge_alive(struct tb_bridge *b)
{
    if (b->pid <= 0)
        return false;
    siginfo_t info = {0};
    /* WNOWAIT: an ended process stays to be reaped by tb_bridge_stop */
    return waitid(P_PID, (id_t)b->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (buf)
        buf[got] = '\0';
    return buf;
}

bool tb_log_has(const struct tb_bridge *b, const char *needle)
{
    char *s = slurp(b->log);
    bool found = s && strstr(s, needle);
    free(s);
    return found;
}

int tb_log_count(const struct tb_bridge *b, const char *needle)
{
    char *s = slurp(b->log);
    int n = 0;
    for (char *p = s; p && (p = strstr(p, needle)); p++)
        n++;
    free(s);
    return n;
}

void tb_log_dump(const struct tb_bridge *b)
{
    char *s = slurp(b->log);
    fprintf(stderr, "---- %s ----\n%s---- end ----\n", b->log, s ? s : "");
    free(s);
}

void tb_log_wait_count(const struct tb_bridge *b, const char *needle, int n, int timeout_ms)
{
    int64_t t0 = t_mono_ns();
    while (tb_log_count(b, needle) < n) {
        if (t_ms_since(t0) > timeout_ms) {
            keep_copy();
            tb_log_dump(b);
            ck_abort_msg("fewer than %d log lines with '%s' within %d ms", n, needle, timeout_ms);
        }
        t_sleep_ms(20);
    }
}

void tb_log_wait(const struct tb_bridge *b, const char *needle, int timeout_ms)
{
    tb_log_wait_count(b, needle, 1, timeout_ms);
}

int tb_run(const char *dir, char *err, size_t err_size, ...)
{
    char *argv[32] = {"speculo"};
    int n = 1;
    va_list ap;
    va_start(ap, err_size);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 30)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char log[PATH_MAX];
    snprintf(log, sizeof log, "%s/run-%d.log", t_dir(), ++log_serial);
    pid_t pid = spawn_cli(dir, log, argv);
    int rc = t_wait(pid, TB_WAIT_MS);
    char *s = slurp(log);
    snprintf(err, err_size, "%s", s ? s : "");
    free(s);
    return rc;
}

/* ---- segments ----------------------------------------------------------------------------- */

speculo_writer *tb_writer(const char *dir, const char *segment)
{
    speculo_writer *w = NULL;
    int rc = speculo_writer_open_at(dir, segment, NULL, &w);
    ck_assert_msg(rc == 0, "writer open %s/%s: %s", dir, segment, speculo_strerror(rc));
    return w;
}

uint64_t tb_put(speculo_writer *w, const void *data, size_t size, const char *name, int64_t ttl_ns,
                uint64_t replaces)
{
    struct speculo_commit_options o = {.name = name, .ttl_ns = ttl_ns, .replaces = replaces};
    uint64_t id = 0;
    int rc = speculo_writer_put(w, data, size, &o, &id);
    ck_assert_msg(rc == 0, "put: %s", speculo_strerror(rc));
    return id;
}

uint64_t tb_put_pattern(speculo_writer *w, size_t size, const char *name, int64_t ttl_ns)
{
    void *p;
    int rc = speculo_writer_alloc(w, size, &p);
    ck_assert_msg(rc == 0, "alloc %zu: %s", size, speculo_strerror(rc));
    uint64_t id = speculo_writer_last_id(w) + 1;
    t_fill(p, size, id);
    struct speculo_commit_options o = {.name = name, .ttl_ns = ttl_ns};
    uint64_t got = 0;
    rc = speculo_writer_commit(w, &o, &got);
    ck_assert_msg(rc == 0, "commit: %s", speculo_strerror(rc));
    ck_assert_uint_eq(got, id);
    return id;
}

static bool chunk_same(const speculo_chunk *a, const speculo_chunk *b, char *why, size_t size)
{
    if (a->id != b->id)
        snprintf(why, size, "id %" PRIu64 " at the origin, %" PRIu64 " on the mirror", a->id,
                 b->id);
    else if ((a->name == NULL) != (b->name == NULL) || (a->name && strcmp(a->name, b->name)))
        snprintf(why, size, "chunk %" PRIu64 ": name %s vs %s", a->id, a->name ? a->name : "-",
                 b->name ? b->name : "-");
    else if (a->size != b->size)
        snprintf(why, size, "chunk %" PRIu64 ": %zu bytes vs %zu", a->id, a->size, b->size);
    else if (a->size && memcmp(a->data, b->data, a->size))
        snprintf(why, size, "chunk %" PRIu64 ": bytes differ", a->id);
    else if (a->committed_ns != b->committed_ns || a->expires_ns != b->expires_ns)
        snprintf(why, size, "chunk %" PRIu64 ": times differ", a->id);
    else
        return true;
    return false;
}

bool tb_same(const char *segment, char *why, size_t size)
{
    speculo_reader *o = NULL, *m = NULL;
    int ro = speculo_reader_open_at(origin_dir, segment, 0, &o);
    int rm = speculo_reader_open_at(mirror_dir, segment, 0, &m);
    bool same = false;
    if (ro != 0 || rm != 0) {
        same = ro == -ENOENT && rm == -ENOENT;
        snprintf(why, size, "origin: %s, mirror: %s", ro ? speculo_strerror(ro) : "exists",
                 rm ? speculo_strerror(rm) : "exists");
        goto out;
    }
    struct speculo_segment_ident io, im;
    speculo_reader_ident(o, &io);
    speculo_reader_ident(m, &im);
    if (io.uid != im.uid) {
        snprintf(why, size, "uid %016" PRIx64 " at the origin, %016" PRIx64 " on the mirror",
                 io.uid, im.uid);
        goto out;
    }
    uint64_t n = 0;
    for (;;) {
        speculo_chunk a, b;
        int ra = speculo_reader_next(o, &a), rb = speculo_reader_next(m, &b);
        if (ra == -EAGAIN && rb == -EAGAIN) {
            same = true;
            break;
        }
        if (ra != 0 || rb != 0) {
            snprintf(why, size, "after %" PRIu64 " equal chunks: origin %s, mirror %s", n,
                     ra ? speculo_strerror(ra) : "has more",
                     rb ? speculo_strerror(rb) : "has more");
            break;
        }
        if (!chunk_same(&a, &b, why, size))
            break;
        n++;
    }
out:
    speculo_reader_close(o);
    speculo_reader_close(m);
    return same;
}

void tb_wait_same(const char *segment, int timeout_ms)
{
    char why[256] = "";
    int64_t t0 = t_mono_ns();
    while (!tb_same(segment, why, sizeof why)) {
        if (t_ms_since(t0) >= timeout_ms) {
            keep_copy();
            ck_abort_msg("mirror of %s not equal to the origin: %s", segment, why);
        }
        t_sleep_ms(20);
    }
}

uint64_t tb_live(const char *dir, const char *segment, uint64_t *last_id)
{
    speculo_reader *r = NULL;
    struct speculo_segment_info info = {0};
    if (speculo_reader_open_at(dir, segment, 0, &r) == 0) {
        speculo_reader_info(r, &info);
        speculo_reader_close(r);
    }
    if (last_id)
        *last_id = info.last_id;
    return info.live_chunks;
}

void tb_wait_mirror_id(const char *segment, uint64_t id, int timeout_ms)
{
    int64_t t0 = t_mono_ns();
    uint64_t last = 0;
    for (;;) {
        tb_live(mirror_dir, segment, &last);
        if (last >= id)
            return;
        ck_assert_msg(t_ms_since(t0) < timeout_ms,
                      "the mirror did not reach chunk %" PRIu64 " (it has %" PRIu64 ")", id, last);
        t_sleep_ms(20);
    }
}

/* ---- a writer process ------------------------------------------------------------------ */

struct tb_wshared {
    _Atomic int stop;
    _Atomic uint64_t count;
};

static void wchild_main(struct tb_wshared *sh, const char *dir, const char *segment, size_t big)
{
    speculo_writer *w = NULL;
    T_CHILD_ASSERT(speculo_writer_open_at(dir, segment, NULL, &w) == 0);
    char name[16];
    uint64_t i = 0, last = 0;
    /* observes: the parent's request to stop (a flag) */
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        size_t size = i % 197 == 196 ? big : (size_t)(i * 7919 % 3001);
        snprintf(name, sizeof name, "k%d", (int)(i % 13));
        void *p;
        T_CHILD_ASSERT(speculo_writer_alloc(w, size, &p) == 0);
        t_fill(p, size, speculo_writer_last_id(w) + 1);
        struct speculo_commit_options o = {.name = i % 9 == 0 ? name : NULL,
                                           .replaces = i % 31 == 30 ? last : 0};
        int rc = speculo_writer_commit(w, &o, &last);
        if (rc == -ENOENT) { /* what it replaces died already */
            o.replaces = 0;
            rc = speculo_writer_commit(w, &o, &last);
        }
        T_CHILD_ASSERT(rc == 0);
        /* publishes: how many chunks are committed (a count; the chunks
         * themselves are read through the segment) */
        atomic_store_explicit(&sh->count, ++i, memory_order_relaxed);
        if (i % 2 == 0) /* about 2 k commits/s: the stream must keep up */
            t_sleep_ms(1);
    }
    speculo_writer_close(w);
    _exit(0);
}

void tb_wchild_start(struct tb_wchild *c, const char *dir, const char *segment, size_t big)
{
    c->sh = t_shared_alloc(sizeof *c->sh);
    ck_assert_ptr_nonnull(c->sh);
    c->dir = dir;
    c->segment = segment;
    c->pid = t_fork();
    ck_assert_int_ge(c->pid, 0);
    if (c->pid == 0)
        wchild_main(c->sh, dir, segment, big);
}

uint64_t tb_wchild_count(const struct tb_wchild *c)
{
    /* observes: the writer's count */
    return atomic_load_explicit(&c->sh->count, memory_order_relaxed);
}

void tb_wchild_wait_count(const struct tb_wchild *c, uint64_t n, int timeout_ms)
{
    int64_t t0 = t_mono_ns();
    while (tb_wchild_count(c) < n) {
        ck_assert_msg(t_ms_since(t0) < timeout_ms,
                      "the writer made %" PRIu64 " commits, not %" PRIu64, tb_wchild_count(c), n);
        t_sleep_ms(5);
    }
}

uint64_t tb_wchild_stop(struct tb_wchild *c)
{
    /* publishes: stop (a flag) */
    atomic_store_explicit(&c->sh->stop, 1, memory_order_relaxed);
    ck_assert_int_eq(t_wait(c->pid, TB_WAIT_MS), 0);
    uint64_t last = 0;
    tb_live(c->dir, c->segment, &last);
    t_shared_free(c->sh, sizeof *c->sh);
    c->sh = NULL;
    return last;
}

/* ---- a NATS client -------------------------------------------------------------------------- */

void tb_js_connect(struct tb_js *j, const char *urls)
{
    natsOptions *o = NULL;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", urls);
    const char *list[8];
    int n = 0;
    for (char *p = strtok(buf, ","); p && n < 8; p = strtok(NULL, ","))
        list[n++] = p;
    ck_assert_int_eq(natsOptions_Create(&o), NATS_OK);
    ck_assert_int_eq(natsOptions_SetServers(o, list, n), NATS_OK);
    ck_assert_int_eq(natsOptions_SetMaxReconnect(o, -1), NATS_OK);
    natsStatus s = natsConnection_Connect(&j->nc, o);
    natsOptions_Destroy(o);
    ck_assert_msg(s == NATS_OK, "test client cannot connect to %s", urls);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    ck_assert_int_eq(natsConnection_JetStream(&j->js, j->nc, &jo), NATS_OK);
}

void tb_js_close(struct tb_js *j)
{
    jsCtx_Destroy(j->js);
    natsConnection_Destroy(j->nc);
    j->js = NULL;
    j->nc = NULL;
}

uint64_t tb_stream_msgs(struct tb_js *j, const char *stream)
{
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    int64_t t0 = t_mono_ns();
    natsStatus s;
    while ((s = js_GetStreamInfo(&si, j->js, stream, NULL, &je)) != NATS_OK) {
        ck_assert_msg(t_ms_since(t0) < TB_WAIT_MS, "stream %s: %s", stream, natsStatus_GetText(s));
        t_sleep_ms(100);
    }
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
}

void tb_wait_stream_msgs_at_most(struct tb_js *j, const char *stream, uint64_t n, int timeout_ms)
{
    int64_t t0 = t_mono_ns();
    uint64_t have = 0;
    for (;;) {
        jsStreamInfo *si = NULL;
        jsErrCode je = 0;
        if (js_GetStreamInfo(&si, j->js, stream, NULL, &je) == NATS_OK) {
            have = si->State.Msgs;
            jsStreamInfo_Destroy(si);
            if (have <= n)
                return;
        }
        if (t_ms_since(t0) >= timeout_ms) {
            keep_copy();
            ck_abort_msg("stream %s still holds %" PRIu64 " messages (want at most %" PRIu64 ")",
                         stream, have, n);
        }
        t_sleep_ms(50);
    }
}

uint64_t tb_stream_unique_ids(struct tb_js *j, const char *stream)
{
    char filter[BR_SUBJECT_MAX];
    br_subject_filter(stream, filter, sizeof filter);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    so.Config.HeadersOnly = true;
    natsSubscription *sub = NULL;
    jsErrCode je = 0;
    int64_t t0 = t_mono_ns();
    natsStatus st;
    /* after a leader change, JetStream may not take consumers for a while */
    while ((st = js_SubscribeSync(&sub, j->js, filter, NULL, &so, &je)) != NATS_OK) {
        ck_assert_msg(t_ms_since(t0) < TB_WAIT_MS, "cannot read stream %s: %s", stream,
                      natsStatus_GetText(st));
        t_sleep_ms(100);
    }
    uint64_t *ids = NULL, n = 0, cap = 0;
    struct br_msg m;
    br_msg_init(&m);
    t0 = t_mono_ns();
    for (;;) {
        natsMsg *msg = NULL;
        st = natsSubscription_NextMsg(&msg, sub, 1000);
        if (st == NATS_TIMEOUT) { /* the end, if nothing is pending */
            jsConsumerInfo *ci = NULL;
            bool done = false;
            if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &je) == NATS_OK)
                done = ci->NumPending == 0;
            jsConsumerInfo_Destroy(ci);
            if (done || tb_stream_msgs(j, stream) == 0)
                break;
            ck_assert_msg(t_ms_since(t0) < TB_WAIT_MS, "reading stream %s: stuck", stream);
            continue;
        }
        if (st != NATS_OK)
            continue;
        jsMsgMetaData *md = NULL;
        bool last = natsMsg_GetMetaData(&md, msg) == NATS_OK && md->NumPending == 0;
        jsMsgMetaData_Destroy(md);
        char why[128];
        if (br_parse(msg, &m, why, sizeof why) == 0) {
            struct br_ids one;
            br_ids_init(&one);
            const struct br_ids *hold = &m.ids;
            if (m.kind == BR_CHUNK || (m.kind == BR_PART && m.part == 0)) {
                br_ids_add(&one, m.id);
                hold = &one;
            } else if (m.kind != BR_FRAME) {
                hold = NULL;
            }
            for (size_t r = 0; hold && r < hold->n; r++)
                for (uint64_t id = hold->r[r].lo; id <= hold->r[r].hi; id++) {
                    if (n == cap) {
                        cap = cap ? cap * 2 : 1024;
                        ids = realloc(ids, cap * sizeof *ids);
                        ck_assert_ptr_nonnull(ids);
                    }
                    ids[n++] = id;
                }
            br_ids_free(&one);
        }
        natsMsg_Destroy(msg);
        if (last)
            break;
    }
    br_msg_free(&m);
    natsSubscription_Destroy(sub);
    for (uint64_t a = 1; a < n; a++) /* insertion sort: nearly sorted already */
        for (uint64_t b = a; b > 0 && ids[b - 1] > ids[b]; b--) {
            uint64_t t = ids[b];
            ids[b] = ids[b - 1];
            ids[b - 1] = t;
        }
    for (uint64_t a = 1; a < n; a++)
        ck_assert_msg(ids[a] != ids[a - 1], "chunk %" PRIu64 " is in the stream twice", ids[a]);
    free(ids);
    return n;
}

bool tb_stream_replicas_current(struct tb_js *j, const char *stream, char *leader, size_t size)
{
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    if (js_GetStreamInfo(&si, j->js, stream, NULL, &je) != NATS_OK)
        return false;
    bool ok = si->Cluster && si->Cluster->Leader && si->Cluster->Leader[0] &&
              si->Cluster->ReplicasLen == 2;
    for (int i = 0; ok && i < si->Cluster->ReplicasLen; i++)
        ok = si->Cluster->Replicas[i]->Current && !si->Cluster->Replicas[i]->Offline;
    if (ok)
        snprintf(leader, size, "%s", si->Cluster->Leader);
    jsStreamInfo_Destroy(si);
    return ok;
}

void tb_publish(struct tb_js *j, const char *subject, const void *data, size_t size, ...)
{
    natsMsg *m = NULL;
    ck_assert_int_eq(natsMsg_Create(&m, subject, NULL, data, (int)size), NATS_OK);
    va_list ap;
    va_start(ap, size);
    const char *k;
    while ((k = va_arg(ap, const char *))) {
        const char *v = va_arg(ap, const char *);
        ck_assert_int_eq(natsMsgHeader_Add(m, k, v), NATS_OK);
    }
    va_end(ap);
    jsPubAck *pa = NULL;
    jsErrCode je = 0;
    natsStatus s = js_PublishMsg(&pa, j->js, m, NULL, &je);
    ck_assert_msg(s == NATS_OK, "publish to %s: %s", subject, natsStatus_GetText(s));
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
}
