/* The writer's private state, shared by writer.c and gc.c. */
#ifndef SPECULO_WRITER_H
#define SPECULO_WRITER_H

#include "internal.h"

struct speculo_writer {
    char segment[SPECULO_SEGMENT_NAME_MAX + 1];
    struct ns_dir dir;
    struct seg_map map;
    int fd;                                /* the segment file, holding the role's lock (role.c) */
    int new_fd;                            /* a file being made (created or collected), or -1 */
    bool forked;                           /* this is a forked child's copy: it holds no role */
    speculo_writer *role_next, *role_prev; /* the process's writers (role.c) */
    uint64_t token;                        /* our owner token */
    uint64_t tail;                         /* offset of the next record */
    /* Past the tail, every commit word at or beyond this offset reads 0:
     * what lies between the tail and here (a reservation given up, what a
     * dead writer left) may hold anything, and a commit whose end falls
     * below it clears the next commit word first. */
    uint64_t dirty_end;
    uint64_t nrecords; /* records in this file */
    uint64_t next_id;
    uint64_t names_used;
    uint64_t dead_bytes; /* bytes of obsoleted records */
    uint64_t obsolete_count;
    uint64_t faulted_end;    /* pages before this are populated */
    bool populate_fallback;  /* MADV_POPULATE_WRITE unsupported: touch pages */
    bool barrier_registered; /* our process takes the readers' barrier (wait.c) */
    bool reserved;           /* an alloc is waiting for its commit */
    uint64_t res_size;
    unsigned gc_dead_percent;
    uint64_t gc_min_dead;
    uint64_t base_capacity;
    /* The name of the last named commit, its hash and its slot in the
     * mapped file (a slot keeps its name for the file's lifetime): the same
     * name again needs no check, hash or probe, and while the slot still
     * holds the record that commit stored, no look at the record either.
     * NULL when the file changes. */
    struct name_slot *name_slot;
    struct rec_view name_rec; /* the record that commit stored in the slot */
    uint64_t name_hash;
    uint32_t name_len;
    char name[SPECULO_CHUNK_NAME_MAX + 1];
};

static inline struct seg_header *w_header(const speculo_writer *w)
{
    return map_header(&w->map);
}

/* role.c: the writer role's lock, and the writers' list for fork */
void speculo__role_register(speculo_writer *w);
void speculo__role_unregister(speculo_writer *w);
int speculo__role_openat(speculo_writer *w, bool new_file, int dirfd, const char *path, int flags,
                         mode_t mode);
int speculo__role_map(int fd, const struct stat *st, bool raw, struct seg_map *m);
void speculo__role_close(speculo_writer *w, bool new_file);
void speculo__role_switch(speculo_writer *w);

/* writer.c: make the file of a new generation (create or collect) */
struct new_file {
    uint64_t capacity;
    uint64_t allocate; /* bytes from the start allocated before it is linked */
    mode_t mode;
    uid_t uid;
    gid_t gid;
    char tmp[SPECULO_SEGMENT_NAME_MAX + 32]; /* its temporary name, or "" */
};
int speculo__file_make(speculo_writer *w, int dirfd, const char *kind, struct new_file *f,
                       struct seg_map *m);
void speculo__file_abandon(speculo_writer *w, int dirfd, struct new_file *f, struct seg_map *m);
int speculo__file_link(speculo_writer *w, int dirfd, struct new_file *f, bool replace);

/* gc.c */
int speculo__writer_collect(speculo_writer *w, uint64_t need);
/* writer.c */
int speculo__writer_prefault(speculo_writer *w, uint64_t end);
/* What a file's header counts of its records (see header_publish_totals). */
struct seg_totals {
    uint64_t committed_end, last_id, dead_bytes, names_used, obsolete_count, nrecords;
    int64_t last_commit_ns;
};
void speculo__header_publish_totals(struct seg_header *h, const struct seg_totals *t);
void speculo__writer_publish_totals(speculo_writer *w);
int64_t speculo__writer_last_commit_ns(const speculo_writer *w);
int speculo__writer_find(const speculo_writer *w, uint64_t id, struct rec_view *v);

#endif
