/* The writer's private state, shared by writer.c and gc.c. */
#ifndef SPECULO_WRITER_H
#define SPECULO_WRITER_H

#include "internal.h"

struct speculo_writer {
    char segment[SPECULO_SEGMENT_NAME_MAX + 1];
    struct seg_map map;
    uint64_t token;    /* our owner token */
    uint64_t tail;     /* offset of the next record */
    uint64_t nrecords; /* records in this file */
    uint64_t next_id;
    uint64_t names_used;
    uint64_t dead_bytes; /* bytes of obsoleted records */
    uint64_t obsolete_count;
    uint64_t faulted_end;   /* pages before this are populated */
    bool populate_fallback; /* MADV_POPULATE_WRITE unsupported: touch pages */
    bool reserved;          /* an alloc is waiting for its commit */
    uint64_t res_size;
    unsigned gc_dead_percent;
    uint64_t gc_min_dead;
    uint64_t base_capacity;
};

static inline struct seg_header *w_header(const speculo_writer *w)
{
    return map_header(&w->map);
}

/* gc.c */
int writer_collect(speculo_writer *w, uint64_t need);
/* writer.c */
int writer_prefault(speculo_writer *w, uint64_t end);
/* What a file's header counts of its records (see header_publish_totals). */
struct seg_totals {
    uint64_t committed_end, last_id, dead_bytes, names_used, obsolete_count, nrecords;
};
void header_publish_totals(struct seg_header *h, const struct seg_totals *t);
void writer_publish_totals(speculo_writer *w);
int writer_find(const speculo_writer *w, uint64_t id, struct rec_view *v);

#endif
