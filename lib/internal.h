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

#define PATH_BUF 4096 /* the longest segment directory path, NUL included */

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
/* A segment directory as a handle keeps it: the path given, or
 * $SPECULO_DIR, or the default, resolved once when the handle is made. */
struct ns_dir {
    char *path;
    bool is_default; /* /dev/shm/speculo-UID: must be ours even to read */
};
int speculo__dir_get(const char *dir, struct ns_dir *d);
void speculo__dir_put(struct ns_dir *d);
/* Open and check the directory (see speculo_dir_check()); a writer's is
 * created when missing. */
int speculo__dir_open(const struct ns_dir *d, bool writer, int *dirfd);
int speculo__ns_open_segment(int dirfd, const char *segment, bool writable, int *fd,
                             struct stat *st);
int speculo__ns_check_segment(int fd, bool writable, struct stat *st);
int speculo__ns_open_error(int err);
int speculo__ns_map_segment(const struct ns_dir *d, const char *segment, bool writable,
                            struct seg_map *m);
int speculo__ns_map_fd_raw(int fd, const struct stat *st, struct seg_map *m);
int speculo__ns_map_fd(int fd, const struct stat *st, bool writable, struct seg_map *m);
void speculo__ns_unmap(struct seg_map *m);
int speculo__ns_same_file(int dirfd, const char *segment, const struct seg_map *m);
/* Remove the temporary files of dead writers of @segment (NULL: of every
 * segment) in @dirfd; with @dry_run only report them. Returns how many. */
int speculo__temporaries_remove(int dirfd, const char *segment, bool dry_run,
                                speculo_leftover_fn fn, void *arg);

/* role.c */
uint64_t speculo__owner_self_token(void);
int speculo__role_lock(int fd);
int speculo__role_held(int fd);
int speculo__role_held_at(int dirfd, const char *segment);
static inline int64_t owner_pid(uint64_t token)
{
    return (int64_t)(token & OWNER_PID_MASK);
}

/* names.c */
ssize_t speculo__chunk_name_len(const char *name);
bool speculo__chunk_name_valid(const char *name, size_t len);

/* clock.c */
int64_t speculo__clock_wall_ns(void);
int64_t speculo__clock_mono_ns(void);
uint64_t speculo__random_u64(void);

/* wait.c: the writer's half of waiting (see there). After a commit or an
 * obsoletion: wake the readers waiting on the file, if any. Inline: every
 * commit asks. */
void speculo__wake(struct seg_header *h);
static inline void speculo__wake_waiters(struct seg_header *h)
{
    /* observes: registered readers; releases our commit to later ones */
    if (atomic_fetch_add_explicit(&h->waiters, 0, memory_order_acq_rel) != 0)
        speculo__wake(h);
}
/* The same from a writer whose process is registered for the readers'
 * barrier (@registered): while no reader ever waited on the file, two
 * plain loads instead of the read-modify-write. */
static inline void speculo__wake_waiters_after_commit(struct seg_header *h, bool registered)
{
    /* The loads below must stay after the commit's publishing store in
     * program order: the reader's barrier orders them only as written
     * (a release store lets later loads move above it). */
    atomic_signal_fence(memory_order_seq_cst);
    /* observes: a reader's arming, ordered by its barrier (wait.c); a
     * reader of an older library, which registers without arming */
    if (registered && atomic_load_explicit(&h->wait_armed, memory_order_relaxed) == 0 &&
        atomic_load_explicit(&h->waiters, memory_order_relaxed) == 0)
        return;
    speculo__wake_waiters(h);
}
/* wait.c: register the calling process for the readers' barrier; true if
 * it is (Linux 4.16 and later, unless a seccomp filter says no). */
bool speculo__wait_register_writer(void);

/* ---- liveness.c: when a record is live ---------------------------- */

/* Liveness of a checked record at time `now` (0 = read the clock when the
 * record can expire). */
static inline bool speculo__rec_live(const struct rec_view *v, int64_t *now)
{
    /* observes: a mark stored by the writer; stale values only delay a skip */
    if (atomic_load_explicit(&((struct rec_header *)v->h)->obsoleted_by, memory_order_relaxed))
        return false;
    if (v->expires_ns == 0)
        return true;
    if (*now == 0)
        *now = speculo__clock_wall_ns();
    return v->expires_ns > *now;
}

enum rec_state { REC_LIVE, REC_EXPIRED, REC_OBSOLETE };
/* The state of a checked record at @now; @by (if not NULL) receives its
 * obsolete mark: the id that obsoleted it, OBSOLETE_EXPLICIT, or 0. */
enum rec_state speculo__rec_state(const struct rec_view *v, int64_t now, uint64_t *by);
bool speculo__rec_was_latest(const struct seg_map *m, const struct rec_view *v, const char *name,
                             size_t len);

static inline uint64_t *seg_table(const struct seg_map *m)
{
    return (uint64_t *)(m->base + m->lay.table_off);
}

static inline struct name_slot *seg_index(const struct seg_map *m)
{
    return (struct name_slot *)(m->base + m->lay.index_off);
}

/* index.c: the name index, shared by writer (insert) and reader (lookup). */
int speculo__index_lookup(const struct seg_map *m, const char *name, size_t len, uint64_t hash,
                          struct rec_view *v, struct name_slot **found);
int speculo__index_at(const struct seg_map *m, struct name_slot *slot, const char *name, size_t len,
                      struct rec_view *v);
int speculo__index_slot_for(const struct seg_map *m, const char *name, size_t len, uint64_t hash,
                            struct name_slot **slot, struct rec_view *prev);

/* The committed record @id of @m, live or not (format.c): 0, -ENOENT,
 * -EBADMSG. */
int speculo__find_id(const struct seg_map *m, uint64_t id, struct rec_view *v);

/* Binary search of the id table: index of the first record with id >= `id`
 * among the first `n`, or -EBADMSG. */
int64_t speculo__table_lower_bound(const struct seg_map *m, uint64_t n, uint64_t id);

#endif
