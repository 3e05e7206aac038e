/*
 * speculo bridge out SEG: forward every chunk of local segment SEG to a
 * JetStream stream, those already there first, then each new one.
 *
 * The main thread is a reader of SEG: it blocks in speculo_wait() (the
 * segment's futex, and a wakeup that the publisher and the signal handler
 * set), reads what is new, packs it into outgoing messages (outq.h) and
 * keeps the tracker (track.h) of what is in the stream. It never writes to
 * the segment: the local writer never waits for it, nor for the network.
 *
 * Epochs: the stream follows one incarnation of SEG at a time, named by
 * its uid. A marker message (subject speculo.STREAM.e, latest only) says
 * which; when SEG is removed, or removed and created again, the forwarder
 * publishes a marker for that and then deletes the old epoch's messages.
 *
 * Explicit obsoletions (speculo_writer_obsolete) carry no chunk: the
 * segment only counts them (speculo_reader_watch). When the count says
 * more chunks died than the chunks we read explain (their `replaces` and
 * names), the forwarder asks the segment for the state of every chunk it
 * forwarded and believes live (tk_check), and sends a notice of those
 * that died unseen. A restart rebuilds that knowledge from the stream's
 * headers and the segment's records; a chunk collected meanwhile is taken
 * as dead (and noticed, unless it expired). See docs/BRIDGE.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bridge.h"
#include "cli.h"
#include "outq.h"
#include "track.h"

/* A chunk this small goes into a frame (when unnamed). */
#define FRAME_ITEM_MAX (16u << 10)
/* Frames stop growing here (or at the message size limit). */
#define FRAME_MAX_BYTES (1u << 20)
/* Named chunks up to this size are copied, larger ones sent from the
 * segment's mapping (held). */
#define COPY_MAX (64u << 10)
/* Read ahead of the publisher no further than this. */
#define QUEUE_MAX_MSGS 512
#define QUEUE_MAX_BYTES ((size_t)16 << 20)
/* Checks of every forwarded chunk's state are this far apart at least,
 * and take at most a tenth of the time. */
#define CHECK_MIN_INTERVAL_NS 100000000LL
#define CHECK_PERIOD_NS 5000000000LL
/* How often the segment file's identity is compared with the name's (a
 * plain rm or mv of the file does not wake readers). */
#define IDENT_INTERVAL_NS 1000000000LL
#define ABSENT_POLL_MS 250
#define MAX_OWN_UIDS 256

/* An epoch whose end marker is queued: deleted once it is stored. */
struct retiring {
    struct tracker tk;
    const struct om *end; /* the marker; NULL: delete at once */
    struct retiring *next;
};

struct out {
    const struct br_args *a;
    struct br_engine e;
    struct outq q;
    speculo_reader *r;
    char path[PATH_MAX];
    char origin[BR_ORIGIN_MAX]; /* HOST:PATH, in our markers */
    struct speculo_segment_ident ident;
    uint64_t uid; /* the epoch forwarded; 0 while SEG is absent */
    struct tracker *tk;
    struct retiring *retiring;
    uint64_t last_read; /* last id read in this epoch */
    uint64_t read_count;
    bool caught_up;
    uint64_t explained; /* obsoletions our reads explain, since the last report */
    bool check_due;
    int64_t next_check, next_ident, last_check; /* monotonic ns */
    natsSubscription *marker_sub;
    pthread_mutex_t uids_lock;
    uint64_t own_uids[MAX_OWN_UIDS]; /* uids this process published markers for */
    size_t n_own;
};

static void delete_seq(uint64_t seq, void *arg)
{
    struct out *o = arg;
    outq_delete(&o->q, seq);
}

static struct tracker *tracker_new(struct out *o, uint64_t uid)
{
    struct tracker *t = malloc(sizeof *t);
    if (t)
        tk_init(t, uid, delete_seq, o);
    return t;
}

