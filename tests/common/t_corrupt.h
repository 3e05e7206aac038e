/*
 * Damaged segments (t_ prefix): the fixture of the hostile tests
 * (tests/lib/test_hostile.c) and the corruption classes they make, as a
 * table, so that the checker's tests (the library's and `speculo check`'s)
 * go through every one of them: each entry damages the fixture as its
 * hostile test does and says where the checker must find the first
 * problem and what it must say. No dependency on the Check framework.
 */
#ifndef T_CORRUPT_H
#define T_CORRUPT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "t_seg.h"

/* Segment "s": chunks "one" (named "first"), "two" (unnamed) and "three"
 * (named "third") in a 64 KiB file, the writer closed, the file mapped. */
struct t_fixture {
    char path[PATH_MAX]; /* the segment file */
    uint64_t id[3];
    uint64_t off[3]; /* where the records are */
    uint64_t capacity;
    struct t_seg_map m;
};

/* Make the fixture in segment directory @dir (NULL: $SPECULO_DIR).
 * 0 or -errno. */
int t_fixture_make(const char *dir, struct t_fixture *f);
void t_fixture_done(struct t_fixture *f);

/* The record at index @i of the fixture, mapped. */
static inline struct rec_header *t_fixture_rec(struct t_fixture *f, int i)
{
    return t_seg_rec(&f->m, f->off[i]);
}

struct t_corruption {
    const char *name; /* the hostile test that makes it, and the variant */
    /* Damage the fixture; *offset: where the first problem is. 0 or -errno. */
    int (*make)(struct t_fixture *f, uint64_t *offset);
    const char *reason; /* words the report of the problem contains */
    int status;         /* -EBADMSG, or -EPROTO (another format version) */
};

extern const struct t_corruption t_corruptions[];
extern const size_t t_corruption_count;

#endif
