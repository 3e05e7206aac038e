/*
 * The NATS side: the connection (one per process, reconnecting for ever
 * once made), the stream, and the few JetStream requests the bridge makes:
 * publish, delete a message by sequence, read every message's headers.
 *
 * What the bridge avoids of nats-server 2.9.10 (found wanting there): the
 * Nats-Rollup header, purges filtered by subject while consumers are
 * live, and Nats-Expected-Last-* headers together with retried publishes.
 * Retries are made safe by Nats-Msg-Id instead (the stream's duplicate
 * window), garbage collection deletes message by message.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "cli.h"

#define MAX_SERVERS 32
#define CONNECT_TIMEOUT_MS 3000
#define REQUEST_TIMEOUT_MS 5000
#define PING_INTERVAL_MS 5000
/* Headers and subject of our messages fit in this; payloads get the rest. */
#define HEADER_ROOM 4096

/* ---- server URLs ---------------------------------------------------------- */

struct url {
    char text[512];
    char host[256];
    char port[8];
};

static bool host_ok(const char *h, size_t n)
{
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        char buf[64];
        struct in6_addr a;
        if (n - 2 >= sizeof buf)
            return false;
        memcpy(buf, h + 1, n - 2);
        buf[n - 2] = '\0';
        return inet_pton(AF_INET6, buf, &a) == 1;
    }
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '-' && h[i] != '.' && h[i] != '_')
            return false;
    return true;
}

/* [nats://|tls://][user[:password]@]host[:port], port 1-65535. */
static bool parse_url(const char *s, size_t len, struct url *u)
{
    if (len == 0 || len >= sizeof u->text)
        return false;
    memcpy(u->text, s, len);
    u->text[len] = '\0';
    const char *p = u->text;
    if (!strncmp(p, "nats://", 7) || !strncmp(p, "tls://", 6))
        p = strstr(p, "//") + 2;
    else if (strstr(p, "://"))
        return false;
    const char *at = strrchr(p, '@');
    if (at)
        p = at + 1;
    for (const char *q = u->text; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return false;
    const char *end = p + strlen(p), *colon = NULL;
    if (*p == '[') {
        const char *rb = strchr(p, ']');
        if (!rb)
            return false;
        colon = rb[1] == ':' ? rb + 1 : NULL;
        if (rb[1] && !colon)
            return false;
    } else {
        colon = strchr(p, ':');
    }
    size_t hlen = (size_t)((colon ? colon : end) - p);
    if (!host_ok(p, hlen))
        return false;
    const char *hs = p, *he = p + hlen;
    if (*hs == '[') {
        hs++;
        he--;
    }
    snprintf(u->host, sizeof u->host, "%.*s", (int)(he - hs), hs);
    snprintf(u->port, sizeof u->port, "4222");
    if (colon) {
        uint64_t port;
        if (!br_parse_u64(colon + 1, &port) || port == 0 || port > 65535)
            return false;
        snprintf(u->port, sizeof u->port, "%" PRIu64, port);
    }
    return true;
}

/* A URL without the password it may hold, for logs:
 * nats://USER:PASS@HOST:PORT is shown nats://USER:***@HOST:PORT. */
static const char *shown(const char *url)
{
    static _Thread_local char buf[600];
    const char *at = strrchr(url, '@');
    const char *start = strstr(url, "://");
    start = start ? start + 3 : url;
    const char *colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
    if (!at || at < start)
        return printable(url);
    if (colon)
        snprintf(buf, sizeof buf, "%.*s:***%s", (int)(colon - url), url, at);
    else /* a token */
        snprintf(buf, sizeof buf, "%.*s***%s", (int)(start - url), url, at);
    return printable(buf);
}

/* Split URL[,URL...]; print what is wrong. */
static int parse_servers(const char *list, struct url *urls, int *n)
{
    *n = 0;
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (*n == MAX_SERVERS) {
            br_log("too many server URLs (at most %d)", MAX_SERVERS);
            return -1;
        }
        if (!parse_url(p, len, &urls[*n])) {
            char bad[600];
            snprintf(bad, sizeof bad, "%.*s", (int)(len < 512 ? len : 512), p);
            br_log("invalid server URL '%s' (expected nats://HOST[:PORT], tls://..., or "
                   "HOST[:PORT])",
                   shown(bad));
            return -1;
        }
        (*n)++;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

/* Why a server cannot be reached, for the message: resolve and try TCP. */
static void diagnose(const struct url *u, char *why, size_t size)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &ai);
    if (rc != 0) {
        snprintf(why, size, "cannot resolve host '%s': %s", printable(u->host), gai_strerror(rc));
        return;
    }
    int err = ETIMEDOUT;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            err = 0;
        } else if (errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            socklen_t l = sizeof err;
            if (poll(&pfd, 1, CONNECT_TIMEOUT_MS) == 1)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
            else
                err = ETIMEDOUT;
        } else {
            err = errno;
        }
        close(fd);
        if (err == 0)
            break;
    }
    freeaddrinfo(ai);
    if (err)
        snprintf(why, size, "%s", strerror(err));
    else
        snprintf(why, size,
                 "the server accepted a TCP connection but no NATS session "
                 "(not a NATS server, TLS or credentials required?)");
}

