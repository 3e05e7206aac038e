/*
 * The bridge's wire format: how a segment's chunks travel as NATS
 * JetStream messages (docs/BRIDGE.md, "The mapping", says the same for
 * people). Pure functions: names, subjects, headers, frames, id lists.
 * Everything parsed here comes from the network and is checked fully.
 *
 * A stream per segment; its subjects are under "speculo.STREAM.":
 *
 *   speculo.STREAM.e                    the epoch marker (the origin segment's
 *                                       uid; latest only)
 *   speculo.STREAM.n.NAME               a named chunk (latest only: the
 *                                       stream keeps one message a subject)
 *   speculo.STREAM.c.UID.ID             an unnamed chunk, or a frame of
 *                                       unnamed chunks starting at ID
 *   speculo.STREAM.p.UID.ID.K           part K of a chunk too big for one
 *                                       message (its last part goes where
 *                                       the whole chunk would)
 *   speculo.STREAM.o.UID.NONCE          ids obsoleted explicitly
 *
 * NAME is the chunk name escaped (br_escape): bytes other than
 * [A-Za-z0-9-] become _XX (hex), so '.' cannot split a token and the
 * mapping is reversible. UID is the origin segment's uid, 16 hex digits.
 */
#ifndef BRIDGE_PROTO_H
#define BRIDGE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "speculo.h"

/* The format version every message carries; another one is refused. */
#define BR_VERSION "1"

#define BR_H_VERSION "Speculo-Bridge"
#define BR_H_KIND "Speculo-Kind"
#define BR_H_UID "Speculo-Uid"
#define BR_H_ID "Speculo-Id"
#define BR_H_COMMITTED "Speculo-Committed"
#define BR_H_EXPIRES "Speculo-Expires"
#define BR_H_REPLACES "Speculo-Replaces"
#define BR_H_NAME "Speculo-Name"
#define BR_H_SIZE "Speculo-Size"
#define BR_H_OFFSET "Speculo-Offset"
#define BR_H_PART "Speculo-Part"
#define BR_H_IDS "Speculo-Ids"
#define BR_H_CREATED "Speculo-Created"
#define BR_H_ORIGIN "Speculo-Origin"
#define BR_H_CAPACITY "Speculo-Capacity"

/* Longest origin (host, segment directory and name) a marker carries. */
#define BR_ORIGIN_MAX 1024
/* Longest stream name nats-server accepts. */
#define BR_STREAM_MAX 255
/* Room for a subject: prefix, kind, escaped name (3 bytes a byte at most). */
#define BR_SUBJECT_MAX (16 + BR_STREAM_MAX + 3 * SPECULO_CHUNK_NAME_MAX)
/* Most chunks in a frame, ids in a notice, parts of a chunk. */
#define BR_FRAME_MAX_CHUNKS 8192
#define BR_NOTICE_MAX_IDS 65536
#define BR_MAX_PARTS (1u << 20)
/* Longest Speculo-Ids value we write (a frame or notice closes first). */
#define BR_IDS_TEXT_MAX 2048
/* What a frame's entry header takes before the chunk's bytes. */
#define BR_ENTRY_HEADER 40u
/* Largest id (the library's ids stay below 2^63). */
#define BR_ID_MAX (UINT64_C(1) << 63)

enum br_kind {
    BR_CHUNK,    /* one whole chunk, metadata in headers, bytes as payload */
    BR_PART,     /* a slice of a chunk too big for one message */
    BR_FRAME,    /* several unnamed chunks, each with an entry header */
    BR_OBSOLETE, /* ids obsoleted explicitly at the origin */
    BR_EPOCH,    /* the origin segment (uid) that the stream now mirrors */
    BR_REMOVED,  /* the origin segment (uid) was removed */
};

/* Ids as sorted ranges [lo, hi], as Speculo-Ids spells them. */
struct br_range {
    uint64_t lo, hi;
};
struct br_ids {
    struct br_range *r;
    size_t n, cap;
    uint64_t count; /* ids in all the ranges */
};

/* A message of ours, its headers checked. */
struct br_msg {
    enum br_kind kind;
    uint64_t uid;
    uint64_t id;          /* chunk, part */
    int64_t committed_ns; /* chunk, part */
    int64_t expires_ns;   /* chunk, part; frame: the latest of its chunks, 0 if one never expires */
    uint64_t replaces;    /* chunk, part */
    uint64_t size;        /* part: the whole chunk's size */
    uint64_t offset;      /* part: where its bytes go in the chunk */
    uint32_t part, nparts;                 /* part: K of N, from 0 */
    int64_t created_ns;                    /* epoch */
    uint64_t capacity;                     /* epoch: the origin segment's file size */
    char origin[BR_ORIGIN_MAX];            /* epoch, removed: HOST:DIR/SEGMENT of the
                                   forwarder ("" when absent) */
    char name[SPECULO_CHUNK_NAME_MAX + 1]; /* chunk, part; "" when unnamed */
    struct br_ids ids;                     /* frame, obsolete */
};

