/*
 * What the forwarder has put in the stream for one epoch (one origin
 * segment uid), so that the stream does not grow for ever: the chunks it
 * forwarded, each known live or dead, and the messages holding them. A
 * message whose chunks are all dead (expired, replaced, obsoleted) is
 * deleted from the stream by sequence; a notice of explicit obsoletions
 * is deleted once no message of ours holds any chunk it names.
 *
 * The tracker is rebuilt after a restart from the stream's headers (every
 * message says which ids it holds) and the origin segment's records.
 * Used by the forwarder's main thread only.
 */
#ifndef BRIDGE_TRACK_H
#define BRIDGE_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct tk_chunk {
    uint64_t id;
    int64_t expires_ns; /* 0 = never (for a chunk only seen in a frame's
                           headers: the frame's latest expiry) */
    uint64_t seq;       /* first message of ours holding it; 0: none yet */
    uint32_t nmsgs;     /* messages of ours holding it, still in the stream */
    bool live;          /* not known dead */
    bool transit;       /* read, its message not stored yet */
    bool multi;         /* also held by messages other than its first (and
                           that first's following parts) */
    bool noticed;       /* a notice of its death is in the stream or queued */
    bool notify;        /* killed by a `replaces` while in transit: a notice
                           is due if its message stays in the stream */
};

struct tk_msg {
    uint64_t seq;
    struct br_ids ids; /* the chunks it holds */
    uint32_t live;     /* how many of them are live */
    bool gone;         /* deleted, or its deletion asked for */
};

struct tk_notice {
    uint64_t seq;
    struct br_ids ids;
    bool gone;
};

/* The state of a chunk at the origin, for tk_check(). */
enum tk_state { TK_LIVE, TK_EXPIRED, TK_REPLACED, TK_OBSOLETE, TK_GONE, TK_UNKNOWN };
/* *by: with TK_REPLACED, the id of the chunk that obsoleted it; *expires:
 * its expiry when the record is there. */
typedef enum tk_state (*tk_state_fn)(uint64_t id, uint64_t *by, int64_t *expires, void *arg);
/* Delete message seq from the stream (the forwarder's deleter). */
typedef void (*tk_delete_fn)(uint64_t seq, void *arg);

struct tk_heap_item {
    int64_t at;
    uint64_t id;
};

struct tk_name {
    char *name;
    uint64_t id;
};

struct tracker {
    uint64_t uid;
    struct tk_chunk *c; /* by id */
    size_t nc, capc, dropped_c;
    struct tk_msg *m; /* by seq */
    size_t nm, capm, dropped_m;
    struct tk_notice *o;
    size_t no, capo;
    struct tk_heap_item *h; /* expiry times, earliest first */
    size_t nh, caph;
    struct tk_name *names; /* open addressing */
    size_t names_cap, names_used;
    uint64_t max_id; /* largest id held by a message of ours */
    size_t live;     /* live chunks */
    bool recheck;    /* notices to look at again: messages deleted, or a notice
                        stored, since the last tk_maintain() */
    uint64_t *due;   /* ids whose notice is to be sent (any order) */
    size_t ndue, capdue;
    tk_delete_fn del;
    void *del_arg;
};

void tk_init(struct tracker *t, uint64_t uid, tk_delete_fn del, void *arg);
void tk_free(struct tracker *t);

/* A chunk read from the origin, about to be forwarded: live, in transit.
 * It kills what it obsoleted at its commit (replaces, and the previous
 * version of its name). The message of a name's previous version leaves
 * the stream (the new one replaces it on its subject, or its parts are
 * deleted); a chunk killed by `replaces` may stay there, in a frame that
 * holds live chunks, after the message carrying the `replaces` is gone:
 * that one gets a notice (tk_take_due). -ENOMEM. */
int tk_read(struct tracker *t, uint64_t id, int64_t expires_ns, const char *name,
            uint64_t replaces);
/* A message of ours holding `ids` was stored at seq. A message whose
 * chunks are all dead already is deleted at once. -ENOMEM. */
int tk_stored(struct tracker *t, uint64_t seq, const struct br_ids *ids);
/* The same for a message found in the stream at start: its chunks are
 * added (live until tk_check() says otherwise), with `expires` as their
 * expiry (a frame's latest). */
int tk_found(struct tracker *t, uint64_t seq, const struct br_ids *ids, int64_t expires);
/* A notice (explicit obsoletions) of ours stored at seq. */
int tk_notice_stored(struct tracker *t, uint64_t seq, const struct br_ids *ids);
/* Chunk id is dead (no-op if unknown or dead). */
void tk_kill(struct tracker *t, uint64_t id);
/* Kill the chunks whose expiry is at or before now. Returns the next
 * expiry instant, or 0 if none. */
int64_t tk_expire(struct tracker *t, int64_t now);
/*
 * Ask the origin about every live chunk: those that died without our
 * seeing why (explicit obsoletions, a replacement we never forwarded,
 * records dropped by a collection) are killed and get a notice (see
 * tk_take_due). A chunk replaced by a chunk after last_read that is still
 * live is left alone: forwarding that chunk will tell the mirrors. -ENOMEM.
 */
int tk_check(struct tracker *t, uint64_t last_read, int64_t now, tk_state_fn fn, void *arg);
/* The ids whose deaths the mirrors must be told of by a notice, sorted,
 * into *ids (the caller frees it); how many. Each id once. */
size_t tk_take_due(struct tracker *t, uint64_t **ids);
/* Delete every message and notice of ours (the epoch ended). */
void tk_delete_all(struct tracker *t);
/* Delete the notices no message of ours needs any more; drop from memory
 * what is dead and deleted. Call now and then. */
void tk_maintain(struct tracker *t);

#endif