/* ---- connection ------------------------------------------------------------------ */

static void on_disconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    struct br_engine *e = arg;
    /* publishes: disconnected (a flag: one log line per change) */
    if (atomic_exchange_explicit(&e->connected, 0, memory_order_relaxed) && !br_stopping())
        br_log("disconnected from the NATS server; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *arg)
{
    struct br_engine *e = arg;
    char url[256] = "?";
    natsConnection_GetConnectedUrl(nc, url, sizeof url);
    /* publishes: connected again (a flag: one log line per change) */
    if (!atomic_exchange_explicit(&e->connected, 1, memory_order_relaxed))
        br_log("reconnected to %s", shown(url));
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus s, void *arg)
{
    (void)sub;
    (void)arg;
    const char *last = NULL;
    natsConnection_GetLastError(nc, &last);
    if (s == NATS_SLOW_CONSUMER)
        return; /* an ordered consumer recovers from a gap by itself */
    br_log("NATS: %s%s%s", natsStatus_GetText(s), last ? ": " : "", last ? printable(last) : "");
}

static natsStatus set_options(struct br_engine *e, struct url *urls, int n)
{
    const char *list[MAX_SERVERS];
    for (int i = 0; i < n; i++)
        list[i] = urls[i].text;
    natsStatus s = natsOptions_Create(&e->opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(e->opts, list, n);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(e->opts, CONNECT_TIMEOUT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(e->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(e->opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectJitter(e->opts, 250, 1000);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(e->opts, PING_INTERVAL_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(e->opts, 3);
    if (s == NATS_OK)
        s = natsOptions_SetFailRequestsOnDisconnect(e->opts, true);
    if (s == NATS_OK) /* each message written at once: one is in flight anyway */
        s = natsOptions_SetSendAsap(e->opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetName(e->opts, "speculo-bridge");
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(e->opts, on_disconnected, e);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(e->opts, on_reconnected, e);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(e->opts, on_async_error, e);
    return s;
}

static const char *last_error(natsStatus s)
{
    const char *t = nats_GetLastError(NULL);
    /* "(file.c:123): text": keep the text */
    const char *p = t ? strstr(t, "): ") : NULL;
    return p ? p + 3 : t ? t : natsStatus_GetText(s);
}

int br_engine_connect(struct br_engine *e, const char *servers, const char *stream)
{
    struct url urls[MAX_SERVERS];
    int n;
    memset(e, 0, sizeof *e);
    snprintf(e->stream, sizeof e->stream, "%s", stream);
    br_subject_filter(stream, e->filter, sizeof e->filter);
    if (parse_servers(servers, urls, &n) < 0)
        return -1;
    natsStatus s = set_options(e, urls, n);
    if (s == NATS_OK)
        s = natsConnection_Connect(&e->nc, e->opts);
    if (s != NATS_OK) {
        char why[512];
        if (s == NATS_NO_SERVER) {
            for (int i = 0; i < n; i++) {
                diagnose(&urls[i], why, sizeof why);
                br_log("cannot connect to %s: %s", shown(urls[i].text), why);
            }
        } else {
            br_log("cannot connect: %s", printable(last_error(s)));
        }
        return -1;
    }
    /* publishes: connected (a flag, before any callback can run) */
    atomic_store_explicit(&e->connected, 1, memory_order_relaxed);
    char url[256] = "?";
    natsConnection_GetConnectedUrl(e->nc, url, sizeof url);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = REQUEST_TIMEOUT_MS;
    s = natsConnection_JetStream(&e->js, e->nc, &jo);
    jsAccountInfo *ai = NULL;
    jsErrCode je = 0;
    if (s == NATS_OK)
        s = js_GetAccountInfo(&ai, e->js, NULL, &je);
    jsAccountInfo_Destroy(ai);
    if (s != NATS_OK) {
        if (s == NATS_NO_RESPONDERS || je == JSNotEnabledErr || je == JSNotEnabledForAccountErr)
            br_log("%s: JetStream is not enabled on this server (or for this account)", shown(url));
        else
            br_log("%s: JetStream does not answer: %s", shown(url), printable(last_error(s)));
        return -1;
    }
    br_log("connected to %s", shown(url));
    return 0;
}

void br_engine_close(struct br_engine *e)
{
    jsCtx_Destroy(e->js);
    e->js = NULL;
    if (e->nc) {
        natsConnection_Close(e->nc);
        natsConnection_Destroy(e->nc);
    }
    e->nc = NULL;
    natsOptions_Destroy(e->opts);
    e->opts = NULL;
}

/* ---- the stream ------------------------------------------------------------------------ */

/* Is this stream one the bridge can use: our subjects, one message a
 * subject kept, limits retention? */
static int check_stream(struct br_engine *e, const jsStreamInfo *si)
{
    const jsStreamConfig *c = si->Config;
    bool subject = false;
    for (int i = 0; i < c->SubjectsLen; i++)
        subject = subject || !strcmp(c->Subjects[i], e->filter);
    const char *bad = !subject                          ? "its subjects are not "
                      : c->MaxMsgsPerSubject != 1       ? "it keeps more than one message a subject"
                      : c->Retention != js_LimitsPolicy ? "its retention is not 'limits'"
                      : c->DenyDelete                   ? "it denies deletes"
                      : c->Sealed                       ? "it is sealed"
                                                        : NULL;
    if (bad) {
        br_log("stream %s exists but was not made by speculo bridge: %s%s", printable(e->stream),
               bad, subject ? "" : e->filter);
        return -1;
    }
    e->stream_created = si->Created;
    return 0;
}

void br_engine_limits(struct br_engine *e)
{
    int64_t m = natsConnection_GetMaxPayload(e->nc);
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    if (js_GetStreamInfo(&si, e->js, e->stream, NULL, &je) == NATS_OK) {
        if (si->Config->MaxMsgSize > 0 && si->Config->MaxMsgSize < m)
            m = si->Config->MaxMsgSize;
        jsStreamInfo_Destroy(si);
    }
    if (m > 0)
        e->max_msg = m;
}

static int64_t payload_room(const struct br_engine *e)
{
    return e->max_msg - HEADER_ROOM;
}

int br_stream_ensure(struct br_engine *e, const char *segment, int replicas)
{
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    natsStatus s = js_GetStreamInfo(&si, e->js, e->stream, NULL, &je);
    if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
        const char *subjects[] = {e->filter};
        char desc[300];
        snprintf(desc, sizeof desc, "speculo bridge: segment %s", segment);
        jsStreamConfig c;
        jsStreamConfig_Init(&c);
        c.Name = e->stream;
        c.Description = desc;
        c.Subjects = subjects;
        c.SubjectsLen = 1;
        c.Retention = js_LimitsPolicy;
        c.MaxMsgsPerSubject = 1;
        c.Storage = js_FileStorage;
        c.Replicas = replicas > 0 ? replicas : 1;
        c.Discard = js_DiscardOld;
        c.AllowDirect = true;
        je = 0;
        s = js_AddStream(&si, e->js, &c, NULL, &je);
        if (s == NATS_OK)
            br_log("created stream %s (%d replica%s, subjects %s)", printable(e->stream),
                   (int)c.Replicas, c.Replicas > 1 ? "s" : "", printable(e->filter));
        else if (je == JSStreamNameExistErr)
            return br_stream_ensure(e, segment, replicas); /* made meanwhile */
    } else if (s == NATS_OK) {
        br_log("found stream %s (%d replica%s)", printable(e->stream), (int)si->Config->Replicas,
               si->Config->Replicas > 1 ? "s" : "");
        if (replicas > 0 && si->Config->Replicas != replicas)
            br_log("--replicas %d ignored: the stream exists with %d", replicas,
                   (int)si->Config->Replicas);
    }
    if (s != NATS_OK) {
        br_log("stream %s: %s", printable(e->stream), printable(last_error(s)));
        return -1;
    }
    int rc = check_stream(e, si);
    jsStreamInfo_Destroy(si);
    if (rc == 0) {
        br_engine_limits(e);
        if (payload_room(e) < 4096) {
            br_log("the server's max_payload (%" PRId64 " bytes) is too small", e->max_msg);
            return -1;
        }
    }
    return rc;
}

int br_stream_wait(struct br_engine *e)
{
    bool said = false;
    for (;;) {
        jsStreamInfo *si = NULL;
        jsErrCode je = 0;
        natsStatus s = js_GetStreamInfo(&si, e->js, e->stream, NULL, &je);
        if (s == NATS_OK) {
            int rc = check_stream(e, si);
            jsStreamInfo_Destroy(si);
            if (rc == 0)
                br_log("found stream %s", printable(e->stream));
            return rc;
        }
        if (!said && (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr)) {
            br_log("waiting for stream %s to be created (by speculo bridge out)",
                   printable(e->stream));
            said = true;
        }
        if (!br_sleep_ms(1000))
            return 1;
    }
}

int64_t br_stream_created(struct br_engine *e)
{
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    natsStatus s = js_GetStreamInfo(&si, e->js, e->stream, NULL, &je);
    if (s == NATS_OK) {
        int64_t c = si->Created;
        jsStreamInfo_Destroy(si);
        return c;
    }
    return s == NATS_NOT_FOUND || je == JSStreamNotFoundErr ? 0 : -1;
}

/* ---- reading the headers of the whole stream ------------------------------------------------ */

#define SCAN_WAIT_MS 500

/* Up to @upto, the stream's last sequence when the scan began: a stream
 * that grows as fast as the scan reads would otherwise never let it end
 * (what comes later is for the caller's subscription). */
static int scan_messages(natsSubscription *sub, uint64_t upto, br_scan_fn fn, void *arg)
{
    struct br_msg m;
    br_msg_init(&m);
    int rc = 0;
    for (;;) {
        if (br_stopping()) {
            rc = 1;
            break;
        }
        natsMsg *msg = NULL;
        natsStatus s = natsSubscription_NextMsg(&msg, sub, SCAN_WAIT_MS);
        if (s == NATS_TIMEOUT) {
            /* nothing delivered for a while: done when nothing is pending */
            jsConsumerInfo *ci = NULL;
            jsErrCode je = 0;
            if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &je) == NATS_OK) {
                bool done = ci->NumPending == 0;
                jsConsumerInfo_Destroy(ci);
                if (done)
                    break;
            }
            continue;
        }
        if (s != NATS_OK)
            continue; /* a gap or a missed heartbeat: the ordered consumer recovers */
        jsMsgMetaData *md = NULL;
        if (natsMsg_GetMetaData(&md, msg) != NATS_OK) {
            natsMsg_Destroy(msg);
            continue;
        }
        char why[128] = "";
        int prc = br_parse(msg, &m, why, sizeof why);
        bool more = fn(md->Sequence.Stream, natsMsg_GetSubject(msg), prc, &m, why, arg);
        bool last = md->NumPending == 0 || md->Sequence.Stream >= upto;
        jsMsgMetaData_Destroy(md);
        natsMsg_Destroy(msg);
        if (!more || last)
            break;
    }
    br_msg_free(&m);
    return rc;
}

int br_scan(struct br_engine *e, br_scan_fn fn, void *arg, uint64_t *last)
{
    for (;;) {
        jsStreamInfo *si = NULL;
        jsErrCode je = 0;
        natsStatus s = js_GetStreamInfo(&si, e->js, e->stream, NULL, &je);
        if (s != NATS_OK) {
            if (!br_sleep_ms(500))
                return 1;
            continue;
        }
        uint64_t msgs = si->State.Msgs;
        *last = si->State.LastSeq;
        jsStreamInfo_Destroy(si);
        if (msgs == 0)
            return 0;
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = e->stream;
        so.Ordered = true;
        so.Config.HeadersOnly = true;
        so.Config.DeliverPolicy = js_DeliverAll;
        so.Config.Heartbeat = 1000000000LL; /* 1 s: a lost consumer is noticed soon */
        natsSubscription *sub = NULL;
        s = js_SubscribeSync(&sub, e->js, e->filter, NULL, &so, &je);
        if (s != NATS_OK) {
            if (!br_sleep_ms(500))
                return 1;
            continue;
        }
        natsSubscription_SetPendingLimits(sub, -1, 256 << 20);
        int rc = scan_messages(sub, *last, fn, arg);
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
        return rc;
    }
}

/* ---- requests ------------------------------------------------------------------------------ */

static enum br_result classify(natsStatus s, jsErrCode je, char *why, size_t size)
{
    snprintf(why, size, "%s", last_error(s));
    switch (s) {
    case NATS_OK:
        return BR_OK;
    case NATS_TIMEOUT:
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_CONNECTION_CLOSED:
    case NATS_NOT_YET_CONNECTED:
    case NATS_IO_ERROR:
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_STALE_CONNECTION:
        if (s == NATS_NO_RESPONDERS)
            snprintf(why, size, "JetStream is not available");
        else if (s != NATS_TIMEOUT)
            snprintf(why, size, "%s", natsStatus_GetText(s));
        else
            snprintf(why, size, "no answer from JetStream");
        return BR_RETRY;
    default:
        break;
    }
    if (je == JSStreamNotFoundErr)
        return BR_GONE;
    if (s == NATS_MAX_PAYLOAD || je == JSStreamMessageExceedsMaximumErr || je == JSStreamSealedErr)
        return BR_FAIL;
    /* anything else (no leader yet, storage full, limits) may pass: retry */
    return BR_RETRY;
}

enum br_result br_delete(struct br_engine *e, uint64_t seq, char *why, size_t why_size)
{
    if (natsConnection_Status(e->nc) != NATS_CONN_STATUS_CONNECTED) {
        snprintf(why, why_size, "not connected");
        return BR_RETRY;
    }
    jsErrCode je = 0;
    natsStatus s = js_DeleteMsg(e->js, e->stream, seq, NULL, &je);
    if (je == JSSequenceNotFoundErr || je == JSNoMessageFoundErr)
        return BR_OK; /* gone already (replaced on its subject) */
    return classify(s, je, why, why_size);
}
