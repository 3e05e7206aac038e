/* Ping-pong harness and the cases that need nothing but libc and speculo. */
#include "pp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <mqueue.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "speculo.h"

/* ---- harness ------------------------------------------------------------ */

void pp_parent_step(struct pp_ctx *x, uint32_t step)
{
    __atomic_store_n(&x->ctl->parent_step, step, __ATOMIC_RELEASE);
}

void pp_child_step(struct pp_ctx *x, uint32_t step)
{
    __atomic_store_n(&x->ctl->child_step, step, __ATOMIC_RELEASE);
}

void pp_await_parent(struct pp_ctx *x, uint32_t step)
{
    bc_spin_until(&x->ctl->parent_step, step);
}

void pp_await_child(struct pp_ctx *x, uint32_t step)
{
    bc_spin_until(&x->ctl->child_step, step);
}

size_t pp_capacity(size_t size, long count)
{
    /* the id table takes 1/16 of the file, the name index 1/256: room for
     * all the records, so that no collection happens while timing */
    size_t rec = 64 + ((size + 63) & ~(size_t)63), bytes = (size_t)(count + 1) * rec;
    return bytes + bytes / 8 + ((size_t)2 << 20);
}

void pp_run(const struct pp_case *c, struct pp_ctx *x)
{
    static unsigned serial;
    serial++;
    snprintf(x->seg_ping, sizeof x->seg_ping, "%s-%u-a", bc_tag(), serial);
    snprintf(x->seg_pong, sizeof x->seg_pong, "%s-%u-b", bc_tag(), serial);
    x->ctl = bc_shared(sizeof *x->ctl);
    x->ctl->limit = x->warm + x->n;
    double budget_ns = (x->budget_s > 0 ? x->budget_s : 5.0) * 1e9;
    x->deadline = bc_ticks() + (uint64_t)(budget_ns / bc_ticks_to_ns(1));
    if (c->setup && c->setup(x) < 0)
        bc_die("%s: setup failed", c->name);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bc_die("fork: %s", strerror(errno));
    if (pid == 0) {
        if (x->unpinned)
            bc_unpin();
        else
            bc_pin(1);
        c->serve(x);
        _exit(0);
    }
    if (x->unpinned)
        bc_unpin();
    else
        bc_pin(0);
    c->ping(x);
    bc_wait_child(pid, c->name);
    if (c->teardown)
        c->teardown(x);
    speculo_segment_remove(x->seg_ping, SPECULO_REMOVE_FORCE);
    speculo_segment_remove(x->seg_pong, SPECULO_REMOVE_FORCE);
    bc_unshared(x->ctl, sizeof *x->ctl);
    x->ctl = NULL;
}

/* ---- raw: one atomic word in a shared page, the physical limit ------------ */

static void raw_serve(struct pp_ctx *x)
{
    volatile uint32_t *w = &x->ctl->raw_word;
    pp_child_step(x, 1);
    for (uint32_t i = 0; i < (uint32_t)pp_limit(x); i++) {
        while (__atomic_load_n(w, __ATOMIC_ACQUIRE) != 2 * i + 1)
            ;
        __atomic_store_n(w, 2 * i + 2, __ATOMIC_RELEASE);
    }
}

static void raw_ping(struct pp_ctx *x)
{
    volatile uint32_t *w = &x->ctl->raw_word;
    pp_await_child(x, 1);
    for (uint32_t i = 0; i < (uint32_t)pp_limit(x); i++) {
        pp_check_time(x, i);
        uint64_t t0 = bc_ticks();
        __atomic_store_n(w, 2 * i + 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(w, __ATOMIC_ACQUIRE) != 2 * i + 2)
            ;
        uint64_t t1 = bc_ticks();
        if (i >= (uint32_t)x->warm)
            bc_hist_add(x->hist, t1 - t0);
    }
}

const struct pp_case pp_raw = {"raw", NULL, raw_serve, raw_ping, NULL};

/* ---- raw records: the segment's record protocol with no library code ------- */

/* What a commit must do at the least: a 64-byte record header (with the
 * commit time when `clock`), the 64-byte payload, the commit word
 * released; the other side polls the commit word and reads the payload.
 * With the clock and nothing else, the floor of the format; `clear_next`
 * adds the clear of the next record's commit word (on the line the other
 * side polls next), which the library does only after a reservation was
 * given up; `early` writes in the order speculo does (the header line
 * taken first, then the payload, the clock, the rest of the header). Two
 * shared regions, like two segments. */
