/*
 * libFuzzer target: the input bytes are a name (cut at the first NUL).
 *
 * The name checks are compared with the naming rules (speculo(3)) written out
 * plainly here (segment: 1-200 bytes of [A-Za-z0-9_.-], not starting with
 * '.'; chunk: 1-255 bytes of the same, starting with a letter or '_'; a
 * bad byte is -EINVAL whatever the length, a good name too long is
 * -ENAMETOOLONG). Then every call that takes a name gets it: the segment
 * calls (reader_open, writer_open, describe, remove) must give the same
 * verdict and create nothing when it is bad; the chunk calls (put, get)
 * on a segment holding a few names must agree with the checks, and get()
 * must find exactly the names that were put.
 *
 * Build and run: make fuzz FUZZ_SECONDS=60 (see the Makefile).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "speculo.h"
#include "t_util.h"

#define FN_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_names: %s:%d: invariant failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                                    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static const char *fn_dir; /* t_private_dir() */
static speculo_writer *fn_w;
static speculo_reader *fn_r;
static const char *const fn_put[] = {"a", "Ab", "x.y-z_0", "_"};

static int ref_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static int ref_check(const char *n, size_t max, int chunk)
{
    size_t len = strlen(n);
    if (len == 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!ref_char((unsigned char)n[i]))
            return -EINVAL;
    if (len > max)
        return -ENAMETOOLONG;
    unsigned char c = (unsigned char)n[0];
    if (!chunk && c == '.')
        return -EINVAL;
    if (chunk && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'))
        return -EINVAL;
    return 0;
}

static void fn_atexit(void)
{
    speculo_reader_close(fn_r);
    speculo_writer_close(fn_w);
}

static int fn_init(void)
{
    /* the directory first: its removal at exit comes after fn_atexit() */
    fn_dir = t_private_dir("fuzznames");
    if (!fn_dir)
        return -1;
    atexit(fn_atexit);
    struct speculo_writer_options o = {.capacity = 64 << 10};
    FN_ASSERT(speculo_writer_open("base", &o, &fn_w) == 0);
    for (size_t i = 0; i < sizeof fn_put / sizeof fn_put[0]; i++) {
        struct speculo_commit_options co = {.name = fn_put[i]};
        FN_ASSERT(speculo_writer_put(fn_w, fn_put[i], strlen(fn_put[i]), &co, NULL) == 0);
    }
    FN_ASSERT(speculo_reader_open("base", &fn_r) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fn_dir && fn_init() < 0)
        return 0;
    char *n = malloc(size + 1);
    FN_ASSERT(n);
    memcpy(n, data, size);
    n[size] = '\0';

    /* segment names */
    int seg = ref_check(n, SPECULO_SEGMENT_NAME_MAX, 0);
    FN_ASSERT(speculo_segment_name_check(n) == seg);
    int before = t_dir_count(fn_dir);
    speculo_reader *r = NULL;
    int rc = speculo_reader_open(n, &r);
    FN_ASSERT(seg < 0 ? rc == seg : (rc == 0 || rc == -ENOENT));
    speculo_reader_close(r);
    char buf[256];
    rc = speculo_segment_describe(n, buf, sizeof buf);
    FN_ASSERT(seg < 0 ? rc == seg : (rc > 0 || rc == -ENOENT));
    if (seg < 0) {
        speculo_writer *w = NULL;
        FN_ASSERT(speculo_writer_open(n, NULL, &w) == seg && w == NULL);
        FN_ASSERT(speculo_segment_remove(n, SPECULO_REMOVE_FORCE) == seg);
        FN_ASSERT(t_dir_count(fn_dir) == before);
    }

    /* chunk names */
    int chunk = ref_check(n, SPECULO_CHUNK_NAME_MAX, 1);
    FN_ASSERT(speculo_chunk_name_check(n) == chunk);
    speculo_chunk c;
    rc = speculo_reader_get(fn_r, n, &c);
    int known = 0;
    for (size_t i = 0; i < sizeof fn_put / sizeof fn_put[0]; i++)
        known |= strcmp(n, fn_put[i]) == 0;
    if (chunk < 0)
        FN_ASSERT(rc == chunk);
    else if (known)
        FN_ASSERT(rc == 0 && c.name && strcmp(c.name, n) == 0 && c.size == strlen(n) &&
                  memcmp(c.data, n, c.size) == 0);
    else
        FN_ASSERT(rc == -ENOENT);
    if (chunk < 0) {
        struct speculo_commit_options co = {.name = n};
        uint64_t id = 0;
        FN_ASSERT(speculo_writer_put(fn_w, "x", 1, &co, &id) == chunk && id == 0);
    }
    free(n);
    return 0;
}
