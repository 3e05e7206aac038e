/*
 * The bridge's wire format (see proto.h and docs/BRIDGE.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* ---- names ---------------------------------------------------------------- */

static bool plain_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

size_t br_escape(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char enc[3] = {(char)*p, 0, 0};
        size_t k = 1;
        if (!plain_byte(*p)) {
            enc[0] = '_';
            enc[1] = hex[*p >> 4];
            enc[2] = hex[*p & 15];
            k = 3;
        }
        if (n + k < size)
            memcpy(out + n, enc, k);
        n += k;
    }
    if (size)
        out[n < size ? n : size - 1] = '\0';
    return n;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int br_unescape(const char *s, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = s; *p; n++) {
        int c;
        if (*p == '_') {
            int hi = hex_value(p[1]), lo = hi < 0 ? -1 : hex_value(p[2]);
            if (lo < 0)
                return -EINVAL;
            c = hi << 4 | lo;
            if (c == 0 || plain_byte((unsigned char)c))
                return -EINVAL; /* one text, one spelling */
            p += 3;
        } else if (plain_byte((unsigned char)*p)) {
            c = (unsigned char)*p++;
        } else {
            return -EINVAL;
        }
        if (n + 1 >= size)
            return -ENAMETOOLONG;
        out[n] = (char)c;
    }
    if (!size)
        return -ENAMETOOLONG;
    out[n] = '\0';
    return (int)n;
}

int br_stream_default(const char *segment, char *out, size_t size)
{
    char esc[3 * SPECULO_SEGMENT_NAME_MAX + 1];
    size_t n = br_escape(segment, esc, sizeof esc);
    if (n >= sizeof esc || 8 + n > BR_STREAM_MAX || 8 + n >= size)
        return -ENAMETOOLONG;
    snprintf(out, size, "speculo-%s", esc);
    return 0;
}

