/*
 * Ping-pong between two processes: the parent (CPU 0) sends, the child
 * (CPU 1) answers, the parent times each round trip (or both unpinned). A
 * case is a pair of functions, one per side; pp_run() forks, pins and
 * collects.
 */
#ifndef BENCH_PP_H
#define BENCH_PP_H

#include <stddef.h>
#include <stdint.h>

#include "bc.h"

struct pp_ctl {                 /* a shared page: rendezvous of the two sides */
    volatile uint32_t parent_step, child_step;
    volatile long limit;         /* round trips in this run: lowered past the time budget */
    char pad[64 - 16];
    volatile uint32_t raw_word __attribute__((aligned(64))); /* the raw case's cache line */
};

struct pp_ctx {
    size_t size;        /* payload of a ping */
    long warm, n;       /* round trips not timed, then timed (at most) */
    double budget_s;    /* time budget of a run: past it, the run ends early */
    uint64_t deadline;  /* in ticks, set by pp_run */
    int touch;          /* the answering side reads the whole payload */
    int clock;          /* raw record case: read the wall clock per record */
    int clear_next;     /* raw record case: clear the next record's commit word too */
    int early;          /* raw record case: store into the header line first, as
                           speculo's alloc does, then the payload, clock and header */
    int unpinned;       /* both sides free to run on any CPU (default: CPU 0 and 1) */
    int read_only;      /* speculo cases: the answering side may not write the ping
                           segment's file, so its waits sleep in slices */
    long gc_every;      /* collect the ping segment every this many round trips (0: never) */
    struct pp_ctl *ctl;
    char seg_ping[64], seg_pong[64];
    int fd[4];
    void *peer;         /* a peer case's own state */
    struct bc_hist *hist, *hist_switch;
};

struct pp_case {
    const char *name;
    int (*setup)(struct pp_ctx *);          /* parent, before fork; may be NULL */
    void (*serve)(struct pp_ctx *);         /* child: answer warm + n pings */
    void (*ping)(struct pp_ctx *);          /* parent: send them, time them */
    void (*teardown)(struct pp_ctx *);      /* parent, after the child exited; may be NULL */
};

/* Run a case once: fills ctx->hist (and ctx->hist_switch). */
void pp_run(const struct pp_case *c, struct pp_ctx *ctx);

/* Rendezvous: one side announces a step, the other waits for it. */
void pp_parent_step(struct pp_ctx *x, uint32_t step);
void pp_child_step(struct pp_ctx *x, uint32_t step);
void pp_await_parent(struct pp_ctx *x, uint32_t step);
void pp_await_child(struct pp_ctx *x, uint32_t step);

/* The number of round trips of this run, as the answering side must read
 * it after each answer: the pinging side lowers it past the time budget. */
static inline long pp_limit(const struct pp_ctx *x)
{
    return __atomic_load_n(&x->ctl->limit, __ATOMIC_ACQUIRE);
}
/* The pinging side, before sending ping i: past the deadline (checked every
 * 256 round trips once warm), make it the last one. */
static inline void pp_check_time(struct pp_ctx *x, long i)
{
    if ((i & 255) == 0 && i > x->warm && bc_ticks() > x->deadline)
        __atomic_store_n(&x->ctl->limit, i + 1, __ATOMIC_RELEASE);
}

/* Segment capacity for `count` records of `size` bytes, with room. */
size_t pp_capacity(size_t size, long count);

extern const struct pp_case pp_raw, pp_rawrec, pp_spin, pp_spin_zc, pp_wait, pp_pipe, pp_socketpair,
    pp_mqueue;

#endif
