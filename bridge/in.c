/*
 * speculo bridge in SEG: be the writer of local segment SEG and commit
 * into it every chunk of the stream, with the id, name, commit time and
 * expiry it had at the origin (speculo_writer_commit_replica).
 *
 * The stream is read twice at start: its headers only, to find where to
 * resume (the first message of the epoch SEG mirrors with a chunk after
 * SEG's last id; notices of explicit obsoletions met on the way are
 * applied), then, from there, whole messages through an ordered consumer
 * (JetStream delivers them in order, without gap or duplicate, and
 * re-creates the consumer after a failure). Every message is checked
 * before anything of it is committed: what is malformed, foreign or of
 * another epoch is logged and skipped.
 *
 * SEG's uid is the origin's (speculo_writer_options.uid): the epoch it
 * mirrors. When the origin's segment is created again (a new uid), SEG is
 * removed and created again; when it is removed, so is SEG.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "bridge.h"
#include "cli.h"

/* Reconciliations (see reconcile()) are this far apart at least, and take
 * at most a tenth of the time. */
#define RECONCILE_MIN_MS 3000
#define RECONCILE_POLL_MS 1000

static int64_t mono_ms(void)
{
    return br_mono_ns() / 1000000;
}

/* A chunk arriving in parts, gathered in memory as they come and
 * committed whole after the last one: memory grows with the bytes that
 * actually arrived, never with what a header claims. */
struct assembly {
    bool active;
    struct br_msg meta; /* of part 0 */
    unsigned char *data;
    size_t cap;
    uint64_t got;  /* bytes gathered */
    uint32_t next; /* the part expected next */
};

struct in {
    const struct br_args *a;
    struct br_engine e;
    char path[PATH_MAX];
    pthread_mutex_t lock; /* the consumer's callback, and the main thread */
    pthread_cond_t done;
    bool closing, complete;
    speculo_writer *w; /* NULL while no segment is mirrored */
    uint64_t uid;      /* SEG's uid: the epoch mirrored; 0 when none */
    struct assembly as;
    struct br_msg m; /* the callback's parse */
    natsSubscription *sub;
    uint64_t committed; /* chunks committed since the subscription */
    bool caught_up;
    uint64_t last_seq; /* of the last message delivered */
    bool skipped;      /* deliveries skipped deleted messages: reconcile */
};

/* ---- the local segment -------------------------------------------------------------- */

static uint64_t segment_uid(const char *segment)
{
    speculo_reader *r;
    struct speculo_segment_ident id = {0};
    if (speculo_reader_open(segment, &r) < 0)
        return 0;
    speculo_reader_ident(r, &id);
    speculo_reader_close(r);
    return id.uid;
}

static void abandon(struct in *in)
{
    in->as.active = false;
    if (in->as.cap > ((size_t)4 << 20)) { /* keep a small buffer for the next */
        free(in->as.data);
        in->as.data = NULL;
        in->as.cap = 0;
    }
}

static void close_segment(struct in *in)
{
    abandon(in);
    speculo_writer_close(in->w);
    in->w = NULL;
    in->uid = 0;
}

static int remove_segment(struct in *in)
{
    int rc = speculo_segment_remove(in->a->segment, 0);
    if (rc == -EBUSY) {
        int64_t pid = segment_writer_pid(in->a->segment);
        br_fatal("cannot remove the segment: process %" PRId64 " is its writer", pid);
        return -1;
    }
    if (rc < 0 && rc != -ENOENT) {
        br_fatal("cannot remove the segment: %s", speculo_strerror(rc));
        return -1;
    }
    return 0;
}

/* The size of a new mirror: the origin's (so that both collect alike),
 * within reason: at most a quarter of the segment directory's filesystem
 * (the header is only as trustworthy as the stream's publishers). */
static size_t mirror_capacity(const char *dir_path, uint64_t origin)
{
    struct statvfs fs;
    uint64_t most = statvfs(dir_path, &fs) == 0 ? (uint64_t)fs.f_blocks * fs.f_frsize / 4 : 0;
    return origin && origin <= most && origin <= SIZE_MAX ? (size_t)origin : 0;
}

/* Make SEG the mirror of epoch uid: a new segment with that uid, keeping
 * the file mode of the one it replaces. */
