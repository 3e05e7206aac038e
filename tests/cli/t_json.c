/*
 * A strict JSON validator (RFC 8259 grammar), enough to tell that
 * `speculo ls --json` prints one valid document, and a walk over the
 * members of an object or the elements of an array that gives each value's
 * text (values are not built).
 */
#include <string.h>

#include "t_proc.h"

struct json {
    const char *p, *end;
    int depth;
};

static bool value(struct json *j);

static void skip_ws(struct json *j)
{
    while (j->p < j->end && strchr(" \t\r\n", *j->p) && *j->p)
        j->p++;
}

static bool literal(struct json *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool is_digit(struct json *j)
{
    return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}

static bool digits(struct json *j)
{
    if (!is_digit(j))
        return false;
    while (is_digit(j))
        j->p++;
    return true;
}

static bool number(struct json *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!digits(j))
        return false;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!digits(j))
            return false;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digits(j))
            return false;
    }
    return true;
}

static bool escape(struct json *j)
{
    if (j->p >= j->end)
        return false;
    char c = *j->p++;
    if (strchr("\"\\/bfnrt", c) && c)
        return true;
    if (c != 'u')
        return false;
    for (int i = 0; i < 4; i++, j->p++)
        if (j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p) || !*j->p)
            return false;
    return true;
}

/* Strings: no raw control characters; bytes >= 0x80 must form UTF-8. */
static bool string(struct json *j)
{
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c == '\\' && !escape(j))
            return false;
        if (c >= 0x80) {
            int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : -1;
            if (more < 0 || c > 0xf4)
                return false;
            for (; more > 0; more--, j->p++)
                if (j->p >= j->end || ((unsigned char)*j->p & 0xc0) != 0x80)
                    return false;
        }
    }
    return false;
}

/* Elements separated by commas up to `close`; `member` for objects. */
static bool sequence(struct json *j, char close, bool member)
{
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return true;
    }
    for (;;) {
        skip_ws(j);
        if (member) {
            if (!string(j))
                return false;
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return false;
        }
        if (!value(j))
            return false;
        skip_ws(j);
        if (j->p >= j->end)
            return false;
        char c = *j->p++;
        if (c == close)
            return true;
        if (c != ',')
            return false;
    }
}

static bool value(struct json *j)
{
    skip_ws(j);
    if (j->p >= j->end || ++j->depth > 64)
        return false;
    bool ok;
    switch (*j->p) {
    case '{': ok = sequence(j, '}', true); break;
    case '[': ok = sequence(j, ']', false); break;
    case '"': ok = string(j); break;
    case 't': ok = literal(j, "true"); break;
    case 'f': ok = literal(j, "false"); break;
    case 'n': ok = literal(j, "null"); break;
    default: ok = number(j); break;
    }
    j->depth--;
    return ok;
}

bool tc_json_valid(const char *s, size_t len)
{
    struct json j = {s, s + len, 0};
    if (!value(&j))
        return false;
    skip_ws(&j);
    return j.p == j.end;
}

/* The top-level elements of the array (member false) or the members of
 * the object (member true) that `s` holds; -1 when s is not one. */
static int walk(const char *s, size_t len, bool member, struct tc_json_span *keys,
                struct tc_json_span *values, int max)
{
    struct json j = {s, s + len, 0};
    int n = 0;
    skip_ws(&j);
    if (j.p >= j.end || *j.p != (member ? '{' : '['))
        return -1;
    j.p++;
    skip_ws(&j);
    if (j.p < j.end && *j.p == (member ? '}' : ']'))
        return 0;
    for (;;) {
        skip_ws(&j);
        if (member) {
            const char *k = j.p;
            if (!string(&j))
                return -1;
            if (n < max)
                keys[n] = (struct tc_json_span){k + 1, (size_t)(j.p - k) - 2};
            skip_ws(&j);
            if (j.p >= j.end || *j.p++ != ':')
                return -1;
        }
        skip_ws(&j);
        const char *v = j.p;
        if (!value(&j))
            return -1;
        if (n < max)
            values[n] = (struct tc_json_span){v, (size_t)(j.p - v)};
        n++;
        skip_ws(&j);
        if (j.p >= j.end)
            return -1;
        char c = *j.p++;
        if (c == (member ? '}' : ']'))
            return n;
        if (c != ',')
            return -1;
    }
}

int tc_json_members(const char *s, size_t len, struct tc_json_span *keys,
                    struct tc_json_span *values, int max)
{
    return walk(s, len, true, keys, values, max);
}

int tc_json_elements(const char *s, size_t len, struct tc_json_span *values, int max)
{
    return walk(s, len, false, NULL, values, max);
}

bool tc_json_get(const char *s, size_t len, const char *key, struct tc_json_span *value)
{
    struct tc_json_span keys[64], values[64];
    int n = tc_json_members(s, len, keys, values, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (keys[i].len == strlen(key) && !memcmp(keys[i].p, key, keys[i].len)) {
            *value = values[i];
            return true;
        }
    return false;
}

bool tc_json_is(const struct tc_json_span *v, const char *text)
{
    return v->len == strlen(text) && !memcmp(v->p, text, v->len);
}
