/*
 * What the crash and stress drivers share: self-checking chunk payloads
 * (inline, below) and the process plumbing of a driver (payload.c).
 *
 * A payload starts with a header (what the chunk is: kind, sequence number,
 * writer epoch, name and version) followed by bytes derived from the
 * sequence number; a 64-bit checksum covers all of it. A reader that finds
 * the checksum right knows it holds the whole chunk as it was committed: a
 * partly written or changed chunk fails it.
 */
#ifndef STRESS_PAYLOAD_H
#define STRESS_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "speculo.h"
#include "t_util.h" /* directories, clocks, shared memory */

enum pl_kind {
    PL_STREAM = 1, /* unnamed, with a TTL */
    PL_CHAIN = 2,  /* unnamed, no TTL, replaces the previous chain chunk */
    PL_NAMED = 3,  /* named update, no TTL */
    PL_PLAIN = 4,  /* unnamed, no TTL, obsoleted explicitly later (stress) */
};

struct pl_head {
    uint64_t sum;     /* checksum of everything after this field */
    uint64_t len;     /* payload bytes, header included */
    uint64_t seq;     /* sequence number of the stream */
    uint64_t epoch;   /* writer incarnation */
    uint64_t version; /* version of the name (named) or of the chain */
    int64_t ttl_ns;   /* as committed */
    uint32_t kind;    /* enum pl_kind */
    uint32_t name;    /* name index (named) */
};

static inline uint64_t pl_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    x ^= x >> 31;
    return x;
}

static inline uint64_t pl_sum(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3u;
    }
    return pl_mix(h);
}

/* Fill `len` (>= sizeof(struct pl_head)) bytes at p. */
static inline void pl_fill(void *p, size_t len, const struct pl_head *head)
{
    struct pl_head h = *head;
    h.len = len;
    unsigned char *b = p;
    uint64_t x = pl_mix(h.seq ^ (h.epoch << 40) ^ len);
    for (size_t i = sizeof h; i < len; i++) {
        if ((i & 7) == 0)
            x = pl_mix(x + i);
        b[i] = (unsigned char)(x >> ((i & 7) * 8));
    }
    h.sum = 0;
    memcpy(b, &h, sizeof h);
    h.sum = pl_sum(b + sizeof h.sum, len - sizeof h.sum);
    memcpy(b, &h, sizeof h);
}

/* 0 when the chunk bytes are a whole payload; fills *out with its header. */
static inline int pl_check(const void *p, size_t size, struct pl_head *out)
{
    struct pl_head h;
    if (size < sizeof h || p == NULL)
        return -1;
    memcpy(&h, p, sizeof h);
    if (h.len != size)
        return -2;
    if (pl_sum((const unsigned char *)p + sizeof h.sum, size - sizeof h.sum) != h.sum)
        return -3;
    *out = h;
    return 0;
}

/* xorshift64*: deterministic per seed, for reproducible runs. */
static inline uint64_t pl_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1du;
}

/* ---- process plumbing (payload.c) ---------------------------------- */

/* Report a failed check as "PROG[PID]: MESSAGE" on stderr and leave the
 * process with status 3, without atexit handlers: they belong to the
 * driver, not to the child that failed. */
_Noreturn void pl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Unless SPECULO_DIR is set, run in a fresh directory
 * /dev/shm/speculo-TAG-XXXXXX: exported as SPECULO_DIR to the children,
 * removed with its files when the driver exits. 0, or -1 after perror. */
int pl_private_dir(const char *tag);

/* Reader k's handle on the segment; a failure to open is a failed check. */
speculo_reader *pl_open_reader(const char *segment, int k);

/* fork(); the child is killed (SIGKILL) when the driver dies, so that a
 * failed run leaves no process behind. Returns as fork(), after perror
 * when it fails. */
pid_t pl_fork(void);

#endif
