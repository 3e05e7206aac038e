/*
 * The forwarder's outgoing queue and the two threads that talk to
 * JetStream for it. The main thread (out.c) reads the segment and appends
 * messages; the publisher publishes them one at a time, in order, each
 * retried (same Nats-Msg-Id) until it is stored, and hands it back with
 * its sequence; the deleter deletes, by sequence, what the tracker says
 * is dead. One publish in flight keeps the stream in commit order; the
 * main thread packs the small chunks read meanwhile into the next frame.
 */
#ifndef BRIDGE_OUTQ_H
#define BRIDGE_OUTQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge.h"

/* An outgoing message. */
struct om {
    struct br_msg meta; /* kind, uid, the chunk's metadata; ids (frame,
                               chunk, part: the chunks it holds; notice: the
                               ids it obsoletes) */
    unsigned char *buf; /* owned bytes: a frame's entries, or a small chunk */
    size_t len, cap;
    const unsigned char *ref; /* else bytes in a held mapping */
    speculo_mapping *hold;
    uint32_t entries;   /* frame: chunks in it */
    bool never_expires; /* frame: one of its chunks never expires */
    uint64_t nonce;     /* notice: makes its subject and Msg-Id unique */
    bool taken;         /* the publisher has it: append nothing more */
    bool failed;        /* never stored (we are stopping) */
    uint64_t seq;       /* where it was stored */
    struct om *next;
};

struct outq {
    struct br_engine *e;
    speculo_wakeup *kick; /* signalled when a message is done */
    pthread_mutex_t lock;
    pthread_cond_t work;    /* publisher: something to publish, or stop */
    pthread_cond_t dwork;   /* deleter: something to delete, or stop */
    struct om *head, *tail; /* to publish; the head may be in flight */
    struct om *done, *done_tail;
    size_t count;  /* messages queued (in flight included) */
    size_t copied; /* bytes they own (the main thread adds what it
                               appends to the open tail) */
    uint64_t *dq;  /* sequences to delete: dq[dqh..ndq) */
    size_t dqh, ndq, capdq;
    bool stop;
    bool started;
    pthread_t publisher, deleter;
};

int outq_init(struct outq *q, struct br_engine *e, speculo_wakeup *kick);
int outq_start(struct outq *q);
/* Stop both threads (a publish in flight is abandoned) and free what is
 * queued. */
void outq_stop(struct outq *q);

struct om *om_new(enum br_kind kind, uint64_t uid);
void om_free(struct om *m);
/* Queue m behind the others. */
void outq_push(struct outq *q, struct om *m);
/* The last queued message if nothing has taken it yet (lock held by the
 * caller: outq_lock/unlock around appending to it). */
struct om *outq_open_tail(struct outq *q);
void outq_lock(struct outq *q);
void outq_unlock(struct outq *q);
/* Take the messages done (stored, in order). */
struct om *outq_take_done(struct outq *q);
/* Queue a deletion. */
void outq_delete(struct outq *q, uint64_t seq);
/* Deletions not done yet. */
size_t outq_deletes_pending(struct outq *q);

#endif