static int recreate(struct in *in, uint64_t uid, uint64_t capacity)
{
    struct stat st;
    mode_t mode = stat(in->path, &st) == 0 ? st.st_mode & 0644 : 0600;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", in->path);
    *strrchr(dir, '/') = '\0';
    close_segment(in);
    for (int attempt = 0; attempt < 3; attempt++) {
        if (remove_segment(in) < 0)
            return -1;
        struct speculo_writer_options o = {
            .uid = uid, .mode = mode, .capacity = mirror_capacity(dir, capacity)};
        int rc = speculo_writer_open(in->a->segment, &o, &in->w);
        if (rc < 0) {
            in->w = NULL;
            br_fatal("cannot create the segment: %s", speculo_strerror(rc));
            return -1;
        }
        if (segment_uid(in->a->segment) == uid) {
            in->uid = uid;
            return 0;
        }
        speculo_writer_close(in->w); /* someone made another meanwhile */
        in->w = NULL;
    }
    br_fatal("the segment keeps being created by someone else");
    return -1;
}

/* Open SEG as its writer if it exists; its uid is the epoch it mirrors. */
static int open_existing(struct in *in)
{
    int rc = speculo_writer_open(in->a->segment, NULL, &in->w);
    if (rc == 0) {
        in->uid = segment_uid(in->a->segment);
        return 0;
    }
    in->w = NULL;
    if (rc == -EBUSY) {
        br_log("the segment has another live writer (process %" PRId64 "): is another "
               "`speculo bridge in` running?",
               segment_writer_pid(in->a->segment));
        return -1;
    }
    br_log("cannot open the segment: %s", speculo_strerror(rc));
    return -1;
}

/* ---- committing --------------------------------------------------------------------------- */

/* A failure of the local segment: the mirror cannot go on exactly. */
static void local_failure(const char *what, int rc)
{
    br_fatal("cannot %s: %s", what, speculo_strerror(rc));
}

static uint64_t last_id(const struct in *in)
{
    return speculo_writer_last_id(in->w);
}

static void ignored(uint64_t seq, natsMsg *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ignored(uint64_t seq, natsMsg *msg, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    br_log_ignored(seq, natsMsg_GetSubject(msg), why);
}

static int commit(struct in *in, const struct br_msg *meta, const void *data, size_t size,
                  uint64_t seq, natsMsg *msg)
{
    void *p;
    int rc = speculo_writer_alloc(in->w, size, &p);
    if (rc == -EFBIG) {
        ignored(seq, msg, "chunk %" PRIu64 " of %zu bytes cannot be stored", meta->id, size);
        return 0;
    }
    if (rc < 0) {
        local_failure("reserve room in the segment", rc);
        return rc;
    }
    if (size)
        memcpy(p, data, size);
    struct speculo_replica c = {.id = meta->id,
                                .committed_ns = meta->committed_ns,
                                .expires_ns = meta->expires_ns,
                                .name = meta->name[0] ? meta->name : NULL,
                                .replaces = meta->replaces};
    rc = speculo_writer_commit_replica(in->w, &c);
    if (rc == -EINVAL || rc == -ENAMETOOLONG) {
        ignored(seq, msg, "chunk %" PRIu64 " refused by the segment", meta->id);
        return 0;
    }
    if (rc < 0) {
        local_failure("commit", rc);
        return rc;
    }
    in->committed++;
    return 0;
}

static void on_chunk(struct in *in, natsMsg *msg, uint64_t seq)
{
    abandon(in);
    if (in->m.id <= last_id(in))
        return; /* had it */
    commit(in, &in->m, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), seq, msg);
}

static void on_part(struct in *in, natsMsg *msg, uint64_t seq)
{
    const struct br_msg *m = &in->m;
    struct assembly *as = &in->as;
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    if (m->part == 0) {
        abandon(in);
        if (m->id <= last_id(in) || m->offset != 0)
            return;
        as->active = true;
        as->got = 0;
        as->next = 0;
        br_ids_free(&as->meta.ids);
        as->meta = *m;
        br_ids_init(&as->meta.ids);
    }
    /* anything else than the next part: the chunk died at the origin and
     * its parts were deleted as we read them; it is abandoned */
    if (!as->active || m->id != as->meta.id || m->part != as->next ||
        m->nparts != as->meta.nparts || m->size != as->meta.size || m->offset != as->got) {
        abandon(in);
        return;
    }
    if (as->got + len > as->cap) {
        size_t cap = as->cap ? as->cap : 1u << 20;
        while (cap < as->got + len)
            cap *= 2;
        unsigned char *p = realloc(as->data, cap);
        if (!p) {
            local_failure("gather a chunk's parts", -ENOMEM);
            return;
        }
        as->data = p;
        as->cap = cap;
    }
    if (len)
        memcpy(as->data + as->got, natsMsg_GetData(msg), len);
    as->got += len;
    as->next++;
    if (as->next < as->meta.nparts)
        return;
    as->active = false;
    if (as->got != as->meta.size)
        ignored(seq, msg, "chunk %" PRIu64 ": its parts hold %" PRIu64 " bytes, not %" PRIu64,
                m->id, as->got, as->meta.size);
    else
        commit(in, &as->meta, as->data, (size_t)as->got, seq, msg);
    abandon(in);
}

