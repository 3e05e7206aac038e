/*
 * Helpers of the CLI tests: run ./cli/speculo as a child process with
 * pipes, give each test a temporary segment directory, validate JSON.
 * Symbols carry a tc_ prefix (tests/common/ has its own helpers).
 */
#ifndef T_PROC_H
#define T_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>

#include "speculo.h"
#include "t_seg.h"
#include "t_util.h"

/* What a finished child did. */
struct tc_result {
    int status;    /* raw waitpid() status */
    char *out;     /* stdout, NUL-terminated for convenience */
    size_t out_len;
    char *err;     /* stderr, NUL-terminated */
    size_t err_len;
};

/* A child left running, its stdout on a pipe. */
struct tc_child {
    pid_t pid;
    int out; /* read end of its stdout; -1 once closed */
};

/* Absolute paths found at start-up: the CLI and the source tree. */
#define TC_PATH 4096
extern char tc_cli[TC_PATH];
extern char tc_srcdir[TC_PATH];
/* The current test's temporary directory and its SPECULO_DIR. */
extern char tc_tmp[TC_PATH];
extern char tc_segdir[TC_PATH + 16];

/* Run `speculo ARGS...` (a NULL-terminated list) to the end, feeding it
 * in[0..in_len) on stdin (NULL: /dev/null). Fails the test if it does not
 * end within 60 s. */
void tc_speculo(struct tc_result *res, const void *in, size_t in_len, ...);
/* The same, stdin redirected from a file. */
void tc_speculo_file(struct tc_result *res, const char *in_path, ...);
/* Run any program (argv[0] a path) to the end, stdin from /dev/null. */
void tc_run_argv(struct tc_result *res, char *const argv[]);
void tc_result_free(struct tc_result *res);
/* The exit status, or -1 - signal number when it was killed. */
int tc_exit(const struct tc_result *res);

/* Start `speculo ARGS...` in the background, stdout on a pipe, stdin from
 * /dev/null, stderr inherited. */
void tc_spawn(struct tc_child *c, ...);
/* Read from the child's stdout until `want` bytes came or timeout_ms
 * passed; returns the count read into buf. */
size_t tc_read(struct tc_child *c, char *buf, size_t want, int timeout_ms);
/* Wait up to timeout_ms for the child to end. True with *status when it
 * did; false (still running) otherwise. */
bool tc_wait(struct tc_child *c, int timeout_ms, int *status);
/* Kill (SIGKILL) and reap the child if still running, close its pipe. */
void tc_kill(struct tc_child *c);

/* speculo_reader_info() of a segment, asserting success. */
struct speculo_segment_info tc_info(const char *segment);
/* `speculo put SEG [NAME]` of a string, asserting success; returns the id. */
uint64_t tc_put(const char *segment, const char *name, const char *data);

/* Checked fixture: a fresh temporary directory per test; SPECULO_DIR is
 * tc_segdir, a directory inside it that does not exist yet. */
void tc_setup(void);
void tc_teardown(void);

/* Write a file, asserting success. */
void tc_write_file(const char *path, const void *data, size_t len);

/* True when s is one complete JSON document (RFC 8259), nothing else but
 * white space around it. */
bool tc_json_valid(const char *s, size_t len);
/* A piece of a JSON document: a value's text, or a key without quotes. */
struct tc_json_span {
    const char *p;
    size_t len;
};
/* The members of the object in s (at most max kept): their number, or -1
 * when s is not an object. */
int tc_json_members(const char *s, size_t len, struct tc_json_span *keys,
                    struct tc_json_span *values, int max);
/* The elements of the array in s: their number, or -1. */
int tc_json_elements(const char *s, size_t len, struct tc_json_span *values, int max);
/* The value of member key of the object in s; false when absent. */
bool tc_json_get(const char *s, size_t len, const char *key, struct tc_json_span *value);
/* Is the value's text exactly `text` (e.g. "12", "true", "\"ok\"")? */
bool tc_json_is(const struct tc_json_span *v, const char *text);

/* The test cases of each file. */
TCase *tc_case_putcat(void);
TCase *tc_case_list(void);
TCase *tc_case_tail(void);
TCase *tc_case_follow(void);
TCase *tc_case_admin(void);
TCase *tc_case_errors(void);
TCase *tc_case_docs(void);
TCase *tc_case_messages(void);
TCase *tc_case_info_json(void);
TCase *tc_case_stats(void);
TCase *tc_case_trust(void);
TCase *tc_case_prune(void);
TCase *tc_case_debug(void);

#endif