bool br_stream_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > BR_STREAM_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!plain_byte((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

/* ---- subjects -------------------------------------------------------------- */

void br_subject_filter(const char *stream, char *out, size_t size)
{
    snprintf(out, size, "speculo.%s.>", stream);
}

void br_subject_epoch(const char *stream, char *out, size_t size)
{
    snprintf(out, size, "speculo.%s.e", stream);
}

void br_subject_named(const char *stream, const char *name, char *out, size_t size)
{
    char esc[3 * SPECULO_CHUNK_NAME_MAX + 1];
    br_escape(name, esc, sizeof esc);
    snprintf(out, size, "speculo.%s.n.%s", stream, esc);
}

void br_subject_chunk(const char *stream, uint64_t uid, uint64_t id, char *out, size_t size)
{
    snprintf(out, size, "speculo.%s.c.%016" PRIx64 ".%" PRIu64, stream, uid, id);
}

void br_subject_part(const char *stream, uint64_t uid, uint64_t id, uint32_t k, char *out,
                     size_t size)
{
    snprintf(out, size, "speculo.%s.p.%016" PRIx64 ".%" PRIu64 ".%" PRIu32, stream, uid, id, k);
}

void br_subject_notice(const char *stream, uint64_t uid, uint64_t nonce, char *out, size_t size)
{
    snprintf(out, size, "speculo.%s.o.%016" PRIx64 ".%016" PRIx64, stream, uid, nonce);
}

/* ---- numbers ----------------------------------------------------------------- */

bool br_parse_u64(const char *s, uint64_t *v)
{
    if (!s || !*s || strlen(s) > 20)
        return false;
    uint64_t x = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = x;
    return true;
}

bool br_parse_uid(const char *s, uint64_t *v)
{
    if (!s || strlen(s) != 16)
        return false;
    uint64_t x = 0;
    for (const char *p = s; *p; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            return false;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return true;
}

/* ---- id lists ------------------------------------------------------------------ */

void br_ids_init(struct br_ids *ids)
{
    memset(ids, 0, sizeof *ids);
}

void br_ids_free(struct br_ids *ids)
{
    free(ids->r);
    br_ids_init(ids);
}

void br_ids_clear(struct br_ids *ids)
{
    ids->n = 0;
    ids->count = 0;
}

int br_grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*v, n * elem);
    if (!p)
        return -ENOMEM;
    *v = p;
    *cap = n;
    return 0;
}

static int push_range(struct br_ids *ids, uint64_t lo, uint64_t hi)
{
    if (br_grow((void **)&ids->r, &ids->cap, ids->n + 1, sizeof *ids->r) < 0)
        return -ENOMEM;
    ids->r[ids->n++] = (struct br_range){lo, hi};
    ids->count += hi - lo + 1;
    return 0;
}

int br_ids_add(struct br_ids *ids, uint64_t id)
{
    if (id == 0 || id >= BR_ID_MAX || (ids->n && id <= ids->r[ids->n - 1].hi))
        return -EINVAL;
    if (ids->n && id == ids->r[ids->n - 1].hi + 1) {
        ids->r[ids->n - 1].hi = id;
        ids->count++;
        return 0;
    }
    return push_range(ids, id, id);
}

uint64_t br_ids_last(const struct br_ids *ids)
{
    return ids->n ? ids->r[ids->n - 1].hi : 0;
}

bool br_ids_contains(const struct br_ids *ids, uint64_t id)
{
    size_t lo = 0, hi = ids->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids->r[mid].hi < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ids->n && ids->r[lo].lo <= id;
}

static int range_text(const struct br_range *r, char *out, size_t size)
{
    if (r->lo == r->hi)
        return snprintf(out, size, "%" PRIu64, r->lo);
    return snprintf(out, size, "%" PRIu64 "-%" PRIu64, r->lo, r->hi);
}

int br_ids_format(const struct br_ids *ids, char *out, size_t size)
{
    size_t n = 0;
    if (size)
        out[0] = '\0';
    for (size_t i = 0; i < ids->n; i++) {
        if (i) {
            if (n + 1 >= size)
                return -ENOSPC;
            out[n++] = ',';
        }
        int k = range_text(&ids->r[i], out + n, size - n);
        if (k < 0 || (size_t)k >= size - n)
            return -ENOSPC;
        n += (size_t)k;
    }
    return (int)n;
}

/* Bytes the text grows by when id is added (it extends the last range or
 * starts one); the whole text is kept under limit. */
bool br_ids_fits(const struct br_ids *ids, uint64_t id, size_t limit)
{
    char buf[48];
    size_t len = 0;
    for (size_t i = 0; i < ids->n; i++)
        len += (i ? 1 : 0) + (size_t)range_text(&ids->r[i], buf, sizeof buf);
    if (ids->n && id == ids->r[ids->n - 1].hi + 1) {
        struct br_range r = {ids->r[ids->n - 1].lo, id};
        len -= (size_t)range_text(&ids->r[ids->n - 1], buf, sizeof buf);
        len += (size_t)range_text(&r, buf, sizeof buf);
    } else {
        struct br_range r = {id, id};
        len += (ids->n ? 1 : 0) + (size_t)range_text(&r, buf, sizeof buf);
    }
    return len < limit;
}

static bool parse_id(const char *s, size_t len, uint64_t *v)
{
    char buf[24];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return br_parse_u64(buf, v) && *v > 0 && *v < BR_ID_MAX;
}

int br_ids_parse(const char *s, uint64_t max_count, struct br_ids *out)
{
    br_ids_clear(out);
    if (!s || !*s)
        return -EBADMSG;
    const char *p = s;
    for (;;) {
        size_t tok = strcspn(p, ",");
        const char *dash = memchr(p, '-', tok);
        uint64_t lo, hi;
        if (dash) {
            if (!parse_id(p, (size_t)(dash - p), &lo) ||
                !parse_id(dash + 1, tok - (size_t)(dash - p) - 1, &hi) || hi < lo)
                return -EBADMSG;
        } else if (!parse_id(p, tok, &lo)) {
            return -EBADMSG;
        } else {
            hi = lo;
        }
        if ((out->n && lo <= out->r[out->n - 1].hi) || hi - lo >= max_count ||
            out->count + (hi - lo + 1) > max_count)
            return -EBADMSG;
        int rc = push_range(out, lo, hi);
        if (rc < 0)
            return rc;
        if (p[tok] == '\0')
            return 0;
        p += tok + 1;
    }
}

/* ---- messages -------------------------------------------------------------------- */

static const char *const kind_names[] = {
    [BR_CHUNK] = "chunk",       [BR_PART] = "part",   [BR_FRAME] = "frame",
    [BR_OBSOLETE] = "obsolete", [BR_EPOCH] = "epoch", [BR_REMOVED] = "removed",
};

const char *br_kind_name(enum br_kind k)
{
    return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "?";
}

void br_msg_init(struct br_msg *m)
{
    memset(m, 0, sizeof *m);
    br_ids_init(&m->ids);
}

void br_msg_free(struct br_msg *m)
{
    br_ids_free(&m->ids);
}

uint64_t br_msg_last_id(const struct br_msg *m)
{
    switch (m->kind) {
    case BR_CHUNK:
    case BR_PART:
        return m->id;
    case BR_FRAME:
    case BR_OBSOLETE:
        return br_ids_last(&m->ids);
    default:
        return 0;
    }
}

static int set_u64(natsMsg *msg, const char *key, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return natsMsgHeader_Set(msg, key, buf) == NATS_OK ? 0 : -ENOMEM;
}

static int set_str(natsMsg *msg, const char *key, const char *v)
{
    return natsMsgHeader_Set(msg, key, v) == NATS_OK ? 0 : -ENOMEM;
}

int br_set_headers(natsMsg *msg, const struct br_msg *m, const char *ids_text)
{
    char uid[20], part[24];
    snprintf(uid, sizeof uid, "%016" PRIx64, m->uid);
    int rc = set_str(msg, BR_H_VERSION, BR_VERSION);
    if (!rc)
        rc = set_str(msg, BR_H_KIND, br_kind_name(m->kind));
    if (!rc)
        rc = set_str(msg, BR_H_UID, uid);
    switch (m->kind) {
    case BR_PART:
        snprintf(part, sizeof part, "%" PRIu32 "/%" PRIu32, m->part, m->nparts);
        if (!rc)
            rc = set_str(msg, BR_H_PART, part);
        if (!rc)
            rc = set_u64(msg, BR_H_SIZE, m->size);
        if (!rc)
            rc = set_u64(msg, BR_H_OFFSET, m->offset);
        /* a part carries its chunk's metadata */
        /* fall through */
    case BR_CHUNK:
        if (!rc)
            rc = set_u64(msg, BR_H_ID, m->id);
        if (!rc)
            rc = set_u64(msg, BR_H_COMMITTED, (uint64_t)m->committed_ns);
        if (!rc)
            rc = set_u64(msg, BR_H_EXPIRES, (uint64_t)m->expires_ns);
        if (!rc && m->replaces)
            rc = set_u64(msg, BR_H_REPLACES, m->replaces);
        if (!rc && m->name[0])
            rc = set_str(msg, BR_H_NAME, m->name);
        break;
    case BR_FRAME:
        if (!rc)
            rc = set_u64(msg, BR_H_EXPIRES, (uint64_t)m->expires_ns);
        /* fall through */
    case BR_OBSOLETE:
        if (!rc)
            rc = set_str(msg, BR_H_IDS, ids_text);
        break;
    case BR_EPOCH:
        if (!rc)
            rc = set_u64(msg, BR_H_CREATED, (uint64_t)m->created_ns);
        if (!rc && m->capacity)
            rc = set_u64(msg, BR_H_CAPACITY, m->capacity);
        /* fall through */
    case BR_REMOVED:
        if (!rc && m->origin[0])
            rc = set_str(msg, BR_H_ORIGIN, m->origin);
        break;
    }
    return rc;
}

/* A header's value, or NULL when absent (or repeated: one value only). */
static const char *header(natsMsg *msg, const char *key)
{
    const char **vals = NULL;
    int n = 0;
    if (natsMsgHeader_Values(msg, key, &vals, &n) != NATS_OK)
        return NULL;
    const char *v = n == 1 ? vals[0] : NULL;
    free((void *)vals);
    return v;
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, why_size, __VA_ARGS__);                                                      \
        return -EBADMSG;                                                                           \
    } while (0)

