/*
 * Names: which segment and chunk names are valid. Chunk names are also
 * file names in speculofs, and records carry them: the check runs on
 * names read from files too (when a reader hands one out, and at a
 * takeover).
 */
#include <errno.h>
#include <sys/types.h>

#include "internal.h"

/* [A-Za-z0-9_.-]: a name is checked on every named commit and lookup, so
 * this is on their paths, one table load per character. */
static const bool name_chars[256] = {
    ['-'] = true, ['.'] = true, ['_'] = true, ['0'] = true, ['1'] = true, ['2'] = true,
    ['3'] = true, ['4'] = true, ['5'] = true, ['6'] = true, ['7'] = true, ['8'] = true,
    ['9'] = true, ['A'] = true, ['B'] = true, ['C'] = true, ['D'] = true, ['E'] = true,
    ['F'] = true, ['G'] = true, ['H'] = true, ['I'] = true, ['J'] = true, ['K'] = true,
    ['L'] = true, ['M'] = true, ['N'] = true, ['O'] = true, ['P'] = true, ['Q'] = true,
    ['R'] = true, ['S'] = true, ['T'] = true, ['U'] = true, ['V'] = true, ['W'] = true,
    ['X'] = true, ['Y'] = true, ['Z'] = true, ['a'] = true, ['b'] = true, ['c'] = true,
    ['d'] = true, ['e'] = true, ['f'] = true, ['g'] = true, ['h'] = true, ['i'] = true,
    ['j'] = true, ['k'] = true, ['l'] = true, ['m'] = true, ['n'] = true, ['o'] = true,
    ['p'] = true, ['q'] = true, ['r'] = true, ['s'] = true, ['t'] = true, ['u'] = true,
    ['v'] = true, ['w'] = true, ['x'] = true, ['y'] = true, ['z'] = true,
};

static bool name_char_ok(char c)
{
    return name_chars[(unsigned char)c];
}

/* Checks all the bytes (so "a/b" is -EINVAL whatever its length), then the
 * length, as a path lookup would. The length, or -errno. */
static ssize_t check_name(const char *name, size_t max)
{
    if (!name || !*name)
        return -EINVAL;
    size_t n = 0;
    for (; name[n]; n++) {
        if (!name_char_ok(name[n]))
            return -EINVAL;
    }
    return n > max ? -ENAMETOOLONG : (ssize_t)n;
}

int speculo_segment_name_check(const char *segment)
{
    ssize_t n = check_name(segment, SPECULO_SEGMENT_NAME_MAX);
    if (n < 0)
        return (int)n;
    return segment[0] == '.' ? -EINVAL : 0;
}

static bool chunk_name_start_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* The length of a valid chunk name, found in the pass that checks it
 * (commit and get need both), or the error of speculo_chunk_name_check(). */
ssize_t speculo__chunk_name_len(const char *name)
{
    ssize_t n = check_name(name, SPECULO_CHUNK_NAME_MAX);
    if (n >= 0 && !chunk_name_start_ok(name[0]))
        return -EINVAL;
    return n;
}

int speculo_chunk_name_check(const char *name)
{
    ssize_t n = speculo__chunk_name_len(name);
    return n < 0 ? (int)n : 0;
}

/* Are these @len bytes (read from a file) a valid chunk name? A NUL among
 * them is not a name character, so this also says strlen(name) == len. */
bool speculo__chunk_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > SPECULO_CHUNK_NAME_MAX || !chunk_name_start_ok(name[0]))
        return false;
    for (size_t i = 1; i < len; i++) {
        if (!name_char_ok(name[i]))
            return false;
    }
    return true;
}