/* The entries must be the ids the headers list, in order, nothing more. */
static bool frame_ok(const struct br_msg *m, const unsigned char *buf, size_t len, char *why,
                     size_t size)
{
    size_t off = 0, r = 0;
    uint64_t want = m->ids.n ? m->ids.r[0].lo : 0, n = 0;
    struct br_entry e;
    int rc;
    while ((rc = br_frame_next(buf, len, &off, &e)) == 1) {
        if (r == m->ids.n || e.id != want) {
            snprintf(why, size, "frame entry %" PRIu64 " is not an id its headers list", n);
            return false;
        }
        n++;
        if (want == m->ids.r[r].hi) {
            r++;
            want = r < m->ids.n ? m->ids.r[r].lo : 0;
        } else {
            want++;
        }
    }
    if (rc < 0 || n != m->ids.count) {
        snprintf(why, size, "frame payload does not hold the %" PRIu64 " chunks it lists",
                 m->ids.count);
        return false;
    }
    return true;
}

static void on_frame(struct in *in, natsMsg *msg, uint64_t seq)
{
    abandon(in);
    const unsigned char *buf = (const unsigned char *)natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg), off = 0;
    char why[128];
    if (!frame_ok(&in->m, buf, len, why, sizeof why)) {
        ignored(seq, msg, "%s", why);
        return;
    }
    struct br_entry e;
    struct br_msg meta;
    br_msg_init(&meta);
    while (br_frame_next(buf, len, &off, &e) == 1 && !br_stopping()) {
        if (e.id <= last_id(in))
            continue;
        meta.id = e.id;
        meta.committed_ns = e.committed_ns;
        meta.expires_ns = e.expires_ns;
        meta.replaces = e.replaces;
        if (commit(in, &meta, e.data, (size_t)e.size, seq, msg) < 0)
            break;
    }
}

static void on_obsolete(struct in *in)
{
    uint64_t last = last_id(in);
    for (size_t r = 0; r < in->m.ids.n; r++)
        for (uint64_t id = in->m.ids.r[r].lo; id <= in->m.ids.r[r].hi && id <= last; id++)
            speculo_writer_obsolete(in->w, id); /* -ENOENT: dead here already */
}

static void on_marker(struct in *in, natsMsg *msg, uint64_t seq)
{
    (void)msg;
    (void)seq;
    uint64_t uid = in->m.uid;
    if (in->m.kind == BR_EPOCH && uid != in->uid) {
        bool existed = segment_uid(in->a->segment) != 0;
        if (recreate(in, uid, in->m.capacity) == 0)
            br_log("mirroring epoch %016" PRIx64 ": segment %s", uid,
                   existed ? "removed and created again (the origin's was)" : "created");
    } else if (in->m.kind == BR_REMOVED && uid == in->uid) {
        close_segment(in);
        if (remove_segment(in) == 0)
            br_log("the origin's segment was removed: removed here too");
    }
}

static void on_message(struct in *in, natsMsg *msg, uint64_t seq)
{
    char why[128];
    int rc = br_parse(msg, &in->m, why, sizeof why);
    if (rc == -ENOMEM) {
        br_fatal("out of memory");
        return;
    }
    if (rc < 0) {
        ignored(seq, msg, "%s", why);
        return;
    }
    if (in->m.kind == BR_EPOCH || in->m.kind == BR_REMOVED) {
        on_marker(in, msg, seq);
        return;
    }
    if (!in->w || in->m.uid != in->uid) {
        ignored(seq, msg,
                "%s of origin segment %016" PRIx64 ", not the one mirrored (%016" PRIx64 ")",
                br_kind_name(in->m.kind), in->m.uid, in->uid);
        return;
    }
    switch (in->m.kind) {
    case BR_CHUNK:
        on_chunk(in, msg, seq);
        break;
    case BR_PART:
        on_part(in, msg, seq);
        break;
    case BR_FRAME:
        on_frame(in, msg, seq);
        break;
    case BR_OBSOLETE:
        on_obsolete(in);
        break;
    default:
        break;
    }
}