static void own_uid(struct out *o, uint64_t uid)
{
    pthread_mutex_lock(&o->uids_lock);
    if (o->n_own == MAX_OWN_UIDS) /* keep the recent ones */
        memmove(o->own_uids, o->own_uids + 1, --o->n_own * sizeof o->own_uids[0]);
    o->own_uids[o->n_own++] = uid;
    pthread_mutex_unlock(&o->uids_lock);
}

static bool is_own_uid(struct out *o, uint64_t uid)
{
    pthread_mutex_lock(&o->uids_lock);
    bool found = false;
    for (size_t i = 0; i < o->n_own && !found; i++)
        found = o->own_uids[i] == uid;
    pthread_mutex_unlock(&o->uids_lock);
    return found;
}

/* ---- queueing messages -------------------------------------------------------------- */

static int64_t part_room(const struct out *o)
{
    return o->e.max_msg - 4096;
}

static bool queue_has_room(const struct out *o)
{
    return o->q.count < QUEUE_MAX_MSGS && o->q.copied < QUEUE_MAX_BYTES;
}

static void push_marker(struct out *o, enum br_kind kind, uint64_t uid, struct tracker *retire)
{
    struct om *m = om_new(kind, uid);
    if (!m) {
        br_fatal("out of memory");
        return;
    }
    m->meta.created_ns = kind == BR_EPOCH ? o->ident.created_ns : 0;
    m->meta.capacity = kind == BR_EPOCH ? o->ident.capacity : 0;
    snprintf(m->meta.origin, sizeof m->meta.origin, "%s", o->origin);
    if (retire) {
        struct retiring *rt = malloc(sizeof *rt);
        if (!rt) {
            br_fatal("out of memory");
            om_free(m);
            return;
        }
        rt->tk = *retire;
        free(retire);
        rt->end = m;
        rt->next = o->retiring;
        o->retiring = rt;
    }
    outq_push(&o->q, m);
}

/* Queue notices of the deaths the tracker says the mirrors must be told
 * of, in as few messages as their id lists allow. */
static void push_notices(struct out *o)
{
    uint64_t *ids = NULL;
    size_t n = o->tk ? tk_take_due(o->tk, &ids) : 0;
    struct om *m = NULL;
    for (size_t i = 0; i < n; i++) {
        if (m && (!br_ids_fits(&m->meta.ids, ids[i], BR_IDS_TEXT_MAX) ||
                  m->meta.ids.count >= BR_NOTICE_MAX_IDS)) {
            outq_push(&o->q, m);
            m = NULL;
        }
        if (!m && !(m = om_new(BR_OBSOLETE, o->uid))) {
            br_fatal("out of memory");
            break;
        }
        m->nonce = m->nonce ? m->nonce
                            : ((uint64_t)rand() << 32) ^ (uint64_t)rand() ^ (uint64_t)br_mono_ns();
        if (br_ids_add(&m->meta.ids, ids[i]) < 0) {
            br_fatal("out of memory");
            break;
        }
    }
    if (m)
        outq_push(&o->q, m);
    free(ids);
}

static int grow_buf(struct om *m, size_t more)
{
    if (m->len + more <= m->cap)
        return 0;
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < m->len + more)
        cap *= 2;
    unsigned char *p = realloc(m->buf, cap);
    if (!p)
        return -ENOMEM;
    m->buf = p;
    m->cap = cap;
    return 0;
}

static int add_entry(struct om *m, const speculo_chunk *c, uint64_t replaces)
{
    struct br_entry en = {.id = c->id,
                          .committed_ns = c->committed_ns,
                          .expires_ns = c->expires_ns,
                          .replaces = replaces,
                          .size = c->size,
                          .data = c->data};
    size_t n = br_entry_length(c->size);
    if (grow_buf(m, n) < 0 || br_ids_add(&m->meta.ids, c->id) < 0)
        return -ENOMEM;
    br_entry_put(m->buf + m->len, &en);
    m->len += n;
    m->entries++;
    if (!c->expires_ns)
        m->never_expires = true;
    else if (c->expires_ns > m->meta.expires_ns)
        m->meta.expires_ns = c->expires_ns;
    return (int)n;
}