static bool time_value(natsMsg *msg, const char *key, int64_t *v)
{
    uint64_t x;
    if (!br_parse_u64(header(msg, key), &x) || x > INT64_MAX)
        return false;
    *v = (int64_t)x;
    return true;
}

static int parse_chunk_meta(natsMsg *msg, struct br_msg *m, char *why, size_t why_size)
{
    if (!br_parse_u64(header(msg, BR_H_ID), &m->id) || m->id == 0 || m->id >= BR_ID_MAX)
        BAD("bad %s", BR_H_ID);
    if (!time_value(msg, BR_H_COMMITTED, &m->committed_ns) || m->committed_ns == 0)
        BAD("bad %s", BR_H_COMMITTED);
    if (!time_value(msg, BR_H_EXPIRES, &m->expires_ns))
        BAD("bad %s", BR_H_EXPIRES);
    const char *v = header(msg, BR_H_REPLACES);
    if (v && (!br_parse_u64(v, &m->replaces) || m->replaces == 0 || m->replaces >= m->id))
        BAD("bad %s", BR_H_REPLACES);
    v = header(msg, BR_H_NAME);
    if (v) {
        if (speculo_chunk_name_check(v) != 0)
            BAD("bad %s", BR_H_NAME);
        memcpy(m->name, v, strlen(v) + 1); /* fits: checked */
    }
    return 0;
}

