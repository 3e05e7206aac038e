/*
 * What the documentation promises: docs/examples/hello.c (the README's C
 * example) compiles and prints what the README says, and `scripts/demo
 * --quick` runs and leaves nothing mounted or running.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t_proc.h"

/* The compiler command the tree was built with (the Makefile records it
 * in .build-flags), so that a sanitizer build links the example too. */
static void compiler(char *buf, size_t size)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/.build-flags", tc_srcdir);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(buf, (int)size, f))
        snprintf(buf, size, "cc -std=c11 -D_GNU_SOURCE -pthread");
    buf[strcspn(buf, "\n")] = '\0';
    if (f)
        fclose(f);
}

START_TEST(hello_example_compiles_and_runs)
{
    char cc[2048], cmd[12288], exe[PATH_MAX + 16];
    compiler(cc, sizeof cc);
    snprintf(exe, sizeof exe, "%s/hello", tc_tmp);
    snprintf(cmd, sizeof cmd, "cd '%s' && %s -Ilib -o '%s' docs/examples/hello.c lib/libspeculo.a",
             tc_srcdir, cc, exe);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    struct tc_result r;
    tc_run_argv(&r, sh);
    ck_assert_msg(tc_exit(&r) == 0, "compiling hello.c failed:\n%s", r.err);
    tc_result_free(&r);

    char *run[] = {exe, NULL};
    tc_run_argv(&r, run);
    ck_assert_msg(tc_exit(&r) == 0, "hello: %s", r.err);
    ck_assert_str_eq(r.out, "chunk 1: 21.5 C\n"
                            "chunk 3 status: running\n"
                            "status is running\n");
    tc_result_free(&r);
}
END_TEST

static char *slurp(const char *rel, size_t *len)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", tc_srcdir, rel);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = malloc(1 << 20);
    ck_assert_ptr_nonnull(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* The README shows hello.c in full: the two must not drift apart. */
START_TEST(readme_shows_hello_example_verbatim)
{
    size_t rlen, hlen;
    char *readme = slurp("README.md", &rlen);
    char *hello = slurp("docs/examples/hello.c", &hlen);
    const char *marker = "<!-- docs/examples/hello.c";
    char *at = strstr(readme, marker);
    ck_assert_msg(at != NULL, "README.md lost its hello.c marker");
    char *code = strstr(at, "```c\n");
    ck_assert_ptr_nonnull(code);
    code += 5;
    char *end = strstr(code, "```\n");
    ck_assert_ptr_nonnull(end);
    ck_assert_msg((size_t)(end - code) == hlen && !memcmp(code, hello, hlen),
                  "README.md's C example differs from docs/examples/hello.c");
    free(readme);
    free(hello);
}
END_TEST

/* Does any process have `needle` on its command line? */
static bool process_mentions(const char *needle)
{
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    bool found = false;
    while (!found && (e = readdir(d))) {
        char path[300], buf[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n] = '\0';
        found = strstr(buf, needle) != NULL;
    }
    closedir(d);
    return found;
}

static bool mounted_under(const char *dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    ck_assert_ptr_nonnull(f);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, dir) != NULL;
    fclose(f);
    return found;
}

START_TEST(demo_quick_leaves_nothing_behind)
{
    if (access("/dev/fuse", R_OK | W_OK) != 0)
        fprintf(stderr, "demo test: /dev/fuse is missing: the demo runs without its mount part\n");
    char demo[PATH_MAX + 32];
    snprintf(demo, sizeof demo, "%s/scripts/demo", tc_srcdir);
    char *argv[] = {demo, "--quick", "--no-build", NULL};
    struct tc_result r;
    tc_run_argv(&r, argv);
    ck_assert_msg(tc_exit(&r) == 0, "demo failed (%d):\n%s\n%s", tc_exit(&r), r.out, r.err);
    ck_assert_msg(strstr(r.out, "demo finished"), "demo output:\n%s", r.out);

    /* The demo names its working directory; nothing may remain of it. */
    const char *tag = "demo directory: ";
    char *at = strstr(r.out, tag);
    ck_assert_ptr_nonnull(at);
    char dir[PATH_MAX] = "";
    sscanf(at + strlen(tag), "%4095s", dir);
    ck_assert_msg(access(dir, F_OK) != 0, "%s is still there", dir);
    ck_assert_msg(!mounted_under(dir), "something is still mounted under %s", dir);
    ck_assert_msg(!process_mentions(dir), "a process of the demo is still running");
    tc_result_free(&r);
}
END_TEST

TCase *tc_case_docs(void)
{
    TCase *tc = tcase_create("docs");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, hello_example_compiles_and_runs);
    tcase_add_test(tc, readme_shows_hello_example_verbatim);
    tcase_add_test(tc, demo_quick_leaves_nothing_behind);
    return tc;
}
