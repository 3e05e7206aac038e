/*
 * The forwarder's queue, publisher and deleter (outq.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outq.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

struct om *om_new(enum br_kind kind, uint64_t uid)
{
    struct om *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    br_msg_init(&m->meta);
    m->meta.kind = kind;
    m->meta.uid = uid;
    return m;
}

void om_free(struct om *m)
{
    if (!m)
        return;
    br_msg_free(&m->meta);
    free(m->buf);
    speculo_mapping_release(m->hold);
    free(m);
}

/* ---- building the NATS message ----------------------------------------------------- */

static int build(const struct br_engine *e, struct om *m, natsMsg **out, char *msg_id,
                 size_t id_size)
{
    struct br_msg meta = m->meta; /* copy: a one-chunk frame is sent as a chunk */
    const void *data = m->ref ? (const void *)m->ref : m->buf;
    size_t len = m->len;
    char subject[BR_SUBJECT_MAX], ids[BR_IDS_TEXT_MAX + 64] = "";
    if (meta.kind == BR_FRAME && m->entries == 1) {
        struct br_entry en;
        size_t off = 0;
        if (br_frame_next(m->buf, m->len, &off, &en) != 1)
            return -EINVAL;
        meta.kind = BR_CHUNK;
        meta.id = en.id;
        meta.committed_ns = en.committed_ns;
        meta.expires_ns = en.expires_ns;
        meta.replaces = en.replaces;
        data = en.data;
        len = en.size;
    }
    switch (meta.kind) {
    case BR_CHUNK:
        if (meta.name[0])
            br_subject_named(e->stream, meta.name, subject, sizeof subject);
        else
            br_subject_chunk(e->stream, meta.uid, meta.id, subject, sizeof subject);
        snprintf(msg_id, id_size, "%016" PRIx64 "-%" PRIu64, meta.uid, meta.id);
        break;
    case BR_PART:
        if (meta.part + 1 < meta.nparts)
            br_subject_part(e->stream, meta.uid, meta.id, meta.part, subject, sizeof subject);
        else if (meta.name[0]) /* the last part goes where the whole chunk would */
            br_subject_named(e->stream, meta.name, subject, sizeof subject);
        else
            br_subject_chunk(e->stream, meta.uid, meta.id, subject, sizeof subject);
        snprintf(msg_id, id_size, "%016" PRIx64 "-%" PRIu64 "-p%" PRIu32, meta.uid, meta.id,
                 meta.part);
        break;
    case BR_FRAME:
        meta.expires_ns = m->never_expires ? 0 : meta.expires_ns;
        br_subject_chunk(e->stream, meta.uid, meta.ids.r[0].lo, subject, sizeof subject);
        snprintf(msg_id, id_size, "%016" PRIx64 "-%" PRIu64 "-%" PRIu64 "-%" PRIu32, meta.uid,
                 meta.ids.r[0].lo, br_ids_last(&meta.ids), m->entries);
        break;
    case BR_OBSOLETE:
        br_subject_notice(e->stream, meta.uid, m->nonce, subject, sizeof subject);
        snprintf(msg_id, id_size, "%016" PRIx64 "-o-%016" PRIx64, meta.uid, m->nonce);
        break;
    case BR_EPOCH:
    case BR_REMOVED:
        br_subject_epoch(e->stream, subject, sizeof subject);
        snprintf(msg_id, id_size, "%016" PRIx64 "-%s", meta.uid, meta.kind == BR_EPOCH ? "e" : "r");
        break;
    }
    if ((meta.kind == BR_FRAME || meta.kind == BR_OBSOLETE) &&
        br_ids_format(&meta.ids, ids, sizeof ids) < 0)
        return -EINVAL;
    if (natsMsg_Create(out, subject, NULL, data, (int)len) != NATS_OK)
        return -ENOMEM;
    if (br_set_headers(*out, &meta, ids) < 0) {
        natsMsg_Destroy(*out);
        return -ENOMEM;
    }
    return 0;
}

/* ---- the publisher ------------------------------------------------------------------- */

static struct om *next_work(struct outq *q)
{
    pthread_mutex_lock(&q->lock);
    while (!q->stop && !q->head)
        pthread_cond_wait(&q->work, &q->lock);
    struct om *m = q->stop ? NULL : q->head;
    if (m)
        m->taken = true;
    pthread_mutex_unlock(&q->lock);
    return m;
}

static void finish(struct outq *q, struct om *m)
{
    pthread_mutex_lock(&q->lock);
    q->head = m->next;
    if (!q->head)
        q->tail = NULL;
    q->count--;
    q->copied -= m->buf ? m->len : 0;
    m->next = NULL;
    if (q->done_tail)
        q->done_tail->next = m;
    else
        q->done = m;
    q->done_tail = m;
    pthread_mutex_unlock(&q->lock);
    speculo_wakeup_signal(q->kick);
}