struct rawrec {
    uint64_t commit, id, size, committed_ns, expires_ns, replaces, obsoleted_by;
    uint32_t name_len, name_hash;
    uint64_t payload[8];
};

static struct rawrec *rawrec_area(struct pp_ctx *x, int k)
{
    return (struct rawrec *)((uint8_t *)x->peer + (size_t)k * (size_t)(x->warm + x->n + 2) *
                                                      sizeof(struct rawrec));
}

static int rawrec_setup(struct pp_ctx *x)
{
    size_t sz = 2 * (size_t)(x->warm + x->n + 2) * sizeof(struct rawrec);
    x->peer = bc_shared(sz);
    memset(x->peer, 0, sz); /* populated before the clock starts */
    return 0;
}

static inline void rawrec_put(struct rawrec *r, uint64_t v, int with_clock, int clear_next,
                              int early)
{
    if (early) {
        /* the line the other side polls, taken back first; then the
         * payload's line while the clock is read */
        r->size = 64;
        r->payload[0] = v;
        for (int k = 1; k < 8; k++)
            r->payload[k] = (uint64_t)k;
    }
    int64_t now = 0;
    if (with_clock) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    r->id = v + 1;
    r->size = 64;
    r->committed_ns = now;
    r->expires_ns = 0;
    r->replaces = 0;
    __atomic_store_n(&r->obsoleted_by, 0, __ATOMIC_RELAXED);
    r->name_len = 0;
    r->name_hash = 0;
    if (!early) {
        r->payload[0] = v;
        for (int k = 1; k < 8; k++)
            r->payload[k] = (uint64_t)k;
    }
    if (clear_next)
        __atomic_store_n(&r[1].commit, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->commit, sizeof *r, __ATOMIC_RELEASE);
}

static inline uint64_t rawrec_get(struct rawrec *r)
{
    while (!__atomic_load_n(&r->commit, __ATOMIC_ACQUIRE))
        ;
    return r->payload[0];
}

static void rawrec_serve(struct pp_ctx *x)
{
    struct rawrec *in = rawrec_area(x, 0), *out = rawrec_area(x, 1);
    for (long i = 0; i < pp_limit(x); i++)
        rawrec_put(&out[i], rawrec_get(&in[i]), x->clock, x->clear_next, x->early);
}

static void rawrec_ping(struct pp_ctx *x)
{
    struct rawrec *out = rawrec_area(x, 0), *in = rawrec_area(x, 1);
    for (long i = 0; i < pp_limit(x); i++) {
        pp_check_time(x, i);
        uint64_t t0 = bc_ticks();
        rawrec_put(&out[i], (uint64_t)i, x->clock, x->clear_next, x->early);
        uint64_t v = rawrec_get(&in[i]);
        uint64_t t1 = bc_ticks();
        if (v != (uint64_t)i)
            bc_die("raw records: wrong answer");
        if (i >= x->warm)
            bc_hist_add(x->hist, t1 - t0);
    }
}

static void rawrec_teardown(struct pp_ctx *x)
{
    bc_unshared(x->peer, 2 * (size_t)(x->warm + x->n + 2) * sizeof(struct rawrec));
    x->peer = NULL;
}

const struct pp_case pp_rawrec = {"raw-record", rawrec_setup, rawrec_serve, rawrec_ping,
                                  rawrec_teardown};

/* ---- speculo ---------------------------------------------------------------- */

static speculo_writer *open_writer(const char *seg, size_t capacity, bool manual_gc)
{
    struct speculo_writer_options o = {.capacity = capacity};
    if (manual_gc) {
        o.gc_dead_percent = 100;
        o.gc_min_dead_bytes = (size_t)1 << 60;
    }
    speculo_writer *w;
    int rc = speculo_writer_open(seg, &o, &w);
    if (rc < 0)
        bc_die("writer_open %s: %s", seg, speculo_strerror(rc));
    return w;
}

static speculo_reader *open_reader(const char *seg)
{
    speculo_reader *r;
    int rc = speculo_reader_open(seg, &r);
    if (rc < 0)
        bc_die("reader_open %s: %s", seg, speculo_strerror(rc));
    return r;
}