static bool frame_takes(const struct out *o, const struct om *m, const speculo_chunk *c)
{
    size_t cap = (size_t)part_room(o) < FRAME_MAX_BYTES ? (size_t)part_room(o) : FRAME_MAX_BYTES;
    return m && m->meta.kind == BR_FRAME && m->meta.uid == o->uid &&
           m->entries < BR_FRAME_MAX_CHUNKS && m->len + br_entry_length(c->size) <= cap &&
           br_ids_fits(&m->meta.ids, c->id, BR_IDS_TEXT_MAX);
}

static int queue_small(struct out *o, const speculo_chunk *c, uint64_t replaces)
{
    struct om *t = outq_open_tail(&o->q);
    if (frame_takes(o, t, c)) {
        int n = add_entry(t, c, replaces);
        if (n > 0)
            o->q.copied += (size_t)n;
        return n < 0 ? n : 0;
    }
    struct om *m = om_new(BR_FRAME, o->uid);
    if (!m || add_entry(m, c, replaces) < 0) {
        om_free(m);
        return -ENOMEM;
    }
    outq_push(&o->q, m);
    return 0;
}

static void set_chunk_meta(struct om *m, const speculo_chunk *c, uint64_t replaces)
{
    m->meta.id = c->id;
    m->meta.committed_ns = c->committed_ns;
    m->meta.expires_ns = c->expires_ns;
    m->meta.replaces = replaces;
    if (c->name)
        snprintf(m->meta.name, sizeof m->meta.name, "%s", c->name);
}

/* Point m at bytes of the reader's mapping, kept mapped until m is freed. */
static int refer(struct out *o, struct om *m, const void *data, size_t len)
{
    int rc = speculo_reader_hold(o->r, &m->hold);
    if (rc < 0)
        return rc;
    m->ref = data;
    m->len = len;
    return 0;
}

static int queue_whole(struct out *o, const speculo_chunk *c, uint64_t replaces)
{
    struct om *m = om_new(BR_CHUNK, o->uid);
    if (!m)
        return -ENOMEM;
    set_chunk_meta(m, c, replaces);
    int rc = br_ids_add(&m->meta.ids, c->id);
    if (rc == 0 && c->size <= COPY_MAX) {
        m->buf = malloc(c->size ? c->size : 1);
        if (!m->buf)
            rc = -ENOMEM;
        else {
            if (c->size)
                memcpy(m->buf, c->data, c->size);
            m->len = m->cap = c->size;
        }
    } else if (rc == 0) {
        rc = refer(o, m, c->data, c->size);
    }
    if (rc < 0) {
        om_free(m);
        return rc;
    }
    outq_push(&o->q, m);
    return 0;
}

static int queue_parts(struct out *o, const speculo_chunk *c, uint64_t replaces)
{
    uint64_t room = (uint64_t)part_room(o);
    uint64_t n = (c->size + room - 1) / room;
    if (n > BR_MAX_PARTS) {
        br_log("chunk %" PRIu64 " (%zu bytes) needs more than %u messages: not forwarded", c->id,
               c->size, BR_MAX_PARTS);
        return 0;
    }
    for (uint64_t k = 0; k < n; k++) {
        struct om *m = om_new(BR_PART, o->uid);
        if (!m)
            return -ENOMEM;
        set_chunk_meta(m, c, replaces);
        m->meta.part = (uint32_t)k;
        m->meta.nparts = (uint32_t)n;
        m->meta.size = c->size;
        m->meta.offset = k * room;
        uint64_t len = c->size - m->meta.offset < room ? c->size - m->meta.offset : room;
        int rc = br_ids_add(&m->meta.ids, c->id);
        if (rc == 0)
            rc = refer(o, m, (const unsigned char *)c->data + m->meta.offset, (size_t)len);
        if (rc < 0) {
            om_free(m);
            return rc;
        }
        outq_push(&o->q, m);
    }
    return 0;
}

