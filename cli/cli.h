/*
 * speculo command-line tool: what the subcommands share.
 *
 * Every subcommand is one function `int cmd_X(int argc, char **argv)` that
 * receives its own argv (argv[0] is "speculo X") and returns the process
 * exit status: EXIT_OK, EXIT_ERR (a message `speculo: SEG: ...` was printed
 * on stderr) or EXIT_USAGE (bad command line; a hint was printed).
 */
#ifndef SPECULO_CLI_H
#define SPECULO_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "speculo.h"

struct option;

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

/* What option parsers return when the command should go on; anything else
 * is the exit status to return at once (after --help, or a usage error). */
#define CLI_CONTINUE (-1)

/* How long put and gc wait for the writer role by default, in ms. */
#define CLI_WRITER_WAIT_MS 5000

/* A subcommand: its name, its entry point, one line for `speculo --help`. */
struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

int cmd_put(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_segments(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_bridge(int argc, char **argv);

/* ---- messages (common.c) ---- */

/* User-given text (a name, a path, an argument) made safe to print: control
 * bytes, invalid UTF-8 and the characters a terminal acts on are escaped
 * (\n, \xHH, \uHHHH), a backslash is doubled. The result lives until
 * three more calls of the same thread; very long texts are cut with "...".
 * Every message that repeats what the user gave goes through it. */
const char *printable(const char *s);
/* `speculo: WHAT: MESSAGE` on stderr (WHAT shown with printable()); returns
 * EXIT_ERR. */
int fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* `speculo: SEG: <speculo_strerror(err)>`; returns EXIT_ERR. -EPERM (an
 * unsafe directory or file) goes to fail_unsafe(), which says which. */
int fail_code(const char *what, int err);
/* After the library refused with -EPERM: say exactly what is unsafe, the
 * segment directory (a symlink, not a directory, writable by others, not
 * yours) or the segment file of `segment` (NULL: the directory only).
 * Returns EXIT_ERR. */
int fail_unsafe(const char *segment);
/* Check the segment directory DIR (of $SPECULO_DIR, or the default) by
 * the library's rules (speculo_dir_check()), printing
 * `speculo: DIR: unsafe segment directory: WHY` when it breaks one.
 * EXIT_OK (with *missing when it does not exist) or EXIT_ERR. */
int check_segment_dir(const char *dir, bool *missing);
/* `PROG: MESSAGE` then a pointer to PROG --help, on stderr; returns
 * EXIT_USAGE. PROG is the subcommand's argv[0], e.g. "speculo put". */
int usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a subcommand's help text on stdout; returns EXIT_OK. */
int print_help(const char *text);

/* Shared getopt_long handling of the option every subcommand has
 * (`-h`, `--help`) and of getopt's '?' result. Returns the exit status the
 * subcommand must return. */
int common_option(int opt, const char *prog, const char *help);
/* getopt_long(), but its complaint about a bad option (printed before '?'
 * is returned) shows the offending text escaped, with printable(). */
int cli_getopt(int argc, char **argv, const char *optstring, const struct option *longopts);

/* ---- argument parsing (common.c) ---- */

/* Seconds as `DIGITS[.DIGITS]` (or `.DIGITS`) into nanoseconds, rounding a
 * tiny positive value up to 1 ns so that it never turns into "never".
 * Returns false when malformed, negative, or over INT64_MAX ns. */
bool parse_seconds(const char *s, int64_t *ns);
/* The argument of --wait (put, gc): seconds into *ms, capped at INT_MAX.
 * Returns CLI_CONTINUE, or the usage status to return. */
int wait_option(const char *prog, const char *arg, int *ms);
/* True when s is well-formed UTF-8 (ASCII included). */
bool valid_utf8(const char *s);
/* A decimal uint64 made of digits only; false when malformed or too big. */
bool parse_u64(const char *s, uint64_t *v);
/* True when s is non-empty and all ASCII digits. */
bool all_digits(const char *s);
/* A segment name given on the command line, checked. Returns CLI_CONTINUE,
 * or the usage status to return. */
int segment_name_option(const char *prog, const char *segment);
/* The single SEG operand left after the options (argv[optind]), checked.
 * Returns CLI_CONTINUE, or the usage status to return. */
int segment_operand(int argc, char **argv, const char **segment);

/* ---- opening handles (common.c) ---- */

/* Open a reader, printing `speculo: SEG: ...` on failure. Returns 0 or a
 * negative errno (already reported). */
int open_reader(const char *segment, speculo_reader **r);
/* Open a writer, retrying while another live writer holds the role, for up
 * to wait_ms; prints the failure. Returns 0 or a negative errno. */
int open_writer_waiting(const char *segment, const struct speculo_writer_options *opts, int wait_ms,
                        speculo_writer **w);
/* The pid of the segment's live writer, for messages; 0 when there is
 * none or it cannot be told. */
int64_t segment_writer_pid(const char *segment);
/* Make sure the segment exists (reader open) before a writer would create it. */
int require_segment(const char *segment);
/* The id of the newest committed chunk (0: none), where a command that
 * must end although a writer keeps committing stops. 0 or -errno. */
int newest_chunk_id(speculo_reader *r, uint64_t *id);

/* ---- output (common.c) ---- */

/* Make sure descriptors 0, 1 and 2 are open, so that no file the library
 * opens lands on one of them (and gets our output written into it). A
 * closed one gets an O_PATH descriptor, on which reads and writes still
 * fail with EBADF as on a closed one. Call first thing in main(). */
void guard_standard_fds(void);

/* Write all of buf to fd, retrying short writes and EINTR. 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);
/* Report a failure writing to stdout; EPIPE (the reader of our output went
 * away) is not an error and gives EXIT_OK. */
int stdout_failure(int err);
/* Format a wall-clock time (ns since the epoch) as ISO 8601 UTC with
 * milliseconds: "2026-11-26T07:13:28.123Z". buf needs 32 bytes. */
void format_time(int64_t ns, char *buf, size_t size);
/* The same to the nanosecond, as `speculo info` shows times:
 * "2026-11-26T07:13:28.123456789Z". buf needs 40 bytes. */
void format_time_ns(int64_t ns, char *buf, size_t size);
/* Flush stdout and report a write error; returns status unchanged if ok. */
int finish_stdout(int status);
/* A JSON string of s: quotes, backslashes and control bytes escaped, and
 * every byte outside printable ASCII as \u00XX, so that the document is
 * valid UTF-8 whatever the bytes. */
void json_string(FILE *out, const char *s);

/* ---- what `info` says, typed (seginfo.c) ---- */

/* The numeric keys of `speculo info`, in its order, with where each is in
 * struct speculo_segment_info and what it means (for JSON, Prometheus and
 * the tables). `counter` keys only grow while the segment lives. */
enum info_type { INFO_U32, INFO_U64, INFO_I64, INFO_BOOL };
struct info_key {
    const char *key;
    size_t offset;
    enum info_type type;
    bool counter;
    const char *help;
};
extern const struct info_key info_keys[];
extern const size_t info_key_count;
/* The value of key k in s (a boolean as 0 or 1). */
uint64_t info_value(const struct info_key *k, const struct speculo_segment_info *s);
/* The writer of s as "PID/alive", "PID/dead", or "-" when no process holds
 * the role. */
void format_writer(const struct speculo_segment_info *s, char *buf, size_t size);

/* The segments of the segment directory, sorted (none when the directory
 * is missing); the directory is checked first (check_segment_dir).
 * EXIT_OK or EXIT_ERR (printed). Free with free_names(). */
int list_segments(char ***names, size_t *count);
void free_names(char **names, size_t count);

/* speculo_segment_describe() into a malloc'd text: its length or -errno. */
int describe_segment(const char *segment, char **text);

/* One segment as `speculo info` sees it: the struct when the segment can
 * be read, else the library's text (`status: error`, `error: ...`). */
struct seg_report {
    const char *segment; /* not copied */
    bool ok;
    struct speculo_segment_info info; /* when ok */
    char *text;                       /* when !ok */
};
/* 0; -ENOENT no such segment; another -errno (an unsafe directory: -EPERM)
 * when not even a description can be had. Nothing is printed. */
int seg_report_load(const char *segment, struct seg_report *rep);
void seg_report_free(struct seg_report *rep);
/* A value of the text of a report that is not ok, copied into buf; NULL
 * when the text has no line for key. */
const char *seg_report_text_value(const struct seg_report *rep, const char *key, char *buf,
                                  size_t size);
/* The report as one JSON object, the keys of `speculo info` typed: numbers
 * as numbers, writer_alive a boolean, "-" null; times as in the text, and
 * as numbers (ns since the epoch) under KEY_ns. Pretty-printed, each line
 * after the first starting with `indent`; no newline after the '}'. */
void seg_report_json(FILE *out, const struct seg_report *rep, const char *indent);

/* ---- tables (common.c) ---- */

/* Rows of text cells printed in aligned columns, two spaces apart. A row
 * may have fewer cells than the table: its last cell then runs on to the
 * end of the line (e.g. "error: ..." after a name). At most 16 columns. */
struct table {
    const char *const *header; /* cols titles */
    size_t cols, rows, cap;
    unsigned right; /* bit c: column c is right-aligned (numbers) */
    char **cells;   /* rows * cols, NULL past the end of a short row */
};
void table_init(struct table *t, const char *const *header, size_t cols, unsigned right);
/* Add a row of n <= cols cells (copied). 0 or -ENOMEM. */
int table_row(struct table *t, const char *const *cells, size_t n);
/* Print the rows, after the header line when `header`. */
void table_print(FILE *out, const struct table *t, bool header);
void table_free(struct table *t);

/* ---- follow (follow.c) ---- */

/* Why a follow loop must stop; 0 while it must not. */
enum stop_reason { STOP_NONE = 0, STOP_SIGNAL, STOP_OUTPUT_GONE };

/* Start watching for SIGINT/SIGTERM/SIGHUP, for the reader of stdout going
 * away and for the removal of `segment`'s file, without polling: a helper
 * thread sleeps in poll(2) and, when one happens, records it and ends
 * follow_wait() (and wait_for_segment(), for a stop): stop_requested() and
 * removal_noticed() then tell. segment may be NULL when
 * removal_watch_arm() is never called. Returns 0 or -errno. */
int follow_watch_start(const char *segment);
/* Wait until `r` has news (as speculo_reader_wait(); r NULL: nothing) or
 * the helper thread recorded something: 0, -ECANCELED (look at
 * stop_requested() and removal_noticed()), -ETIMEDOUT, or -errno. */
int follow_wait(speculo_reader *r, int timeout_ms);
/* STOP_NONE, or why the follow loop must end. */
enum stop_reason stop_requested(void);
/* Watch the segment directory for the removal of the segment's file (by
 * rm, mv or `speculo rm`). Call it before each opening of the segment, so
 * that a removal right after the open is not missed, and after the
 * directory may have been made anew. 0 or -errno (-ENOENT: no directory). */
int removal_watch_arm(void);
/* True when the segment's file was removed since the last call: the reader
 * may then be holding a file that is no longer the segment. */
bool removal_noticed(void);
/* Finish as the stop reason asks: re-raise the signal that was caught (so
 * the shell sees it), or return EXIT_OK when our reader went away. */
int stop_exit(enum stop_reason why);

/* Block until `segment` may exist in the segment directory (a file of that
 * name was created or moved in), without polling: inotify on the directory,
 * or on its nearest existing ancestor while the directory itself is
 * missing. Returns 0 when it is worth trying to open the segment again,
 * -EINTR when a stop was requested, or another -errno. */
int wait_for_segment(const char *segment);

#endif
