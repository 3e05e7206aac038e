#include <errno.h>
#include <limits.h>
#include <string.h>

#include "internal.h"

/* Messages for the codes whose meaning is fixed by the library; the rest
 * get the C library's description (strerrordesc_np is thread-safe and
 * returns static text). */
const char *speculo_strerror(int err)
{
    if (err == INT_MIN)
        return "unknown error";
    if (err < 0)
        err = -err;
    /* one line a code: a table */
    /* clang-format off */
    switch (err) {
    case 0: return "success";
    case EINVAL: return "invalid name or argument";
    case ENAMETOOLONG: return "name too long";
    case ENOENT: return "no such segment or chunk";
    case EBUSY: return "segment has another live writer";
    case EPERM: return "unsafe segment directory or file (symlink, not regular, writable by others, or not owned)";
    case EBADMSG: return "segment file is corrupt or not a segment";
    case EPROTO: return "segment has another format version";
    case EFBIG: return "chunk too large";
    case ENOMEM: return "out of memory (or shared memory space)";
    case EAGAIN: return "nothing new yet";
    case ETIMEDOUT: return "timed out";
    default: {
        const char *s = strerrordesc_np(err);
        return s ? s : "unknown error";
    }
    }
    /* clang-format on */
}