static int forward(struct out *o, const speculo_chunk *c)
{
    uint64_t replaces = speculo_chunk_replaces(c);
    o->explained += replaces != 0;
    int rc = tk_read(o->tk, c->id, c->expires_ns, c->name, replaces);
    if (rc == 0) {
        if (!c->name && c->size <= FRAME_ITEM_MAX)
            rc = queue_small(o, c, replaces);
        else if (c->size <= (size_t)part_room(o))
            rc = queue_whole(o, c, replaces);
        else
            rc = queue_parts(o, c, replaces);
    }
    o->last_read = c->id;
    o->read_count++;
    return rc;
}

/* ---- epochs ------------------------------------------------------------------------------ */

/* The current epoch ends: its messages go once `kind`'s marker is stored. */
static void end_epoch(struct out *o, enum br_kind kind, uint64_t marker_uid)
{
    own_uid(o, marker_uid);
    push_marker(o, kind, marker_uid, o->tk);
    o->tk = NULL;
}

static int start_epoch(struct out *o, uint64_t uid)
{
    if (o->tk)
        end_epoch(o, BR_EPOCH, uid);
    else {
        own_uid(o, uid);
        push_marker(o, BR_EPOCH, uid, NULL);
    }
    o->tk = tracker_new(o, uid);
    if (!o->tk)
        return -ENOMEM;
    o->uid = uid;
    o->last_read = 0;
    o->read_count = 0;
    o->caught_up = false;
    o->explained = 0;
    br_log("segment created again (uid %016" PRIx64 "): forwarding it as a new epoch", uid);
    return 0;
}

static void segment_gone(struct out *o)
{
    br_log("segment removed: mirrors remove theirs; waiting for it to be created again");
    end_epoch(o, BR_REMOVED, o->uid);
    o->uid = 0;
}

/* ---- reading ------------------------------------------------------------------------------- */

static void read_some(struct out *o)
{
    while (queue_has_room(o) && !br_stopping()) {
        speculo_chunk c;
        int rc = speculo_reader_next(o->r, &c);
        if (rc == -ENOENT) {
            if (o->uid)
                segment_gone(o);
            return;
        }
        if (rc < 0 && rc != -EAGAIN) {
            br_fatal("cannot read the segment: %s", speculo_strerror(rc));
            return;
        }
        struct speculo_segment_ident id;
        if (speculo_reader_ident(o->r, &id) == 0) {
            if (id.uid != o->uid && start_epoch(o, id.uid) < 0) {
                br_fatal("out of memory");
                return;
            }
            o->ident = id;
        }
        if (rc == -EAGAIN) {
            if (!o->caught_up) {
                br_log("caught up: %" PRIu64 " chunk%s read and queued; following new commits",
                       o->read_count, o->read_count == 1 ? "" : "s");
                o->caught_up = true;
            }
            return;
        }
        if (forward(o, &c) < 0) {
            br_fatal("out of memory");
            return;
        }
    }
}

/* When SEG is absent: is it back? */
static void try_reopen(struct out *o)
{
    if (!o->r) {
        int rc = speculo_reader_open(o->a->segment, &o->r);
        if (rc < 0) {
            o->r = NULL;
            return;
        }
    }
    read_some(o);
}

/* A plain rm or mv of the segment file is not seen by the library's
 * readers: compare the file at the name with the one we read. */
static void check_identity(struct out *o)
{
    struct stat st;
    if (!o->r || !o->uid)
        return;
    if (stat(o->path, &st) == 0 && st.st_dev == o->ident.dev && st.st_ino == o->ident.ino)
        return;
    speculo_reader *f = NULL;
    int rc = speculo_reader_open(o->a->segment, &f);
    struct speculo_segment_ident id;
    if (rc == 0 && speculo_reader_ident(f, &id) == 0 && id.uid == o->uid) {
        speculo_reader_close(f); /* a collection switch under way */
        return;
    }
    if (rc == -ENOENT) {
        speculo_reader_close(o->r);
        o->r = NULL;
        segment_gone(o);
        return;
    }
    if (rc == 0) { /* another segment under the name: read it from the start */
        speculo_reader_close(o->r);
        o->r = f;
    }
}

