/*
 * What `speculo info` says of a segment, typed: the listing of the segment
 * directory, the library's text, the numeric keys of that text with their
 * meaning, and the JSON form of `info --json` and `segments --json`.
 *
 * The JSON of a readable segment is built from speculo_reader_info()'s
 * struct, under the key names of the text; the text is only parsed for a
 * segment that cannot be read, whose description (`status: error`) has
 * no struct behind it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define FIELD(f) offsetof(struct speculo_segment_info, f)

/* In the order of `speculo info`'s lines. */
const struct info_key info_keys[] = {
    {"format_version", FIELD(format_version), INFO_U32, false,
     "Format version of the segment file."},
    {"generation", FIELD(generation), INFO_U64, true,
     "Generation of the segment file: 1 when created, +1 at every garbage-collection switch."},
    {"capacity", FIELD(capacity), INFO_U64, false, "Size of the segment file, in bytes."},
    {"data_capacity", FIELD(data_capacity), INFO_U64, false,
     "Bytes of the segment file available to chunk records."},
    {"bytes_used", FIELD(bytes_used), INFO_U64, false,
     "Bytes taken by committed records (payload, record header and padding)."},
    {"dead_bytes", FIELD(dead_bytes), INFO_U64, false,
     "Bytes of obsoleted records, freed at the next collection."},
    {"live_chunks", FIELD(live_chunks), INFO_U64, false, "Chunks neither expired nor obsoleted."},
    {"expired_chunks", FIELD(expired_chunks), INFO_U64, false,
     "Chunks expired and not obsoleted, still in the file."},
    {"obsolete_chunks", FIELD(obsolete_chunks), INFO_U64, false,
     "Chunks obsoleted by a newer copy or explicitly, still in the file."},
    {"named_chunks", FIELD(named_chunks), INFO_U64, false, "Live chunks that have a name."},
    {"first_id", FIELD(first_id), INFO_U64, false,
     "Id of the oldest record in the segment file (0: none)."},
    {"last_id", FIELD(last_id), INFO_U64, true,
     "Id of the newest committed chunk: the number of chunks ever committed to the segment."},
    {"writer_pid", FIELD(writer_pid), INFO_I64, false,
     "Pid of the process holding the writer role (0: none)."},
    {"writer_alive", FIELD(writer_alive), INFO_BOOL, false,
     "1 when the writer holding the role is alive, 0 otherwise."},
};
const size_t info_key_count = sizeof info_keys / sizeof info_keys[0];

uint64_t info_value(const struct info_key *k, const struct speculo_segment_info *s)
{
    const char *p = (const char *)s + k->offset;
    switch (k->type) {
    case INFO_U32:
        return *(const uint32_t *)(const void *)p;
    case INFO_U64:
        return *(const uint64_t *)(const void *)p;
    case INFO_I64: {
        int64_t v = *(const int64_t *)(const void *)p;
        return v > 0 ? (uint64_t)v : 0;
    }
    case INFO_BOOL:
        return *(const int *)(const void *)p != 0;
    }
    return 0;
}

void format_writer(const struct speculo_segment_info *s, char *buf, size_t size)
{
    if (s->writer_pid > 0)
        snprintf(buf, size, "%lld/%s", (long long)s->writer_pid,
                 s->writer_alive ? "alive" : "dead");
    else
        snprintf(buf, size, "-");
}

