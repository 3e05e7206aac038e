/* The reader's private state, shared by reader.c and wait.c. */
#ifndef SPECULO_READER_H
#define SPECULO_READER_H

#include "internal.h"

struct speculo_reader {
    char segment[SPECULO_SEGMENT_NAME_MAX + 1];
    struct ns_dir dir;
    unsigned flags; /* SPECULO_READER_PINNED */
    struct seg_map map;
    speculo_mapping *held; /* map as shared with speculo_reader_hold()'s, or NULL */
    uint64_t pos; /* offset of the next record to look at: a record boundary in the record area */
    uint64_t last_id; /* id of the last chunk returned (or sought past) */
    uint64_t scan_id; /* id of the record just before pos; 0 at the start */
    /* next() prefetches payload lines while pos is below ahead_end (far
     * behind the writer); past it, it looks at the writer's end again
     * after ahead_check more records (see prefetch_payload()) */
    uint64_t ahead_end;
    uint32_t ahead_check;
    struct speculo_segment_ident ident; /* of the file mapped, taken when mapped */
    bool gone;                          /* the segment was removed */
    /* mapped a file that does not follow ours, or found the segment gone,
     * since the last speculo_reader_watch() report */
    bool moved;
    uint64_t obs_seen;       /* the file's obsolete count at that report (or 0) */
    uint64_t obs_pending;    /* obsoletions in files left since that report */
    struct seg_header *whdr; /* writable map of the header page, for waiting */
    bool wait_fallback;      /* no write access: wait by sleeping */
    bool wait_unarmed;       /* registered, but no barrier (wait.c): sleep in slices */
    char name_buf[SPECULO_CHUNK_NAME_MAX + 1]; /* the returned chunk's name */
    /* The name get() looked up last and its slot in the mapped file (a
     * slot keeps its name for the file's lifetime): looked up again, the
     * name needs no check, hash or probe. NULL when the mapping changes. */
    struct name_slot *get_slot;
    size_t get_len;
    char get_name[SPECULO_CHUNK_NAME_MAX + 1];
};

static inline struct seg_header *r_header(const speculo_reader *r)
{
    return map_header(&r->map);
}

/* The count of obsolete records the writer published for this file. */
static inline uint64_t r_obsolete_count(const speculo_reader *r)
{
    /* observes: the count, stored with release after the marks it counts */
    return atomic_load_explicit(&r_header(r)->obsolete_count, memory_order_acquire);
}

/* Has the file been switched or removed (the collector's or remover's
 * mark)? A pinned reader never leaves its file. */
static inline bool r_superseded(const speculo_reader *r)
{
    /* observes: the mark, set before the new file is renamed in */
    return atomic_load_explicit(&r_header(r)->superseded, memory_order_acquire) != 0;
}

/* reader.c: look at the name again. 1 switched to a new file, 0 the name
 * still holds ours, -ENOENT gone, or another error. */
int speculo__reader_switch(speculo_reader *r);
int speculo__reader_refresh_switch(speculo_reader *r);
/* Before a lookup: move to the newest file if the segment was switched or
 * removed (a pinned reader stays where it is); 0, or an error. */
static inline int speculo__reader_refresh(speculo_reader *r)
{
    if ((r->flags & SPECULO_READER_PINNED) || (!r->gone && !r_superseded(r)))
        return 0;
    return speculo__reader_refresh_switch(r);
}
/* reader.c: the record's name, copied into the reader and checked. */
const char *speculo__copy_name(speculo_reader *r, const struct rec_view *v);
/* Fill a chunk from a checked record whose name is @name (a checked copy). */
static inline void speculo__chunk_set(speculo_chunk *c, const struct rec_view *v, const char *name)
{
    c->id = v->id;
    c->name = name;
    c->data = (const uint8_t *)v->h + REC_HEADER_SIZE;
    c->size = v->size;
    c->committed_ns = v->committed_ns;
    c->expires_ns = v->expires_ns;
}
/* Fill a chunk from a checked record (its name copied into the reader);
 * 0 or -EBADMSG. */
static inline int speculo__fill_chunk(speculo_reader *r, const struct rec_view *v, speculo_chunk *c)
{
    const char *name = NULL;
    if (v->name && !(name = speculo__copy_name(r, v)))
        return -EBADMSG;
    speculo__chunk_set(c, v, name);
    return 0;
}
/* wait.c: drop the header mapping used for waiting (at a switch, close). */
void speculo__reader_drop_wait(speculo_reader *r);

#endif