static int parse_part(natsMsg *msg, struct br_msg *m, char *why, size_t why_size)
{
    const char *v = header(msg, BR_H_PART);
    char k[24], n[24];
    const char *slash = v ? strchr(v, '/') : NULL;
    if (!slash || (size_t)(slash - v) >= sizeof k || strlen(slash + 1) >= sizeof n)
        BAD("bad %s", BR_H_PART);
    memcpy(k, v, (size_t)(slash - v));
    k[slash - v] = '\0';
    snprintf(n, sizeof n, "%s", slash + 1);
    uint64_t kk, nn;
    if (!br_parse_u64(k, &kk) || !br_parse_u64(n, &nn) || nn < 2 || nn > BR_MAX_PARTS || kk >= nn)
        BAD("bad %s", BR_H_PART);
    m->part = (uint32_t)kk;
    m->nparts = (uint32_t)nn;
    if (!br_parse_u64(header(msg, BR_H_SIZE), &m->size) || m->size > INT64_MAX)
        BAD("bad %s", BR_H_SIZE);
    if (!br_parse_u64(header(msg, BR_H_OFFSET), &m->offset) || m->offset > m->size ||
        (uint64_t)natsMsg_GetDataLength(msg) > m->size - m->offset)
        BAD("bad %s", BR_H_OFFSET);
    return 0;
}

static int parse_ids(natsMsg *msg, struct br_msg *m, uint64_t max, char *why, size_t why_size)
{
    int rc = br_ids_parse(header(msg, BR_H_IDS), max, &m->ids);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        BAD("bad %s", BR_H_IDS);
    return 0;
}