/* ---- the segment directory ---- */

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A segment is a regular file with a valid segment name; the rest (the
 * library's dot files, strays) is not shown. */
static bool is_segment(DIR *d, const struct dirent *e)
{
    if (speculo_segment_name_check(e->d_name) < 0)
        return false;
    if (e->d_type == DT_REG)
        return true;
    struct stat st;
    return e->d_type == DT_UNKNOWN && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(st.st_mode);
}

static int list_dir(const char *dir, char ***names, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_segment(d, e))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **bigger = realloc(v, cap * sizeof *v);
            if (!bigger) {
                rc = -ENOMEM;
                break;
            }
            v = bigger;
        }
        if (!(v[n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    *names = v;
    *count = n;
    return rc;
}

int list_segments(char ***names, size_t *count)
{
    char dir[PATH_MAX];
    bool missing;
    *names = NULL;
    *count = 0;
    int rc = speculo_segment_dir(dir, sizeof dir);
    if (rc < 0)
        return fail("segment directory", "%s", speculo_strerror(rc));
    int status = check_segment_dir(dir, &missing);
    if (status != EXIT_OK || missing)
        return status;
    rc = list_dir(dir, names, count);
    if (rc < 0) {
        free_names(*names, *count);
        *names = NULL;
        *count = 0;
        return fail(dir, "%s", strerror(-rc));
    }
    if (*count > 1)
        qsort(*names, *count, sizeof **names, compare_names);
    return EXIT_OK;
}

void free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* ---- one segment ---- */

int describe_segment(const char *segment, char **text)
{
    size_t size = 4096;
    for (;;) {
        char *buf = malloc(size);
        if (!buf)
            return -ENOMEM;
        int n = speculo_segment_describe(segment, buf, size);
        if (n >= 0 && (size_t)n < size) {
            *text = buf;
            return n;
        }
        free(buf);
        if (n < 0)
            return n;
        size = (size_t)n + 1;
    }
}

int seg_report_load(const char *segment, struct seg_report *rep)
{
    memset(rep, 0, sizeof *rep);
    rep->segment = segment;
    speculo_reader *r;
    int rc = speculo_reader_open(segment, &r);
    if (rc == 0) {
        rc = speculo_reader_info(r, &rep->info);
        speculo_reader_close(r);
        if (rc == 0) {
            rep->ok = true;
            return 0;
        }
    }
    if (rc == -ENOENT)
        return rc;
    /* Not readable as a segment: the library says what is wrong. */
    rc = describe_segment(segment, &rep->text);
    return rc < 0 ? rc : 0;
}

void seg_report_free(struct seg_report *rep)
{
    free(rep->text);
    rep->text = NULL;
}

/* The value of `key` in a description's text, copied into buf; NULL when
 * the text has no such line. */
const char *seg_report_text_value(const struct seg_report *rep, const char *key, char *buf,
                                  size_t size)
{
    size_t klen = strlen(key);
    for (const char *line = rep->text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > klen + 1 && !strncmp(line, key, klen) && !strncmp(line + klen, ": ", 2)) {
            snprintf(buf, size, "%.*s", (int)(len - klen - 2), line + klen + 2);
            return buf;
        }
        line = end ? end + 1 : line + len;
    }
    return NULL;
}

/* ---- JSON ---- */

/* A member of a pretty-printed object: `,\n` between members. */
struct json_members {
    FILE *out;
    const char *indent;
    bool any;
};

static void member(struct json_members *m, const char *key)
{
    fprintf(m->out, "%s\n%s  ", m->any ? "," : "", m->indent);
    json_string(m->out, key);
    fputs(": ", m->out);
    m->any = true;
}

static void member_time(struct json_members *m, const char *key, int64_t ns)
{
    char text[48], key_ns[64];
    member(m, key);
    if (ns > 0) {
        format_time_ns(ns, text, sizeof text);
        json_string(m->out, text);
    } else {
        fputs("null", m->out);
    }
    snprintf(key_ns, sizeof key_ns, "%s_ns", key);
    member(m, key_ns);
    if (ns > 0)
        fprintf(m->out, "%lld", (long long)ns);
    else
        fputs("null", m->out);
}

static void members_of_info(struct json_members *m, const struct speculo_segment_info *s)
{
    member(m, "status");
    json_string(m->out, "ok");
    for (size_t i = 0; i < info_key_count; i++) {
        const struct info_key *k = &info_keys[i];
        member(m, k->key);
        uint64_t v = info_value(k, s);
        if (k->type == INFO_BOOL)
            fputs(v ? "true" : "false", m->out);
        else
            fprintf(m->out, "%llu", (unsigned long long)v);
    }
    member_time(m, "created", s->created_ns);
    member_time(m, "last_commit", s->last_commit_ns);
}

/* A value of the text as JSON: "-" is null, yes/no of writer_alive a
 * boolean, a number a number (also one followed by a remark in
 * parentheses, which is dropped: "2 (this library reads 1)"), anything
 * else a string. */
static void text_value(FILE *out, const char *key, const char *value)
{
    size_t digits = strspn(value, "0123456789");
    bool number = digits > 0 && (digits == 1 || value[0] != '0') &&
                  (value[digits] == '\0' || !strncmp(value + digits, " (", 2));
    if (!strcmp(value, "-"))
        fputs("null", out);
    else if (!strcmp(key, "writer_alive") && (!strcmp(value, "yes") || !strcmp(value, "no")))
        fputs(value[0] == 'y' ? "true" : "false", out);
    else if (number)
        fprintf(out, "%.*s", (int)digits, value);
    else
        json_string(out, value);
}

static void members_of_text(struct json_members *m, const char *text)
{
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *colon = memchr(line, ':', len);
        if (colon && colon + 1 < line + len && colon[1] == ' ') {
            char *key = strndup(line, (size_t)(colon - line));
            char *value = strndup(colon + 2, len - (size_t)(colon - line) - 2);
            if (key && value && strcmp(key, "segment") != 0) {
                member(m, key);
                text_value(m->out, key, value);
            }
            free(key);
            free(value);
        }
        line = end ? end + 1 : line + len;
    }
}

void seg_report_json(FILE *out, const struct seg_report *rep, const char *indent)
{
    struct json_members m = {out, indent, false};
    fputc('{', out);
    member(&m, "segment");
    json_string(out, rep->segment);
    if (rep->ok)
        members_of_info(&m, &rep->info);
    else
        members_of_text(&m, rep->text);
    fprintf(out, "\n%s}", indent);
}
