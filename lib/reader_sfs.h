/*
 * Reader calls for speculo's own programs (speculofs), not part of the
 * public API: they are not exported from the shared library
 * (-fvisibility=hidden) and link from the static archive only.
 */
#ifndef SPECULO_READER_SFS_H
#define SPECULO_READER_SFS_H

#include <stdint.h>
#include <sys/types.h>

#include "speculo.h"

/* Flags of reader_get_version(). */
enum {
    /*
     * Also a named chunk obsoleted by a newer version of the same name
     * (not by speculo_writer_obsolete(), not by a chunk of another name or
     * none), if unexpired: for speculofs's OPEN of the inode its LOOKUP
     * returned within the same open(2), when that version was the latest.
     */
    READER_SUPERSEDED = 1,
    /* In the file the reader maps now: the name is not looked at again, so
     * a switched segment is not followed. A reader only ever called so
     * stays on one file, which speculofs keeps for opens to come. */
    READER_HERE = 2,
};

/*
 * speculo_reader_get_id(), with @flags, and one more answer: -ENOENT when
 * no record with this id is in the file (never committed, or dropped by
 * the collector), -ESTALE when it is there but not live (nor, with
 * READER_SUPERSEDED, a superseded version). The chunk has the same
 * validity as any chunk returned.
 */
int reader_get_version(speculo_reader *r, uint64_t id, unsigned flags, speculo_chunk *chunk);

/* The file a reader maps now. */
struct reader_file_id {
    dev_t dev;
    ino_t ino;
    uint64_t size; /* of the mapping */
};
void reader_file(const speculo_reader *r, struct reader_file_id *f);

#endif
