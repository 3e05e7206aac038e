/*
 * Every record still in a file, live or dead, with its state: the
 * debugging view (speculo ls --all, speculofs's .all, mirrors looking for
 * explicit obsoletions). Nothing here is on a hot path.
 */
#include <errno.h>
#include <string.h>

#include "reader.h"

static int fill_record(speculo_reader *r, const struct rec_view *v, struct speculo_record *rec)
{
    uint64_t by;
    struct speculo_record out;
    memset(&out, 0, sizeof out);
    int rc = speculo__fill_chunk(r, v, &out.chunk);
    if (rc < 0)
        return rc;
    switch (speculo__rec_state(v, speculo__clock_wall_ns(), &by)) {
    case REC_LIVE:
        out.state = SPECULO_STATE_LIVE;
        break;
    case REC_EXPIRED:
        out.state = SPECULO_STATE_EXPIRED;
        break;
    case REC_OBSOLETE:
        out.state = by == OBSOLETE_EXPLICIT ? SPECULO_STATE_OBSOLETE : SPECULO_STATE_REPLACED;
        out.obsoleted_by = by == OBSOLETE_EXPLICIT ? 0 : by;
        break;
    }
    out.replaces = v->replaces;
    out.offset = v->off;
    out.length = v->len;
    *rec = out;
    return 0;
}

int speculo_reader_walk(speculo_reader *r, uint64_t after_id, struct speculo_record *rec)
{
    if (!r || !rec)
        return -EINVAL;
    int rc = speculo__reader_refresh(r);
    if (rc < 0)
        return rc;
    if (after_id >= UINT64_MAX / 2)
        return -ENOENT;
    struct rec_view v = {0};
    rc = speculo__find_id(&r->map, after_id + 1, &v);
    if (rc == -ENOENT && v.h && v.id > after_id)
        rc = 0; /* the first record past a gap in the ids (collected ones) */
    if (rc < 0)
        return rc;
    return fill_record(r, &v, rec);
}

int speculo_reader_get_record(speculo_reader *r, uint64_t id, struct speculo_record *rec)
{
    if (!r || !rec)
        return -EINVAL;
    int rc = speculo__reader_refresh(r);
    if (rc < 0)
        return rc;
    struct rec_view v;
    rc = speculo__find_id(&r->map, id, &v);
    return rc < 0 ? rc : fill_record(r, &v, rec);
}