/*
 * A reader that cannot open its segment's file for writing cannot register
 * as a waiter: speculo_reader_wait() then sleeps in slices of at most a
 * millisecond. For that case the ping segment's file is made read-only
 * (0444; its writer keeps its mapping) and the answering side, when root,
 * gives up the capability that lets root write it anyway; everything else
 * it does (its own segment, the mapping) is unchanged.
 */
static void make_read_only(const char *seg)
{
    char dir[4096], path[4200];
    if (speculo_segment_dir(dir, sizeof dir) < 0)
        bc_die("segment dir");
    snprintf(path, sizeof path, "%s/%s", dir, seg);
    if (chmod(path, 0444) < 0)
        bc_die("chmod %s: %s", path, strerror(errno));
}

static void drop_write_override(void)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    if (geteuid() != 0)
        return; /* the mode alone keeps us out */
    if (syscall(SYS_capget, &h, d) < 0)
        bc_die("capget: %s", strerror(errno));
    d[0].effective &= ~(1u << CAP_DAC_OVERRIDE);
    if (syscall(SYS_capset, &h, d) < 0)
        bc_die("capset: %s", strerror(errno));
}

/* Both sides: own writer first, then the other side's reader. */
static void spec_connect(struct pp_ctx *x, bool parent, size_t ping_cap, speculo_writer **w,
                         speculo_reader **r)
{
    long total = x->warm + x->n;
    if (parent) {
        *w = open_writer(x->seg_ping, ping_cap, x->gc_every > 0);
        if (x->read_only)
            make_read_only(x->seg_ping);
        pp_parent_step(x, 1);
        pp_await_child(x, 1);
        *r = open_reader(x->seg_pong);
        pp_parent_step(x, 2);
        pp_await_child(x, 2);
    } else {
        *w = open_writer(x->seg_pong, pp_capacity(64, total), false);
        pp_child_step(x, 1);
        pp_await_parent(x, 1);
        if (x->read_only)
            drop_write_override();
        *r = open_reader(x->seg_ping);
        pp_child_step(x, 2);
        pp_await_parent(x, 2);
    }
}

static uint64_t touch_all(const void *p, size_t n)
{
    const uint64_t *q = p;
    uint64_t s = 0;
    for (size_t i = 0; i < n / 8; i++)
        s += q[i];
    return s;
}

/* Busy-polling reader: next() until something comes. */
static inline void next_spin(speculo_reader *r, speculo_chunk *c)
{
    int rc;
    while ((rc = speculo_reader_next(r, c)) == -EAGAIN)
        ;
    if (rc < 0)
        bc_die("next: %s", speculo_strerror(rc));
}

/* Blocking reader: wait() when nothing is there. */
static inline void next_wait(speculo_reader *r, speculo_chunk *c)
{
    int rc;
    while ((rc = speculo_reader_next(r, c)) == -EAGAIN) {
        rc = speculo_reader_wait(r, -1);
        if (rc < 0 && rc != -EINTR)
            bc_die("wait: %s", speculo_strerror(rc));
    }
    if (rc < 0)
        bc_die("next: %s", speculo_strerror(rc));
}

static void spec_serve(struct pp_ctx *x, bool blocking)
{
    speculo_writer *w;
    speculo_reader *r;
    spec_connect(x, false, 0, &w, &r);
    uint64_t msg[8] = {0};
    volatile uint64_t sink = 0;
    for (long i = 0; i < pp_limit(x); i++) {
        speculo_chunk c;
        if (blocking)
            next_wait(r, &c);
        else
            next_spin(r, &c);
        if (c.size >= 8)
            msg[0] = *(const uint64_t *)c.data;
        if (x->touch)
            sink += touch_all(c.data, c.size);
        int rc = speculo_writer_put(w, msg, sizeof msg, NULL, NULL);
        if (rc < 0)
            bc_die("put: %s", speculo_strerror(rc));
    }
    (void)sink;
    speculo_reader_close(r);
    speculo_writer_close(w);
}

static void spin_serve(struct pp_ctx *x) { spec_serve(x, false); }
static void wait_serve(struct pp_ctx *x) { spec_serve(x, true); }

/* A put of 64 bytes (copy included) to the answer, timed. With gc_every,
 * the ping is a named block and the parent collects its segment every
 * gc_every round trips (not timed): the next round trip then includes the
 * reader's switch to the new file. */
