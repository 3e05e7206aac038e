/*
 * Internal declarations shared by the library's modules. Nothing here is
 * exported from the shared library (-fvisibility=hidden).
 */
#ifndef SPECULO_INTERNAL_H
#define SPECULO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "format.h"
#include "speculo.h"

#define PATH_BUF 4096

/* A segment file mapped in full. */
struct seg_map {
    uint8_t *base;
    uint64_t size;
    dev_t dev;
    ino_t ino;
    uid_t uid;
    mode_t mode;
    /* The header's layout as checked when mapped (or as made): never read
     * from the file again, since whoever may write the file can rewrite
     * the header under a reader (cp over it, say). */
    struct seg_layout lay;
};

static inline struct seg_header *map_header(const struct seg_map *m)
{
    return (struct seg_header *)m->base;
}

/* namespace.c */
int ns_dir_path(char *buf, size_t size, bool *is_default);
int ns_open_dir(bool writer, int *dirfd);
int ns_open_segment(int dirfd, const char *segment, bool writable, int *fd, struct stat *st);
int ns_check_segment(int fd, bool writable, struct stat *st);
int ns_open_error(int err);
int ns_map_segment(const char *segment, bool writable, struct seg_map *m);
int ns_map_fd_raw(int fd, const struct stat *st, struct seg_map *m);
int ns_map_fd(int fd, const struct stat *st, bool writable, struct seg_map *m);
void ns_unmap(struct seg_map *m);
int ns_same_file(int dirfd, const char *segment, const struct seg_map *m);
/* Called for each temporary file removed (or, dry, found), with the bytes
 * it held. */
typedef void (*speculo__temp_fn)(const char *name, uint64_t bytes, void *arg);
/* Remove the temporary files of dead writers of @segment (NULL: of every
 * segment) in @dirfd; with @dry_run only report them. Returns how many. */
int speculo__temporaries_remove(int dirfd, const char *segment, bool dry_run, speculo__temp_fn fn,
                                void *arg);

/* role.c */
uint64_t speculo__owner_self_token(void);
int speculo__role_lock(int fd);
int speculo__role_held(int fd);
int speculo__role_held_at(int dirfd, const char *segment);
static inline int64_t owner_pid(uint64_t token)
{
    return (int64_t)(token & OWNER_PID_MASK);
}

/* clock.c */
int64_t clock_wall_ns(void);
int64_t clock_mono_ns(void);
uint64_t random_u64(void);

/* wait.c */
void wake_waiters(struct seg_header *h);
int futex_wait_shared(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);

/* Liveness of a checked record at time `now` (0 = read the clock when the
 * record can expire). */
static inline bool rec_live(const struct rec_view *v, int64_t *now)
{
    /* observes: a mark stored by the writer; stale values only delay a skip */
    if (atomic_load_explicit(&((struct rec_header *)v->h)->obsoleted_by, memory_order_relaxed))
        return false;
    if (v->expires_ns == 0)
        return true;
    if (*now == 0)
        *now = clock_wall_ns();
    return v->expires_ns > *now;
}

static inline uint64_t *seg_table(const struct seg_map *m)
{
    return (uint64_t *)(m->base + m->lay.table_off);
}

static inline struct name_slot *seg_index(const struct seg_map *m)
{
    return (struct name_slot *)(m->base + m->lay.index_off);
}

/* index.c: the name index, shared by writer (insert) and reader (lookup). */
int index_lookup(const struct seg_map *m, const char *name, size_t len, uint64_t hash,
                 struct rec_view *v);
int index_slot_for(const struct seg_map *m, const char *name, size_t len, uint64_t hash,
                   struct name_slot **slot, struct rec_view *prev);

/* Binary search of the id table: index of the first record with id >= `id`
 * among the first `n`, or -EBADMSG. */
int64_t table_lower_bound(const struct seg_map *m, uint64_t n, uint64_t id);

#endif
