/*
 * Test helpers that look inside segment files (t_seg_ prefix): map a
 * segment of the test directory to read or corrupt its header and records
 * with the structs of lib/format.h. No dependency on the Check framework.
 */
#ifndef T_SEG_H
#define T_SEG_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* A whole segment file mapped shared, read-write. */
struct t_seg_map {
    unsigned char *p;
    size_t size;
};

/* Map the file of segment `seg` in t_dir() (O_RDWR, MAP_SHARED; the file
 * descriptor is closed again). 0 or -errno. */
int t_seg_map(const char *seg, struct t_seg_map *m);
/* The same for the segment file at @path. */
int t_seg_map_path(const char *path, struct t_seg_map *m);
void t_seg_unmap(struct t_seg_map *m);

static inline struct seg_header *t_seg_hdr(const struct t_seg_map *m)
{
    return (struct seg_header *)(void *)m->p;
}

/* The record header at offset off (no check). */
static inline struct rec_header *t_seg_rec(const struct t_seg_map *m, uint64_t off)
{
    return (struct rec_header *)(void *)(m->p + off);
}

/* Offsets of the first `max` committed records of the file, walked by
 * their commit lengths from records_off (trusting a fresh, valid file).
 * Returns how many were found. */
int t_seg_records(const struct t_seg_map *m, uint64_t *offs, int max);

/* Wait until the header's count of readers blocked in
 * speculo_reader_wait() (or _watch()) is `want`, at most timeout_ms: 0 or
 * -ETIMEDOUT. With want 1, a test knows that its reader is blocked (or
 * about to block: registered, so that a commit from now on wakes it)
 * before it commits; with 0, that the reader left the wait. Readers without
 * write access to the file do not register (they sleep in slices). */
int t_seg_await_waiters(const struct t_seg_map *m, uint32_t want, int timeout_ms);
/* A name ("n0", "n1", ...) whose home slot in the file's name index is
 * that of @name, into @out; returns that slot. */
uint64_t t_seg_same_home(const struct t_seg_map *m, const char *name, char *out, size_t size);

/* Write `len` bytes at offset `off` of the segment file (pwrite). 0/-errno. */
int t_seg_pwrite(const char *seg, uint64_t off, const void *buf, size_t len);
/* truncate(2) the segment file. 0 or -errno. */
int t_seg_truncate(const char *seg, uint64_t size);
/* Size of the segment file, or -errno. */
int64_t t_seg_file_size(const char *seg);

#endif
