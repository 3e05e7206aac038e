/*
 * Reader calls for speculo's own programs (speculofs), not part of the
 * public API: they are not exported from the shared library
 * (-fvisibility=hidden) and link from the static archive only.
 */
#ifndef SPECULO_READER_SFS_H
#define SPECULO_READER_SFS_H

#include <stdint.h>

#include "speculo.h"

/*
 * speculo_reader_get_id(), but a named chunk obsoleted by a newer version
 * of the same name (not by speculo_writer_obsolete(), not by a chunk of
 * another name or none), unexpired and still in the file the reader maps,
 * is returned too, with the same validity as any chunk returned. For
 * speculofs's OPEN of the inode its LOOKUP returned within the same
 * open(2): the version was the latest then, and the open takes effect at
 * that LOOKUP. An unnamed chunk must be live. 0, -ENOENT, or as
 * speculo_reader_get_id().
 */
int reader_get_id_superseded(speculo_reader *r, uint64_t id, speculo_chunk *chunk);

#endif