/* One chunk of a frame's payload. */
struct br_entry {
    uint64_t id, replaces, size;
    int64_t committed_ns, expires_ns;
    const void *data;
};

/* ---- names ---- */

/* Escape s: [A-Za-z0-9-] stay, any other byte becomes _XX. Writes the
 * result if it fits (NUL-terminated); returns its length. */
size_t br_escape(const char *s, char *out, size_t size);
/* The reverse; -EINVAL for a malformed text. Returns the length. */
int br_unescape(const char *s, char *out, size_t size);
/* The default stream of a segment: "speculo-" + escaped name. 0, or
 * -ENAMETOOLONG when that is over BR_STREAM_MAX. */
int br_stream_default(const char *segment, char *out, size_t size);
/* A stream name we accept from the user: 1-255 bytes of [A-Za-z0-9_-]. */
bool br_stream_name_ok(const char *name);

/* ---- subjects ---- (out: BR_SUBJECT_MAX bytes) */

void br_subject_filter(const char *stream, char *out, size_t size); /* speculo.STREAM.> */
void br_subject_epoch(const char *stream, char *out, size_t size);
void br_subject_named(const char *stream, const char *name, char *out, size_t size);
void br_subject_chunk(const char *stream, uint64_t uid, uint64_t id, char *out, size_t size);
void br_subject_part(const char *stream, uint64_t uid, uint64_t id, uint32_t k, char *out,
                     size_t size);
void br_subject_notice(const char *stream, uint64_t uid, uint64_t nonce, char *out, size_t size);

/* ---- id lists ---- */

void br_ids_init(struct br_ids *ids);
void br_ids_free(struct br_ids *ids);
void br_ids_clear(struct br_ids *ids);
/* Append an id greater than every one there. 0 or -ENOMEM / -EINVAL. */
int br_ids_add(struct br_ids *ids, uint64_t id);
/* The text of the ranges ("1-64,66"); its length, or -ENOSPC when it
 * does not fit in size - 1 bytes. */
int br_ids_format(const struct br_ids *ids, char *out, size_t size);
/* Would adding id keep the text within `limit` bytes? */
bool br_ids_fits(const struct br_ids *ids, uint64_t id, size_t limit);
/* Parse a Speculo-Ids value: increasing, disjoint ranges of ids in
 * [1, BR_ID_MAX), at most max_count ids. 0, -EBADMSG or -ENOMEM. */
int br_ids_parse(const char *s, uint64_t max_count, struct br_ids *out);
uint64_t br_ids_last(const struct br_ids *ids);
bool br_ids_contains(const struct br_ids *ids, uint64_t id);

/* ---- messages ---- */

const char *br_kind_name(enum br_kind k);
/* Set the headers of a message of kind k from m (the fields that kind
 * uses; m->ids already formatted into ids_text for frames and notices). */
int br_set_headers(natsMsg *msg, const struct br_msg *m, const char *ids_text);
/* Read and check the headers of msg. 0 and *out filled (out->ids owned
 * by out: br_msg_free); -EPROTO not one of ours (no Speculo-Bridge
 * header); -EBADMSG malformed, with why set. A frame's payload is
 * checked by br_frame_next(), not here. */
int br_parse(natsMsg *msg, struct br_msg *out, char *why, size_t why_size);
void br_msg_init(struct br_msg *m);
void br_msg_free(struct br_msg *m);
/* The largest chunk id a message carries (0 for markers). */
uint64_t br_msg_last_id(const struct br_msg *m);

/* ---- frames ---- */

/* Bytes an entry of `size` payload bytes takes in a frame. */
size_t br_entry_length(size_t size);
/* Write an entry at p (br_entry_length(e->size) bytes). */
void br_entry_put(unsigned char *p, const struct br_entry *e);
/* The entry at *off of a frame payload; 1 and *off advanced, 0 at the
 * end, -EBADMSG when it does not fit or is inconsistent. */
int br_frame_next(const unsigned char *buf, size_t len, size_t *off, struct br_entry *e);

/* ---- arrays ---- */

/* Make room for `need` elements of `elem` bytes in *v (doubling *cap).
 * 0, or -ENOMEM with *v untouched. */
int br_grow(void **v, size_t *cap, size_t need, size_t elem);

/* ---- numbers ---- */

/* Decimal digits only, no sign, no overflow. */
bool br_parse_u64(const char *s, uint64_t *v);
/* 16 lower-case hex digits. */
bool br_parse_uid(const char *s, uint64_t *v);

#endif
