/*
 * The forwarder's queue, publishing and deleting (outq.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outq.h"

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
/* How long an ack may take before the message is sent again (the same
 * Msg-Id: stored once if it was stored after all). */
#define ACK_TIMEOUT_NS 5000000000LL

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

static int build(const struct br_engine *e, const struct om *m, const char *reply, natsMsg **out,
                 char *msg_id, size_t id_size)
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
    if (natsMsg_Create(out, subject, reply, data, (int)len) != NATS_OK)
        return -ENOMEM;
    if (br_set_headers(*out, &meta, ids) < 0 ||
        natsMsgHeader_Set(*out, "Nats-Msg-Id", msg_id) != NATS_OK) {
        natsMsg_Destroy(*out);
        return -ENOMEM;
    }
    return 0;
}

/* ---- acks ----------------------------------------------------------------------------- */

/* The number after `"key":` in a JetStream API answer (JSON from the
 * server), or false. */
static bool json_u64(const char *json, int len, const char *key, uint64_t *v)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = memmem(json, (size_t)len, pat, strlen(pat));
    if (!p)
        return false;
    p += strlen(pat);
    while (p < json + len && *p == ' ')
        p++;
    uint64_t x = 0;
    int digits = 0;
    for (; p < json + len && *p >= '0' && *p <= '9' && digits < 20; p++, digits++)
        x = x * 10 + (uint64_t)(*p - '0');
    *v = x;
    return digits > 0;
}

/* The ack (or refusal) of a publish; the inbox's callback, on a thread of
 * the NATS library. */
static void on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    struct outq *q = arg;
    const char *subject = natsMsg_GetSubject(msg), *dot = strrchr(subject, '.');
    uint64_t token = 0;
    if (dot && br_parse_u64(dot + 1, &token)) {
        const char *data = natsMsg_GetData(msg);
        int len = natsMsg_GetDataLength(msg);
        uint64_t seq = 0, code = 0;
        enum br_result r;
        char why[256] = "";
        if (natsMsg_IsNoResponders(msg)) {
            r = BR_RETRY;
            snprintf(why, sizeof why, "JetStream is not available");
        } else if (memmem(data, (size_t)len, "\"error\"", 7)) {
            json_u64(data, len, "err_code", &code);
            r = code == JSStreamNotFoundErr                                             ? BR_GONE
                : code == JSStreamMessageExceedsMaximumErr || code == JSStreamSealedErr ? BR_FAIL
                                                                                        : BR_RETRY;
            snprintf(why, sizeof why, "JetStream: %.*s", len < 200 ? len : 200, data);
        } else if (json_u64(data, len, "seq", &seq) && seq) {
            r = BR_OK;
        } else {
            r = BR_RETRY;
            snprintf(why, sizeof why, "an answer that is not an ack");
        }
        pthread_mutex_lock(&q->ack.lock);
        if (token == q->ack.token) {
            q->ack.have = true;
            q->ack.result = r;
            q->ack.seq = seq;
            snprintf(q->ack.why, sizeof q->ack.why, "%s", why);
        }
        pthread_mutex_unlock(&q->ack.lock);
        speculo_wakeup_signal(q->kick);
    }
    natsMsg_Destroy(msg);
}

/* ---- publishing ------------------------------------------------------------------------- */

static void failed_attempt(struct outq *q, const char *why)
{
    if (!q->failing)
        br_log("cannot publish (%s); the segment's writer goes on, chunks wait here and are "
               "forwarded when JetStream answers again",
               why);
    q->failing = true;
    q->retry_ns = br_mono_ns() + (int64_t)q->backoff_ms * 1000000;
    q->backoff_ms = q->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : q->backoff_ms * 2;
    q->token = 0;
}