/* ---- explicit obsoletions ------------------------------------------------------------------ */

static enum tk_state origin_state(uint64_t id, uint64_t *by, int64_t *expires, void *arg)
{
    struct out *o = arg;
    struct speculo_record rec;
    int rc = speculo_reader_get_record(o->r, id, &rec);
    if (rc == -ENOENT)
        return TK_GONE;
    if (rc < 0)
        return TK_UNKNOWN;
    *expires = rec.chunk.expires_ns;
    switch (rec.state) {
    case SPECULO_STATE_LIVE:
        return TK_LIVE;
    case SPECULO_STATE_EXPIRED:
        return TK_EXPIRED;
    case SPECULO_STATE_REPLACED:
        *by = rec.obsoleted_by;
        return TK_REPLACED;
    case SPECULO_STATE_OBSOLETE:
        return TK_OBSOLETE;
    }
    return TK_UNKNOWN;
}

static void run_check(struct out *o)
{
    int64_t t0 = br_mono_ns();
    if (tk_check(o->tk, o->last_read, br_wall_ns(), origin_state, o) < 0)
        br_fatal("out of memory");
    int64_t cost = br_mono_ns() - t0;
    o->last_check = br_mono_ns();
    o->next_check =
        br_mono_ns() + (cost * 10 > CHECK_MIN_INTERVAL_NS ? cost * 10 : CHECK_MIN_INTERVAL_NS);
    o->check_due = false;
}

/* The segment counts obsoletions; the chunks we read explain those made
 * by their commits. A count that differs either way calls for a check: more
 * means deaths we did not see; fewer means a commit read late explained
 * what an earlier report counted, and may hide one. A check also comes
 * now and then regardless (CHECK_PERIOD_NS). */
static void watch_obsoletions(struct out *o)
{
    struct speculo_watch ev;
    if (!o->uid || speculo_reader_watch(o->r, 0, &ev) != 0)
        return;
    if ((int64_t)ev.obsoleted != (int64_t)o->explained || ev.moved)
        o->check_due = true;
    o->explained = 0;
    if (br_mono_ns() - o->last_check > CHECK_PERIOD_NS && o->tk && o->tk->live)
        o->check_due = true;
}

/* ---- what the publisher hands back --------------------------------------------------------- */

static struct tracker *tracker_of(struct out *o, uint64_t uid)
{
    if (o->tk && o->tk->uid == uid)
        return o->tk;
    for (struct retiring *r = o->retiring; r; r = r->next)
        if (r->tk.uid == uid)
            return &r->tk;
    return NULL;
}

static void retire_after(struct out *o, const struct om *m)
{
    for (struct retiring **p = &o->retiring; *p;) {
        struct retiring *r = *p;
        if (r->end == m || r->end == NULL) {
            tk_delete_all(&r->tk);
            tk_free(&r->tk);
            *p = r->next;
            free(r);
        } else {
            p = &r->next;
        }
    }
}

/* Publish what is queued; what was stored goes to its epoch's tracker.
 * *due_ns: when to pump again without a kick (0: on a kick only). */
static void pump(struct out *o, int64_t *due_ns)
{
    struct om *m = outq_pump(&o->q, due_ns);
    while (m) {
        struct om *next = m->next;
        struct tracker *t = tracker_of(o, m->meta.uid);
        int rc = 0;
        switch (m->meta.kind) {
        case BR_CHUNK:
        case BR_PART:
        case BR_FRAME:
            if (t)
                rc = tk_stored(t, m->seq, &m->meta.ids);
            else
                outq_delete(&o->q, m->seq);
            break;
        case BR_OBSOLETE:
            if (t)
                rc = tk_notice_stored(t, m->seq, &m->meta.ids);
            else
                outq_delete(&o->q, m->seq);
            break;
        case BR_EPOCH:
        case BR_REMOVED:
            retire_after(o, m);
            break;
        }
        if (rc < 0)
            br_fatal("out of memory");
        om_free(m);
        m = next;
    }
}

/* ---- the stream at start ----------------------------------------------------------------------- */