int br_parse(natsMsg *msg, struct br_msg *m, char *why, size_t why_size)
{
    br_ids_clear(&m->ids);
    struct br_ids ids = m->ids;
    memset(m, 0, sizeof *m);
    m->ids = ids;
    const char *v = header(msg, BR_H_VERSION);
    if (!v) {
        snprintf(why, why_size, "not a speculo bridge message");
        return -EPROTO;
    }
    if (strcmp(v, BR_VERSION) != 0)
        BAD("format version %.16s, not " BR_VERSION, v);
    v = header(msg, BR_H_KIND);
    size_t k = 0;
    while (k < sizeof kind_names / sizeof kind_names[0] && !(v && !strcmp(v, kind_names[k])))
        k++;
    if (k == sizeof kind_names / sizeof kind_names[0])
        BAD("bad %s", BR_H_KIND);
    m->kind = (enum br_kind)k;
    if (!br_parse_uid(header(msg, BR_H_UID), &m->uid) || m->uid == 0)
        BAD("bad %s", BR_H_UID);
    int rc = 0;
    switch (m->kind) {
    case BR_PART:
        rc = parse_part(msg, m, why, why_size);
        /* fall through */
    case BR_CHUNK:
        if (rc == 0)
            rc = parse_chunk_meta(msg, m, why, why_size);
        break;
    case BR_FRAME:
        if (!time_value(msg, BR_H_EXPIRES, &m->expires_ns))
            BAD("bad %s", BR_H_EXPIRES);
        rc = parse_ids(msg, m, BR_FRAME_MAX_CHUNKS, why, why_size);
        break;
    case BR_OBSOLETE:
        rc = parse_ids(msg, m, BR_NOTICE_MAX_IDS, why, why_size);
        break;
    case BR_EPOCH:
        v = header(msg, BR_H_CREATED);
        if (v && !time_value(msg, BR_H_CREATED, &m->created_ns))
            BAD("bad %s", BR_H_CREATED);
        v = header(msg, BR_H_CAPACITY);
        if (v && !br_parse_u64(v, &m->capacity))
            BAD("bad %s", BR_H_CAPACITY);
        /* fall through */
    case BR_REMOVED:
        v = header(msg, BR_H_ORIGIN);
        if (v && strlen(v) >= sizeof m->origin)
            BAD("bad %s", BR_H_ORIGIN);
        if (v)
            memcpy(m->origin, v, strlen(v) + 1);
        break;
    }
    return rc;
}

/* ---- frames ------------------------------------------------------------------------ */

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

size_t br_entry_length(size_t size)
{
    return BR_ENTRY_HEADER + ((size + 7) & ~(size_t)7);
}

void br_entry_put(unsigned char *p, const struct br_entry *e)
{
    put_le64(p, e->id);
    put_le64(p + 8, (uint64_t)e->committed_ns);
    put_le64(p + 16, (uint64_t)e->expires_ns);
    put_le64(p + 24, e->replaces);
    put_le64(p + 32, e->size);
    if (e->size)
        memcpy(p + BR_ENTRY_HEADER, e->data, e->size);
    size_t pad = br_entry_length(e->size) - BR_ENTRY_HEADER - e->size;
    memset(p + BR_ENTRY_HEADER + e->size, 0, pad);
}

int br_frame_next(const unsigned char *buf, size_t len, size_t *off, struct br_entry *e)
{
    if (*off == len)
        return 0;
    if (*off > len || len - *off < BR_ENTRY_HEADER)
        return -EBADMSG;
    const unsigned char *p = buf + *off;
    e->id = get_le64(p);
    e->committed_ns = (int64_t)get_le64(p + 8);
    e->expires_ns = (int64_t)get_le64(p + 16);
    e->replaces = get_le64(p + 24);
    e->size = get_le64(p + 32);
    size_t room = len - *off - BR_ENTRY_HEADER;
    if (e->size > room || e->id == 0 || e->id >= BR_ID_MAX || e->committed_ns <= 0 ||
        e->expires_ns < 0 || e->replaces >= e->id)
        return -EBADMSG;
    size_t total = br_entry_length(e->size);
    if (total - BR_ENTRY_HEADER > room)
        return -EBADMSG;
    e->data = p + BR_ENTRY_HEADER;
    *off += total;
    return 1;
}