/* Publish m until it is stored; false when stopping or refused for good. */
static bool publish(struct outq *q, struct om *m, bool *failing)
{
    natsMsg *msg = NULL;
    char msg_id[96], why[256];
    if (build(q->e, m, &msg, msg_id, sizeof msg_id) < 0) {
        br_fatal("cannot make a message of %s %" PRIu64 ": out of memory",
                 br_kind_name(m->meta.kind), br_msg_last_id(&m->meta));
        return false;
    }
    int backoff = BACKOFF_MIN_MS;
    bool ok = false;
    while (!br_stopping()) {
        enum br_result r = br_publish(q->e, msg, msg_id, &m->seq, why, sizeof why);
        if (r == BR_OK) {
            ok = true;
            break;
        }
        if (r == BR_GONE) {
            br_fatal("stream %s was deleted; restart to create it again and forward every "
                     "live chunk",
                     q->e->stream);
            break;
        }
        if (r == BR_FAIL) {
            br_fatal("JetStream refused %s message %s: %s", br_kind_name(m->meta.kind), msg_id,
                     why);
            break;
        }
        if (!*failing) {
            br_log("cannot publish (%s); the segment's writer goes on, chunks wait here and "
                   "are forwarded when JetStream answers again",
                   why);
            *failing = true;
        }
        if (!br_sleep_ms(backoff))
            break;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        br_engine_limits(q->e);
    }
    natsMsg_Destroy(msg);
    if (ok && *failing) {
        br_log("publishing again");
        *failing = false;
    }
    return ok;
}

static void *publisher_main(void *arg)
{
    struct outq *q = arg;
    bool failing = false;
    struct om *m;
    while ((m = next_work(q))) {
        if (!publish(q, m, &failing))
            break;
        finish(q, m);
    }
    return NULL;
}

/* ---- the deleter ------------------------------------------------------------------------- */

static void *deleter_main(void *arg)
{
    struct outq *q = arg;
    bool failing = false;
    int backoff = BACKOFF_MIN_MS;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->stop && q->dqh == q->ndq)
            pthread_cond_wait(&q->dwork, &q->lock);
        if (q->stop)
            break;
        uint64_t seq = q->dq[q->dqh];
        pthread_mutex_unlock(&q->lock);
        char why[256];
        enum br_result r = br_delete(q->e, seq, why, sizeof why);
        if (r == BR_RETRY) {
            if (!failing)
                br_log("cannot delete dead messages from the stream (%s); will retry", why);
            failing = true;
            br_sleep_ms(backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            pthread_mutex_lock(&q->lock);
            continue;
        }
        if (r == BR_FAIL)
            br_log("cannot delete message %" PRIu64 ": %s", seq, why);
        if (failing && r == BR_OK)
            br_log("deleting dead messages again");
        failing = false;
        backoff = BACKOFF_MIN_MS;
        pthread_mutex_lock(&q->lock);
        if (++q->dqh == q->ndq || r == BR_GONE)
            q->dqh = q->ndq = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ---- the queue ------------------------------------------------------------------------------ */

int outq_init(struct outq *q, struct br_engine *e, speculo_wakeup *kick)
{
    memset(q, 0, sizeof *q);
    q->e = e;
    q->kick = kick;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->dwork, NULL);
    return 0;
}

int outq_start(struct outq *q)
{
    if (pthread_create(&q->publisher, NULL, publisher_main, q) != 0)
        return -EAGAIN;
    if (pthread_create(&q->deleter, NULL, deleter_main, q) != 0) {
        outq_stop(q);
        return -EAGAIN;
    }
    q->started = true;
    return 0;
}

static void free_list(struct om *m)
{
    while (m) {
        struct om *n = m->next;
        om_free(m);
        m = n;
    }
}

void outq_stop(struct outq *q)
{
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->work);
    pthread_cond_broadcast(&q->dwork);
    pthread_mutex_unlock(&q->lock);
    if (q->started) {
        pthread_join(q->publisher, NULL);
        pthread_join(q->deleter, NULL);
        q->started = false;
    }
    free_list(q->head);
    free_list(q->done);
    q->head = q->tail = q->done = q->done_tail = NULL;
    free(q->dq);
    q->dq = NULL;
    q->ndq = q->dqh = q->capdq = 0;
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->dwork);
    pthread_mutex_destroy(&q->lock);
}

void outq_push(struct outq *q, struct om *m)
{
    pthread_mutex_lock(&q->lock);
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->count++;
    q->copied += m->buf ? m->len : 0;
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->lock);
}

void outq_lock(struct outq *q)
{
    pthread_mutex_lock(&q->lock);
}

void outq_unlock(struct outq *q)
{
    pthread_mutex_unlock(&q->lock);
}

struct om *outq_open_tail(struct outq *q)
{
    return q->tail && !q->tail->taken ? q->tail : NULL;
}

struct om *outq_take_done(struct outq *q)
{
    pthread_mutex_lock(&q->lock);
    struct om *m = q->done;
    q->done = q->done_tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return m;
}

void outq_delete(struct outq *q, uint64_t seq)
{
    pthread_mutex_lock(&q->lock);
    if (q->ndq == q->capdq && q->dqh > q->capdq / 2) {
        memmove(q->dq, q->dq + q->dqh, (q->ndq - q->dqh) * sizeof *q->dq);
        q->ndq -= q->dqh;
        q->dqh = 0;
    }
    if (q->ndq == q->capdq) {
        size_t cap = q->capdq ? q->capdq * 2 : 256;
        uint64_t *p = realloc(q->dq, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&q->lock);
            return; /* left in the stream: found again after a restart */
        }
        q->dq = p;
        q->capdq = cap;
    }
    q->dq[q->ndq++] = seq;
    pthread_cond_signal(&q->dwork);
    pthread_mutex_unlock(&q->lock);
}

size_t outq_deletes_pending(struct outq *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->ndq - q->dqh;
    pthread_mutex_unlock(&q->lock);
    return n;
}