struct start_scan {
    struct out *o;
    struct tracker *old; /* messages of other epochs */
    enum br_kind marker_kind;
    uint64_t marker_uid, marker_seq;
    char marker_origin[BR_ORIGIN_MAX];
    uint64_t last_own_seq; /* last message of our epoch */
    uint64_t foreign;
    struct br_ids one;
    uint64_t resume_after; /* the last chunk of ours the stream holds whole */
    uint64_t part_id;      /* the chunk whose parts are being counted */
    uint32_t parts_seen;
    uint64_t newest; /* the segment's newest id: we forwarded none above */
};

/* A chunk in parts counts as forwarded only when all its parts are there:
 * a forwarder killed between two parts left the first ones only. */
static void note_forwarded(struct start_scan *s, const struct br_msg *m)
{
    uint64_t last = br_msg_last_id(m);
    if (m->kind == BR_PART) {
        if (m->part == 0) {
            s->part_id = m->id;
            s->parts_seen = 0;
        }
        if (m->id != s->part_id || m->part != s->parts_seen)
            return;
        if (++s->parts_seen < m->nparts)
            return;
    }
    if (last > s->resume_after)
        s->resume_after = last;
}

static bool on_found(uint64_t seq, const char *subject, int rc, const struct br_msg *m,
                     const char *why, void *arg)
{
    (void)subject;
    (void)why;
    struct start_scan *s = arg;
    if (rc < 0) {
        s->foreign++;
        return true;
    }
    if (m->uid == s->o->uid && br_msg_last_id(m) > s->newest) {
        s->foreign++; /* claims a chunk the segment never had */
        return true;
    }
    struct tracker *t = m->uid == s->o->uid ? s->o->tk : s->old;
    const struct br_ids *ids = &m->ids;
    if (m->kind == BR_CHUNK || m->kind == BR_PART) {
        br_ids_clear(&s->one);
        if (br_ids_add(&s->one, m->id) < 0)
            return false;
        ids = &s->one;
    }
    switch (m->kind) {
    case BR_EPOCH:
    case BR_REMOVED:
        s->marker_kind = m->kind;
        s->marker_uid = m->uid;
        s->marker_seq = seq;
        memcpy(s->marker_origin, m->origin, sizeof s->marker_origin);
        return true;
    case BR_OBSOLETE:
        rc = tk_notice_stored(t, seq, ids);
        break;
    default:
        rc = tk_found(t, seq, ids, m->expires_ns);
        if (m->uid == s->o->uid)
            note_forwarded(s, m);
        break;
    }
    if (m->uid == s->o->uid)
        s->last_own_seq = seq;
    return rc == 0;
}

/* Is this stream ours to feed? Our epoch goes on if the marker says so,
 * or if it is missing (lost, or replaced by something that is not a
 * marker) and our messages are there. *ours tells which. False (logged)
 * when another origin feeds it. */
static bool may_feed(struct out *o, const struct start_scan *s, bool *ours)
{
    bool marker = s->marker_kind == BR_EPOCH && s->marker_seq;
    *ours = s->last_own_seq && (!marker || s->marker_uid == o->uid);
    if (s->last_own_seq && !*ours) { /* its marker over our messages: both run */
        br_log("stream %s: another origin (segment uid %016" PRIx64 ") forwards to it now; two "
               "`speculo bridge out` must not share a stream: give each its own --stream",
               printable(o->e.stream), s->marker_uid);
        return false;
    }
    if (!*ours && s->marker_seq && s->marker_uid != o->uid && s->marker_origin[0] &&
        strcmp(s->marker_origin, o->origin) != 0) { /* another host, or directory */
        br_log("stream %s is fed from %s: give this origin its own --stream (or delete the "
               "stream to move its origin here)",
               printable(o->e.stream), printable(s->marker_origin));
        return false;
    }
    return true;
}

/* Read what the stream holds, decide where to resume. 0; 1 when stopping;
 * -1 on error (logged). */
