/*
 * Names: which segment and chunk names are valid. Chunk names are also
 * file names in speculofs, and records carry them: the check runs on
 * names read from files too (format.c).
 */
#include <errno.h>

#include "internal.h"

/* [A-Za-z0-9_.-] as a bitmap of the 128 ASCII codes: a name is checked up
 * to three times per speculo_reader_get(), so this is on the lookup path.
 * Bits 45 '-', 46 '.', 48-57 '0'-'9'; then 65-90 'A'-'Z', 95 '_', 97-122. */
static bool name_char_ok(char c)
{
    static const uint64_t ok[2] = {UINT64_C(0x03ff600000000000), UINT64_C(0x07fffffe87fffffe)};
    unsigned char u = (unsigned char)c;
    return u < 128 && ((ok[u >> 6] >> (u & 63)) & 1);
}

/* Checks all the bytes (so "a/b" is -EINVAL whatever its length), then the
 * length, as a path lookup would. */
static int check_name(const char *name, size_t max)
{
    if (!name || !*name)
        return -EINVAL;
    size_t n = 0;
    for (; name[n]; n++) {
        if (!name_char_ok(name[n]))
            return -EINVAL;
    }
    return n > max ? -ENAMETOOLONG : 0;
}

int speculo_segment_name_check(const char *segment)
{
    int rc = check_name(segment, SPECULO_SEGMENT_NAME_MAX);
    if (rc == 0 && segment[0] == '.')
        return -EINVAL;
    return rc;
}

int speculo_chunk_name_check(const char *name)
{
    int rc = check_name(name, SPECULO_CHUNK_NAME_MAX);
    if (rc == 0 && !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
                     name[0] == '_'))
        return -EINVAL;
    return rc;
}
