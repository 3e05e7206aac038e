/*
 * check_fuzz: replays inputs through a libFuzzer target's entry point,
 * built with the ordinary compiler and without libFuzzer, so that every
 * input that once made a target fail stays a test of `make check`.
 *
 *   tests/check_fuzz [FILE|DIR]...          default: tests/fuzz/regress
 *   tests/check_fuzz_reader [FILE|DIR]...   default: tests/fuzz/regress-reader
 *
 * Linked with fuzz_fs.c (check_fuzz) or fuzz_reader.c (check_fuzz_reader,
 * built with REPLAY_DIR naming its directory), it runs each input through
 * the same path as the fuzzer does; a failed invariant aborts, which fails
 * the test. Each input is named before it runs, so that the log says
 * which one failed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef REPLAY_DIR
#define REPLAY_DIR "tests/fuzz/regress"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t size = 0, cap = 0, n;

    if (f == NULL) {
        fprintf(stderr, "check_fuzz: %s: %s\n", path, strerror(errno));
        return -1;
    }
    do {
        if (size == cap) {
            uint8_t *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
        }
        n = fread(buf + size, 1, cap - size, f);
        size += n;
    } while (n > 0);
    fclose(f);
    printf("check_fuzz: %s (%zu bytes)\n", path, size);
    fflush(stdout);
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of @dir in name order (dot files left out): the order of the
 * log does not depend on the filesystem's. */
static int replay_dir(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "check_fuzz: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    for (struct dirent *e; rc == 0 && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **nn = realloc(names, (cap = cap ? 2 * cap : 256) * sizeof *names);
            if (nn == NULL) {
                rc = -1;
                break;
            }
            names = nn;
        }
        if ((names[n] = strdup(e->d_name)) == NULL)
            rc = -1;
        else
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        if (rc == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            rc = replay_file(path);
            ++*count;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    static char *dflt[] = {NULL, REPLAY_DIR};
    int count = 0;

    if (argc < 2) {
        argv = dflt;
        argc = 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        int rc;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "check_fuzz: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count) : replay_file(argv[i]);
        count += !S_ISDIR(st.st_mode);
        if (rc != 0)
            return 1;
    }
    printf("check_fuzz: %d inputs replayed, no invariant failed\n", count);
    return 0;
}