static int resume(struct out *o)
{
    struct start_scan s = {.o = o, .marker_kind = BR_REMOVED};
    br_ids_init(&s.one);
    s.old = tracker_new(o, 0);
    o->tk = tracker_new(o, o->uid);
    uint64_t last;
    int rc = -1;
    bool ours;
    if (!s.old || !o->tk)
        br_log("out of memory");
    else if (newest_chunk_id(o->r, &s.newest) < 0)
        br_log("cannot read the segment");
    else if ((rc = br_scan(&o->e, on_found, &s, &last)) == 0 && !may_feed(o, &s, &ours))
        rc = -1;
    br_ids_free(&s.one);
    if (rc != 0) {
        if (s.old)
            tk_free(s.old);
        free(s.old);
        return rc;
    }
    if (s.foreign)
        br_log("stream %s holds %" PRIu64 " message%s that are not speculo's: left alone",
               printable(o->e.stream), s.foreign, s.foreign == 1 ? "" : "s");
    own_uid(o, o->uid);
    if (ours) {
        if (!(s.marker_kind == BR_EPOCH && s.marker_uid == o->uid))
            push_marker(o, BR_EPOCH, o->uid, NULL); /* put it back */
        /* older epochs' leftovers, when a run was stopped before deleting them all */
        tk_delete_all(s.old);
        tk_free(s.old);
        free(s.old);
        br_log("resuming epoch %016" PRIx64 " after chunk %" PRIu64 " (%zu message%s of ours "
               "in the stream)",
               o->uid, s.resume_after, o->tk->nm, o->tk->nm == 1 ? "" : "s");
    } else {
        push_marker(o, BR_EPOCH, o->uid, s.old); /* the old go once it is stored */
        br_log("starting epoch %016" PRIx64 " (the stream %s)", o->uid,
               s.marker_seq ? "followed another segment" : "is new");
    }
    /* go on after what the stream holds; check what died while we were away */
    rc = speculo_reader_seek(o->r, s.resume_after);
    if (rc < 0) {
        br_log("cannot read the segment: %s", speculo_strerror(rc));
        return -1;
    }
    o->last_read = s.resume_after;
    run_check(o);
    push_notices(o);
    return 0;
}

/* ---- the marker subscription ---------------------------------------------------------------- */

/* Another forwarder's marker on our stream: two origins fight over it. */
static void on_marker(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
    (void)nc;
    (void)sub;
    struct out *o = arg;
    struct br_msg m;
    char why[128];
    br_msg_init(&m);
    if (br_parse(msg, &m, why, sizeof why) == 0 && (m.kind == BR_EPOCH || m.kind == BR_REMOVED) &&
        !is_own_uid(o, m.uid))
        br_fatal("another origin (%s, segment uid %016" PRIx64 ") now forwards to stream %s; "
                 "two `speculo bridge out` must not share a stream: give each its own --stream",
                 m.origin[0] ? printable(m.origin) : "unknown", m.uid, o->e.stream);
    br_msg_free(&m);
    natsMsg_Destroy(msg);
}

/* ---- main --------------------------------------------------------------------------------------- */

static int wait_for_origin(struct out *o)
{
    bool said = false;
    for (;;) {
        int rc = speculo_reader_open(o->a->segment, &o->r);
        if (rc == 0)
            return 0;
        o->r = NULL;
        if (rc != -ENOENT) {
            br_log("cannot open the segment: %s", speculo_strerror(rc));
            return -1;
        }
        if (!said)
            br_log("waiting for the segment to be created");
        said = true;
        if (!br_sleep_ms(ABSENT_POLL_MS))
            return 1;
    }
}

static int timeout_ms(struct out *o, int64_t next_expiry, int64_t due)
{
    int64_t now = br_mono_ns(), t = o->next_ident - now;
    if (due && due - now < t)
        t = due - now;
    if (o->check_due && o->next_check - now < t)
        t = o->next_check - now;
    if (next_expiry) {
        int64_t left = next_expiry - br_wall_ns();
        if (left < t)
            t = left;
    }
    if (!o->uid && t > (int64_t)ABSENT_POLL_MS * 1000000)
        t = (int64_t)ABSENT_POLL_MS * 1000000;
    return t <= 0 ? 0 : (int)(t / 1000000) + 1;
}