/* Send the head (again): a new attempt, a new reply subject. */
static void send_head(struct outq *q)
{
    struct om *m = q->head;
    m->taken = true;
    q->retry_ns = 0;
    if (natsConnection_Status(q->e->nc) != NATS_CONN_STATUS_CONNECTED) {
        failed_attempt(q, "not connected");
        return;
    }
    pthread_mutex_lock(&q->ack.lock);
    uint64_t token = ++q->ack.token;
    q->ack.have = false;
    pthread_mutex_unlock(&q->ack.lock);
    char reply[96];
    snprintf(reply, sizeof reply, "%s.%" PRIu64, q->inbox, token);
    natsMsg_Destroy(q->msg);
    q->msg = NULL;
    if (build(q->e, m, reply, &q->msg, q->msg_id, sizeof q->msg_id) < 0) {
        br_fatal("cannot make a message of %s %" PRIu64 ": out of memory",
                 br_kind_name(m->meta.kind), br_msg_last_id(&m->meta));
        return;
    }
    natsStatus s = natsConnection_PublishMsg(q->e->nc, q->msg);
    if (s == NATS_MAX_PAYLOAD) {
        br_fatal("%s message %s exceeds the server's max_payload (servers of a cluster must "
                 "share it)",
                 br_kind_name(m->meta.kind), q->msg_id);
        return;
    }
    if (s != NATS_OK) {
        failed_attempt(q, natsStatus_GetText(s));
        return;
    }
    q->token = token;
    q->sent_ns = br_mono_ns();
}

/* Take in the head's ack, if any: true when the head is done (stored). */
static bool take_ack(struct outq *q)
{
    pthread_mutex_lock(&q->ack.lock);
    bool have = q->ack.have && q->ack.token == q->token;
    struct ack a = {.result = q->ack.result, .seq = q->ack.seq};
    memcpy(a.why, q->ack.why, sizeof a.why);
    q->ack.have = false;
    pthread_mutex_unlock(&q->ack.lock);
    if (!have) {
        if (br_mono_ns() - q->sent_ns > ACK_TIMEOUT_NS)
            failed_attempt(q, "no answer from JetStream");
        return false;
    }
    switch (a.result) {
    case BR_OK:
        q->head->seq = a.seq;
        return true;
    case BR_GONE:
        br_fatal("stream %s was deleted; restart to create it again and forward every live chunk",
                 q->e->stream);
        break;
    case BR_FAIL:
        br_fatal("JetStream refused %s message %s: %s", br_kind_name(q->head->meta.kind), q->msg_id,
                 a.why);
        break;
    case BR_RETRY:
        failed_attempt(q, a.why);
        break;
    }
    return false;
}

struct om *outq_pump(struct outq *q, int64_t *due_ns)
{
    struct om *done = NULL, **tail = &done;
    *due_ns = 0;
    while (q->head && !br_stopping()) {
        if (q->token && take_ack(q)) { /* stored: the next one */
            struct om *m = q->head;
            q->head = m->next;
            if (!q->head)
                q->tail = NULL;
            q->count--;
            q->copied -= m->buf ? m->len : 0;
            m->next = NULL;
            *tail = m;
            tail = &m->next;
            q->token = 0;
            if (q->failing)
                br_log("publishing again");
            q->failing = false;
            q->backoff_ms = BACKOFF_MIN_MS;
            continue;
        }
        if (q->token) { /* in flight */
            *due_ns = q->sent_ns + ACK_TIMEOUT_NS;
            break;
        }
        if (q->retry_ns && br_mono_ns() < q->retry_ns) {
            *due_ns = q->retry_ns;
            break;
        }
        if (q->retry_ns)
            br_engine_limits(q->e); /* a reconnection may have changed them */
        send_head(q);
        if (!q->token && !q->retry_ns)
            break; /* fatal */
    }
    return done;
}

/* ---- the deleter ------------------------------------------------------------------------- */