/* The consumer's callback (one thread of the NATS library, in order). */
static void on_delivery(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    struct in *in = arg;
    jsMsgMetaData *md = NULL;
    natsMsg_GetMetaData(&md, msg);
    uint64_t seq = md ? md->Sequence.Stream : 0;
    pthread_mutex_lock(&in->lock);
    if (!in->closing && !br_stopping()) {
        if (in->last_seq && seq != in->last_seq + 1)
            in->skipped = true;
        in->last_seq = seq;
        on_message(in, msg, seq);
        if (md && md->NumPending == 0 && !in->caught_up) {
            in->caught_up = true;
            br_log("caught up: %" PRIu64 " chunk%s committed; following the stream", in->committed,
                   in->committed == 1 ? "" : "s");
        }
    }
    pthread_mutex_unlock(&in->lock);
    jsMsgMetaData_Destroy(md);
    natsMsg_Destroy(msg);
}

static void on_complete(void *arg)
{
    struct in *in = arg;
    pthread_mutex_lock(&in->lock);
    in->complete = true;
    pthread_cond_broadcast(&in->done);
    pthread_mutex_unlock(&in->lock);
}

/* ---- what the stream holds ------------------------------------------------------------ */

/*
 * A lagging mirror can miss a death: the message telling it (the chunk
 * that replaced it, a notice) may be deleted before the mirror reads it,
 * once the chunk's own message is gone too. The stream then no longer
 * holds the chunk, and nothing the forwarder deletes is live at the
 * origin: a live chunk of ours that no message of the epoch holds any
 * more is dead there. Reconciling compares the two and obsoletes such
 * chunks (a named one only when no newer version of its name is still on
 * its way). It runs after a start and whenever deliveries skipped deleted
 * messages, a few seconds apart at most.
 */
struct name_id {
    char *name;
    uint64_t id;
};

struct held {
    uint64_t uid;
    uint64_t *ids; /* chunk ids held by a message of the epoch */
    size_t n, cap;
    struct name_id *names; /* named chunks held */
    size_t nn, capn;
};

static void held_free(struct held *h)
{
    for (size_t i = 0; i < h->nn; i++)
        free(h->names[i].name);
    free(h->ids);
    free(h->names);
    memset(h, 0, sizeof *h);
}