static void loop(struct out *o)
{
    while (!br_stopping()) {
        speculo_wakeup_clear(br_kick); /* what signals from now on wakes the wait below */
        int64_t due;
        pump(o, &due);
        int64_t next_expiry = o->tk ? tk_expire(o->tk, br_wall_ns()) : 0;
        if (o->uid)
            read_some(o);
        else
            try_reopen(o);
        pump(o, &due); /* what was just queued goes at once */
        if (o->uid) {
            watch_obsoletions(o);
            if (o->check_due && br_mono_ns() >= o->next_check)
                run_check(o);
        }
        if (br_mono_ns() >= o->next_ident) {
            check_identity(o);
            o->next_ident = br_mono_ns() + IDENT_INTERVAL_NS;
        }
        push_notices(o);
        if (o->tk)
            tk_maintain(o->tk);
        pump(o, &due);
        if (br_stopping())
            break;
        int ms = timeout_ms(o, next_expiry, due);
        if (o->uid && o->r && queue_has_room(o)) {
            struct speculo_wait_item it = {.reader = o->r, .events = SPECULO_WAIT_WATCH};
            speculo_wait(&it, 1, br_kick, ms);
        } else {
            speculo_wait(NULL, 0, br_kick, ms);
        }
    }
}

int br_out(const struct br_args *a)
{
    struct out o = {.a = a};
    pthread_mutex_init(&o.uids_lock, NULL);
    if (br_segment_path(a->segment, o.path, sizeof o.path) < 0)
        return BR_EXIT_ERR;
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    if (snprintf(o.origin, sizeof o.origin, "%s:%.*s", host, (int)(sizeof o.origin / 2), o.path) <
        0)
        o.origin[0] = '\0';
    for (char *p = o.origin; *p; p++) /* a header value: one line */
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            *p = '?';
    int status = BR_EXIT_ERR;
    if (br_engine_connect(&o.e, a->servers, a->stream) < 0)
        return BR_EXIT_ERR;
    if (br_stream_ensure(&o.e, a->segment, a->replicas) < 0)
        goto out_engine;
    int rc = wait_for_origin(&o);
    if (rc != 0) {
        status = rc > 0 ? BR_EXIT_OK : BR_EXIT_ERR;
        goto out_engine;
    }
    speculo_reader_ident(o.r, &o.ident);
    o.uid = o.ident.uid;
    if (outq_start(&o.q, &o.e, br_kick) < 0)
        goto out_queue;
    char subject[BR_SUBJECT_MAX];
    br_subject_epoch(a->stream, subject, sizeof subject);
    if (natsConnection_Subscribe(&o.marker_sub, o.e.nc, subject, on_marker, &o) != NATS_OK) {
        br_log("cannot subscribe to %s", printable(subject));
        goto out_queue;
    }
    rc = resume(&o);
    if (rc != 0) {
        status = rc > 0 ? BR_EXIT_OK : BR_EXIT_ERR;
        goto out_queue;
    }
    loop(&o);
    status = br_failed() ? BR_EXIT_ERR : BR_EXIT_OK;
out_queue:
    if (o.marker_sub) {
        natsSubscription_Unsubscribe(o.marker_sub);
        natsSubscription_Destroy(o.marker_sub);
    }
    natsConnection_Close(o.e.nc); /* a publish in flight gives up at once */
    outq_stop(&o.q);
    if (o.tk) {
        tk_free(o.tk);
        free(o.tk);
    }
    while (o.retiring) {
        struct retiring *r = o.retiring;
        o.retiring = r->next;
        tk_free(&r->tk);
        free(r);
    }
out_engine:
    speculo_reader_close(o.r);
    br_engine_close(&o.e);
    pthread_mutex_destroy(&o.uids_lock);
    if (status == BR_EXIT_OK && !br_failed())
        br_log("stopped");
    return br_failed() ? BR_EXIT_ERR : status;
}