static void *deleter_main(void *arg)
{
    struct outq *q = arg;
    bool failing = false;
    int backoff = BACKOFF_MIN_MS;
    pthread_mutex_lock(&q->dlock);
    for (;;) {
        while (!q->stop && q->dqh == q->ndq)
            pthread_cond_wait(&q->dwork, &q->dlock);
        if (q->stop)
            break;
        uint64_t seq = q->dq[q->dqh];
        pthread_mutex_unlock(&q->dlock);
        char why[256];
        enum br_result r = br_delete(q->e, seq, why, sizeof why);
        if (r == BR_RETRY) {
            if (!failing)
                br_log("cannot delete dead messages from the stream (%s); will retry", why);
            failing = true;
            br_sleep_ms(backoff);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
            pthread_mutex_lock(&q->dlock);
            continue;
        }
        if (r == BR_FAIL)
            br_log("cannot delete message %" PRIu64 ": %s", seq, why);
        if (failing && r == BR_OK)
            br_log("deleting dead messages again");
        failing = false;
        backoff = BACKOFF_MIN_MS;
        pthread_mutex_lock(&q->dlock);
        if (++q->dqh == q->ndq || r == BR_GONE)
            q->dqh = q->ndq = 0;
    }
    pthread_mutex_unlock(&q->dlock);
    return NULL;
}

void outq_delete(struct outq *q, uint64_t seq)
{
    pthread_mutex_lock(&q->dlock);
    if (q->ndq == q->capdq && q->dqh > q->capdq / 2) {
        memmove(q->dq, q->dq + q->dqh, (q->ndq - q->dqh) * sizeof *q->dq);
        q->ndq -= q->dqh;
        q->dqh = 0;
    }
    if (br_grow((void **)&q->dq, &q->capdq, q->ndq + 1, sizeof *q->dq) < 0) {
        pthread_mutex_unlock(&q->dlock);
        return; /* left in the stream: found again after a restart */
    }
    q->dq[q->ndq++] = seq;
    pthread_cond_signal(&q->dwork);
    pthread_mutex_unlock(&q->dlock);
}

/* ---- the queue ------------------------------------------------------------------------------ */

int outq_start(struct outq *q, struct br_engine *e, speculo_wakeup *kick)
{
    memset(q, 0, sizeof *q);
    q->e = e;
    q->kick = kick;
    q->backoff_ms = BACKOFF_MIN_MS;
    pthread_mutex_init(&q->ack.lock, NULL);
    pthread_mutex_init(&q->dlock, NULL);
    pthread_cond_init(&q->dwork, NULL);
    natsInbox *inbox = NULL;
    if (natsInbox_Create(&inbox) != NATS_OK) {
        br_log("out of memory");
        return -1;
    }
    snprintf(q->inbox, sizeof q->inbox, "%s", inbox);
    natsInbox_Destroy(inbox);
    char filter[80];
    snprintf(filter, sizeof filter, "%s.*", q->inbox);
    if (natsConnection_Subscribe(&q->acks, e->nc, filter, on_ack, q) != NATS_OK) {
        br_log("cannot subscribe to %s", filter);
        return -1;
    }
    natsSubscription_SetPendingLimits(q->acks, -1, -1);
    if (pthread_create(&q->deleter, NULL, deleter_main, q) != 0) {
        br_log("cannot start a thread");
        return -1;
    }
    q->started = true;
    return 0;
}

void outq_stop(struct outq *q)
{
    pthread_mutex_lock(&q->dlock);
    q->stop = true;
    pthread_cond_broadcast(&q->dwork);
    pthread_mutex_unlock(&q->dlock);
    if (q->started)
        pthread_join(q->deleter, NULL);
    q->started = false;
    if (q->acks) {
        natsSubscription_Unsubscribe(q->acks);
        natsSubscription_Destroy(q->acks);
        q->acks = NULL;
    }
    natsMsg_Destroy(q->msg);
    q->msg = NULL;
    while (q->head) {
        struct om *n = q->head->next;
        om_free(q->head);
        q->head = n;
    }
    q->tail = NULL;
    free(q->dq);
    q->dq = NULL;
    q->ndq = q->dqh = q->capdq = 0;
}

void outq_push(struct outq *q, struct om *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->count++;
    q->copied += m->buf ? m->len : 0;
}

struct om *outq_open_tail(struct outq *q)
{
    return q->tail && !q->tail->taken ? q->tail : NULL;
}