static void spec_ping(struct pp_ctx *x, bool blocking)
{
    speculo_writer *w;
    speculo_reader *r;
    long total = x->warm + x->n;
    size_t cap = x->gc_every ? pp_capacity(64, 2 * x->gc_every + 64) : pp_capacity(64, total);
    spec_connect(x, true, cap, &w, &r);
    uint64_t msg[8] = {0};
    struct speculo_commit_options named = {.name = "ping"};
    bool switched = false;
    for (long i = 0; i < pp_limit(x); i++) {
        pp_check_time(x, i);
        msg[0] = (uint64_t)i;
        speculo_chunk c;
        uint64_t t0 = bc_ticks();
        int rc = speculo_writer_put(w, msg, sizeof msg, x->gc_every ? &named : NULL, NULL);
        if (rc < 0)
            bc_die("put: %s", speculo_strerror(rc));
        if (blocking)
            next_wait(r, &c);
        else
            next_spin(r, &c);
        uint64_t t1 = bc_ticks();
        if (c.size != 64 || *(const uint64_t *)c.data != (uint64_t)i)
            bc_die("ping-pong: wrong answer");
        if (i >= x->warm)
            bc_hist_add(switched && x->hist_switch ? x->hist_switch : x->hist, t1 - t0);
        switched = false;
        if (x->gc_every && i % x->gc_every == x->gc_every - 1) {
            rc = speculo_writer_gc(w);
            if (rc < 0)
                bc_die("gc: %s", speculo_strerror(rc));
            switched = true;
        }
    }
    speculo_reader_close(r);
    speculo_writer_close(w);
}

static void spin_ping(struct pp_ctx *x) { spec_ping(x, false); }
static void wait_ping(struct pp_ctx *x) { spec_ping(x, true); }

const struct pp_case pp_spin = {"speculo-spin", NULL, spin_serve, spin_ping, NULL};
const struct pp_case pp_wait = {"speculo-wait", NULL, wait_serve, wait_ping, NULL};

/* Zero copy: the ping is reserved and filled (its first 8 bytes, as a
 * producer writing in place would) before the clock starts; the commit and
 * the answer are timed. The answer is a 64-byte put. */
static void zc_ping(struct pp_ctx *x)
{
    speculo_writer *w;
    speculo_reader *r;
    long total = x->warm + x->n;
    spec_connect(x, true, pp_capacity(x->size, total), &w, &r);
    for (long i = 0; i < pp_limit(x); i++) {
        pp_check_time(x, i);
        void *p;
        int rc = speculo_writer_alloc(w, x->size, &p);
        if (rc < 0)
            bc_die("alloc %zu: %s", x->size, speculo_strerror(rc));
        if (x->size >= 8)
            *(uint64_t *)p = (uint64_t)i;
        speculo_chunk c;
        uint64_t t0 = bc_ticks();
        rc = speculo_writer_commit(w, NULL, NULL);
        if (rc < 0)
            bc_die("commit: %s", speculo_strerror(rc));
        next_spin(r, &c);
        uint64_t t1 = bc_ticks();
        if (x->size >= 8 && *(const uint64_t *)c.data != (uint64_t)i)
            bc_die("zero-copy ping-pong: wrong answer");
        if (i >= x->warm)
            bc_hist_add(x->hist, t1 - t0);
    }
    speculo_reader_close(r);
    speculo_writer_close(w);
}

const struct pp_case pp_spin_zc = {"speculo-zc", NULL, spin_serve, zc_ping, NULL};

/* ---- pipe, socketpair: 64-byte messages through the kernel -------------- */

static void full_read(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            bc_die("read: %s", k < 0 ? strerror(errno) : "end of file");
        }
        got += (size_t)k;
    }
}

static void full_write(int fd, const void *buf, size_t n)
{
    if (write(fd, buf, n) != (ssize_t)n)
        bc_die("write: %s", strerror(errno));
}

static int pipe_setup(struct pp_ctx *x)
{
    return pipe(x->fd) < 0 || pipe(x->fd + 2) < 0 ? -1 : 0;
}

static int sock_setup(struct pp_ctx *x)
{
    return socketpair(AF_UNIX, SOCK_STREAM, 0, x->fd) < 0 ? -1 : 0;
}

/* fd[0]/fd[1]: parent->child pipe; fd[2]/fd[3]: child->parent pipe. For a
 * socketpair both directions go through fd[0] (parent) and fd[1] (child). */