static int held_add(struct held *h, const struct br_msg *m)
{
    for (size_t r = 0; r < m->ids.n || (r == 0 && m->kind != BR_FRAME); r++) {
        uint64_t lo = m->kind == BR_FRAME ? m->ids.r[r].lo : m->id;
        uint64_t hi = m->kind == BR_FRAME ? m->ids.r[r].hi : m->id;
        for (uint64_t id = lo;; id++) {
            if (br_grow((void **)&h->ids, &h->cap, h->n + 1, sizeof *h->ids) < 0)
                return -ENOMEM;
            h->ids[h->n++] = id;
            if (id == hi)
                break;
        }
        if (m->kind != BR_FRAME)
            break;
    }
    if (m->kind != BR_FRAME && m->name[0]) {
        if (br_grow((void **)&h->names, &h->capn, h->nn + 1, sizeof *h->names) < 0)
            return -ENOMEM;
        h->names[h->nn].name = strdup(m->name);
        if (!h->names[h->nn].name)
            return -ENOMEM;
        h->names[h->nn++].id = m->id;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_name_id(const void *a, const void *b)
{
    const struct name_id *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->id < y->id ? -1 : x->id > y->id;
}

static bool held_has(const struct held *h, uint64_t id)
{
    return h->n && bsearch(&id, h->ids, h->n, sizeof *h->ids, cmp_u64) != NULL;
}

/* Does the stream hold a version of `name` newer than id? */
static bool held_newer(const struct held *h, const char *name, uint64_t id)
{
    size_t lo = 0, hi = h->nn;
    while (lo < hi) { /* the last entry of that name: the newest */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(h->names[mid].name, name) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && !strcmp(h->names[lo - 1].name, name) && h->names[lo - 1].id > id;
}

/* Obsolete our live chunks up to `upto` that the stream no longer holds. */
static void reconcile(struct in *in, struct held *h, uint64_t upto)
{
    if (h->n)
        qsort(h->ids, h->n, sizeof *h->ids, cmp_u64);
    if (h->nn)
        qsort(h->names, h->nn, sizeof *h->names, cmp_name_id);
    speculo_reader *r;
    if (speculo_reader_open(in->a->segment, &r) < 0)
        return;
    uint64_t *dead = NULL;
    size_t n = 0, cap = 0;
    speculo_chunk c;
    struct speculo_segment_ident id;
    speculo_reader_ident(r, &id);
    while (id.uid == h->uid && speculo_reader_next(r, &c) == 0 && c.id <= upto) {
        if (held_has(h, c.id) || (c.name && held_newer(h, c.name, c.id)))
            continue;
        if (br_grow((void **)&dead, &cap, n + 1, sizeof *dead) < 0)
            break;
        dead[n++] = c.id;
    }
    speculo_reader_close(r);
    size_t done = 0;
    pthread_mutex_lock(&in->lock);
    for (size_t i = 0; i < n && in->w && in->uid == h->uid; i++)
        done += speculo_writer_obsolete(in->w, dead[i]) == 0;
    pthread_mutex_unlock(&in->lock);
    if (done)
        br_log("%zu chunk%s no longer in the stream (dead at the origin, their notices missed "
               "while behind): obsoleted",
               done, done == 1 ? "" : "s");
    free(dead);
}

/* ---- scans ------------------------------------------------------------------------------- */

struct in_scan {
    struct in *in;
    bool start; /* the start's scan: also where to resume, and notices */
    uint64_t last_id;
    enum br_kind marker_kind;
    uint64_t marker_uid, marker_seq;
    uint64_t first_new;
    uint64_t foreign;
    struct held held;
    bool failed;
};

static bool on_scanned(uint64_t seq, const char *subject, int rc, const struct br_msg *m,
                       const char *why, void *arg)
{
    (void)subject;
    (void)why;
    struct in_scan *s = arg;
    struct in *in = s->in;
    if (rc < 0) {
        s->foreign++;
        return true;
    }
    if (m->kind == BR_EPOCH || m->kind == BR_REMOVED) {
        s->marker_kind = m->kind;
        s->marker_uid = m->uid;
        s->marker_seq = seq;
        s->first_new = 0;
        return true;
    }
    if (m->uid != s->held.uid)
        return true;
    if (m->kind == BR_OBSOLETE) {
        if (!s->start)
            return true;
        /* idempotent: applied now, whether resumed after or not */
        for (size_t r = 0; r < m->ids.n; r++)
            for (uint64_t id = m->ids.r[r].lo; id <= m->ids.r[r].hi && id <= s->last_id; id++)
                speculo_writer_obsolete(in->w, id);
        return true;
    }
    if (s->start && !s->first_new && br_msg_last_id(m) > s->last_id)
        s->first_new = seq;
    if (held_add(&s->held, m) < 0) {
        s->failed = true;
        return false;
    }
    return true;
}

/* Reconcile with what the stream holds now. */
static int reconcile_now(struct in *in)
{
    struct in_scan s = {.in = in};
    pthread_mutex_lock(&in->lock);
    s.held.uid = in->uid;
    uint64_t upto = in->w ? last_id(in) : 0;
    pthread_mutex_unlock(&in->lock);
    if (!s.held.uid)
        return 0;
    uint64_t last;
    int rc = br_scan(&in->e, on_scanned, &s, &last);
    if (rc == 0 && !s.failed)
        reconcile(in, &s.held, upto);
    held_free(&s.held);
    return rc;
}

/* 0 and *start; 1 when stopping; -1 on error. */
static int find_start(struct in *in, uint64_t *start)
{
    struct in_scan s = {.in = in, .start = true, .last_id = in->w ? last_id(in) : 0};
    s.held.uid = in->w ? in->uid : 0;
    uint64_t last = 0;
    int rc = br_scan(&in->e, on_scanned, &s, &last);
    if (rc != 0 || s.failed) {
        held_free(&s.held);
        return rc ? rc : -1;
    }
    if (s.foreign)
        br_log("stream %s holds %" PRIu64 " message%s that are not speculo's: ignored",
               printable(in->e.stream), s.foreign, s.foreign == 1 ? "" : "s");
    /* the marker may be missing (replaced by something else on its
     * subject) while our epoch's messages are there: resume them */
    bool ours = in->w && (s.marker_seq ? s.marker_kind == BR_EPOCH && s.marker_uid == in->uid
                                       : s.held.n > 0);
    if (!s.marker_seq && !ours) {
        *start = last + 1;
        br_log("the stream has no epoch yet: waiting for `speculo bridge out`");
    } else if (ours) {
        *start = s.first_new ? s.first_new : last + 1;
        br_log("mirroring epoch %016" PRIx64 ": resuming after chunk %" PRIu64, in->uid, s.last_id);
        reconcile(in, &s.held, s.last_id);
    } else {
        *start = s.marker_seq;
    }
    held_free(&s.held);
    return 0;
}

/* ---- main --------------------------------------------------------------------------------------- */

static int subscribe(struct in *in, uint64_t start)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = in->e.stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start ? start : 1;
    so.Config.Heartbeat = 2000000000LL; /* a lost consumer is re-created within seconds */
    jsErrCode je = 0;
    in->complete = false;
    in->caught_up = false;
    in->committed = 0;
    in->last_seq = 0;
    in->skipped = false;
    natsStatus s = js_Subscribe(&in->sub, in->e.js, in->e.filter, on_delivery, in, NULL, &so, &je);
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(in->sub, -1, -1);
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(in->sub, on_complete, in);
    if (s != NATS_OK) {
        br_log("cannot consume stream %s: %s", printable(in->e.stream),
               printable(nats_GetLastError(NULL)));
        if (in->sub)
            natsSubscription_Destroy(in->sub);
        in->sub = NULL;
        return -1;
    }
    return 0;
}

static void unsubscribe(struct in *in)
{
    if (!in->sub)
        return;
    pthread_mutex_lock(&in->lock);
    in->closing = true;
    pthread_mutex_unlock(&in->lock);
    if (natsSubscription_Unsubscribe(in->sub) == NATS_OK) {
        /* wait for the callback thread to be done with us */
        pthread_mutex_lock(&in->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        while (!in->complete)
            if (pthread_cond_timedwait(&in->done, &in->lock, &until) != 0)
                break;
        pthread_mutex_unlock(&in->lock);
    }
    natsSubscription_Destroy(in->sub);
    in->sub = NULL;
    in->closing = false;
}

/* Mirror until stopped or the stream goes away (1: start over). */
static int mirror(struct in *in)
{
    uint64_t start;
    int rc = find_start(in, &start);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (subscribe(in, start) < 0)
        return -1;
    int64_t next_reconcile = 0;
    while (br_sleep_ms(RECONCILE_POLL_MS)) {
        pthread_mutex_lock(&in->lock);
        bool skipped = in->skipped;
        pthread_mutex_unlock(&in->lock);
        if (skipped && mono_ms() >= next_reconcile) {
            pthread_mutex_lock(&in->lock);
            in->skipped = false;
            pthread_mutex_unlock(&in->lock);
            int64_t t0 = mono_ms();
            if (reconcile_now(in) != 0)
                break;
            int64_t cost = mono_ms() - t0;
            next_reconcile =
                mono_ms() + (cost * 10 > RECONCILE_MIN_MS ? cost * 10 : RECONCILE_MIN_MS);
        }
        int64_t created = br_stream_created(&in->e);
        if (created == 0 || (created > 0 && created != in->e.stream_created)) {
            br_log("stream %s was %s; starting over", printable(in->e.stream),
                   created ? "deleted and created again" : "deleted");
            unsubscribe(in);
            return 1;
        }
    }
    unsubscribe(in);
    return 0;
}

int br_in(const struct br_args *a)
{
    struct in in = {.a = a};
    br_msg_init(&in.m);
    br_msg_init(&in.as.meta);
    pthread_mutex_init(&in.lock, NULL);
    pthread_cond_init(&in.done, NULL);
    if (br_segment_path(a->segment, in.path, sizeof in.path) < 0)
        return BR_EXIT_ERR;
    int status = BR_EXIT_ERR;
    if (br_engine_connect(&in.e, a->servers, a->stream) < 0)
        goto out;
    if (segment_uid(a->segment) && open_existing(&in) < 0)
        goto out;
    for (;;) {
        int rc = br_stream_wait(&in.e);
        if (rc > 0)
            break;
        if (rc < 0)
            goto out;
        rc = mirror(&in);
        if (rc < 0)
            goto out;
        if (rc == 0)
            break;
    }
    status = BR_EXIT_OK;
out:
    unsubscribe(&in);
    close_segment(&in);
    br_engine_close(&in.e);
    br_msg_free(&in.m);
    br_msg_free(&in.as.meta);
    free(in.as.data);
    pthread_cond_destroy(&in.done);
    pthread_mutex_destroy(&in.lock);
    if (status == BR_EXIT_OK && !br_failed())
        br_log("stopped");
    return br_failed() ? BR_EXIT_ERR : status;
}
