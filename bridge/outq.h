/*
 * The forwarder's outgoing queue, its publishing and its deleting.
 *
 * The main thread (out.c) reads the segment, appends messages to the
 * queue, and pumps it (outq_pump): one message in flight, published from
 * that thread (no hop to another thread on the way to the socket), its
 * JetStream ack received on an inbox subscription whose callback kicks the
 * main thread's wait. A message is retried with the same Nats-Msg-Id (the
 * stream's duplicate window stores it once) until it is stored, so the
 * stream stays in commit order; the main thread packs the small chunks it
 * reads meanwhile into the next frame. A thread of its own deletes, by
 * sequence, what the tracker says is dead.
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
    bool taken;         /* in flight: append nothing more */
    uint64_t seq;       /* where it was stored */
    struct om *next;
};

/* The ack of the message in flight, as the inbox callback found it. */
struct ack {
    pthread_mutex_t lock;
    uint64_t token; /* the attempt it answers */
    bool have;
    enum br_result result;
    uint64_t seq;
    char why[256];
};

struct outq {
    struct br_engine *e;
    speculo_wakeup *kick; /* signalled when an ack comes */
    /* the main thread's */
    struct om *head, *tail; /* to publish; the head may be in flight */
    size_t count;           /* messages queued (in flight included) */
    size_t copied;          /* bytes they own */
    natsMsg *msg;           /* the head, built, when in flight */
    char msg_id[96];
    uint64_t token;   /* the attempt in flight (0: none) */
    int64_t sent_ns;  /* monotonic: when it was sent */
    int64_t retry_ns; /* monotonic: when to try again (0: not waiting) */
    int backoff_ms;
    bool failing; /* the last attempts failed (logged once) */
    /* the inbox */
    char inbox[64];
    natsSubscription *acks;
    struct ack ack;
    /* the deleter */
    pthread_mutex_t dlock;
    pthread_cond_t dwork;
    uint64_t *dq; /* sequences to delete: dq[dqh..ndq) */
    size_t dqh, ndq, capdq;
    bool stop;
    bool started;
    pthread_t deleter;
};

/* Subscribe to the acks' inbox, start the deleter. -1 (logged) on error. */
int outq_start(struct outq *q, struct br_engine *e, speculo_wakeup *kick);
/* Stop the deleter, drop the subscription, free what is queued. */
void outq_stop(struct outq *q);

struct om *om_new(enum br_kind kind, uint64_t uid);
void om_free(struct om *m);
/* Queue m behind the others. */
void outq_push(struct outq *q, struct om *m);
/* The last queued message while it is not in flight (to append to). */
struct om *outq_open_tail(struct outq *q);
/*
 * Move the queue on: take in the ack of the message in flight, retry it
 * when it failed or no ack came in time, send the next one. Returns the
 * messages stored since the last call, in order (the caller frees them);
 * *due_ns receives the monotonic instant when it must be called again
 * without a kick (a retry, an ack's deadline), 0 if none.
 */
struct om *outq_pump(struct outq *q, int64_t *due_ns);
/* Queue a deletion. */
void outq_delete(struct outq *q, uint64_t seq);

#endif