static void stream_serve(struct pp_ctx *x, int in, int out)
{
    uint64_t msg[8];
    for (long i = 0; i < pp_limit(x); i++) {
        full_read(in, msg, sizeof msg);
        full_write(out, msg, sizeof msg);
    }
}

static void stream_ping(struct pp_ctx *x, int out, int in)
{
    uint64_t msg[8] = {0};
    for (long i = 0; i < pp_limit(x); i++) {
        pp_check_time(x, i);
        msg[0] = (uint64_t)i;
        uint64_t t0 = bc_ticks();
        full_write(out, msg, sizeof msg);
        full_read(in, msg, sizeof msg);
        uint64_t t1 = bc_ticks();
        if (msg[0] != (uint64_t)i)
            bc_die("stream ping-pong: wrong answer");
        if (i >= x->warm)
            bc_hist_add(x->hist, t1 - t0);
    }
}

static void close_fds(struct pp_ctx *x, int n)
{
    for (int i = 0; i < n; i++)
        close(x->fd[i]);
}

static void pipe_serve(struct pp_ctx *x)
{
    close(x->fd[1]);
    close(x->fd[2]);
    stream_serve(x, x->fd[0], x->fd[3]);
}
static void pipe_ping(struct pp_ctx *x) { stream_ping(x, x->fd[1], x->fd[2]); }
static void pipe_teardown(struct pp_ctx *x) { close_fds(x, 4); }
static void sock_serve(struct pp_ctx *x)
{
    close(x->fd[0]);
    stream_serve(x, x->fd[1], x->fd[1]);
}
static void sock_ping(struct pp_ctx *x) { stream_ping(x, x->fd[0], x->fd[0]); }
static void sock_teardown(struct pp_ctx *x) { close_fds(x, 2); }

const struct pp_case pp_pipe = {"pipe", pipe_setup, pipe_serve, pipe_ping, pipe_teardown};
const struct pp_case pp_socketpair = {"socketpair", sock_setup, sock_serve, sock_ping,
                                      sock_teardown};

/* ---- POSIX message queues --------------------------------------------------- */

static int mq_setup(struct pp_ctx *x)
{
    struct mq_attr a = {.mq_maxmsg = 4, .mq_msgsize = 64};
    char n[80];
    for (int k = 0; k < 2; k++) {
        snprintf(n, sizeof n, "/%s-%c", k ? x->seg_pong : x->seg_ping, 'q');
        mq_unlink(n);
        mqd_t q = mq_open(n, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
        if (q == (mqd_t)-1)
            return -1;
        x->fd[k] = (int)q;
        mq_unlink(n); /* stays usable through the descriptors; nothing is left behind */
    }
    return 0;
}

static void mq_xfer(mqd_t out, mqd_t in, uint64_t *msg)
{
    if (mq_send(out, (const char *)msg, 64, 0) < 0)
        bc_die("mq_send: %s", strerror(errno));
    while (mq_receive(in, (char *)msg, 64, NULL) != 64) {
        if (errno != EINTR)
            bc_die("mq_receive: %s", strerror(errno));
    }
}

static void mq_serve(struct pp_ctx *x)
{
    uint64_t msg[8];
    for (long i = 0; i < pp_limit(x); i++) {
        while (mq_receive((mqd_t)x->fd[0], (char *)msg, 64, NULL) != 64) {
            if (errno != EINTR)
                bc_die("mq_receive: %s", strerror(errno));
        }
        if (mq_send((mqd_t)x->fd[1], (const char *)msg, 64, 0) < 0)
            bc_die("mq_send: %s", strerror(errno));
    }
}

static void mq_ping(struct pp_ctx *x)
{
    uint64_t msg[8] = {0};
    for (long i = 0; i < pp_limit(x); i++) {
        pp_check_time(x, i);
        msg[0] = (uint64_t)i;
        uint64_t t0 = bc_ticks();
        mq_xfer((mqd_t)x->fd[0], (mqd_t)x->fd[1], msg);
        uint64_t t1 = bc_ticks();
        if (msg[0] != (uint64_t)i)
            bc_die("mq ping-pong: wrong answer");
        if (i >= x->warm)
            bc_hist_add(x->hist, t1 - t0);
    }
}

static void mq_teardown(struct pp_ctx *x)
{
    mq_close((mqd_t)x->fd[0]);
    mq_close((mqd_t)x->fd[1]);
}

const struct pp_case pp_mqueue = {"mqueue", mq_setup, mq_serve, mq_ping, mq_teardown};
