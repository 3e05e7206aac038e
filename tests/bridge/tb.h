/*
 * Helpers of the bridge tests (tb_ prefix): real nats-server processes on
 * free loopback ports with temporary stores, `speculo bridge` processes
 * with their logs, an origin and a mirror segment directory per test, and
 * comparisons of the two. Everything started is stopped at the end of the
 * test (the processes die with the test's process, PR_SET_PDEATHSIG).
 * Waits are for conditions, with deadlines; a failed wait fails the test
 * and says what was seen.
 */
#ifndef TB_H
#define TB_H

#include <check.h>
#include <limits.h>
#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "speculo.h"
#include "t_nats.h"
#include "t_util.h"

/* Generous: the machine running the tests may be loaded. */
#define TB_WAIT_MS 60000

extern char tb_cli[PATH_MAX]; /* cli/speculo, absolute */

/* The test's servers (t_nats.h), failing the test when one cannot start. */
int tb_free_port(void);
/* With JetStream (store under the test's directory), ready. */
void tb_server_start(struct t_nats *s, const char *name);
/* The same without JetStream. */
void tb_server_start_plain(struct t_nats *s, const char *name);
/* Start it again (same port, same store). */
void tb_server_restart(struct t_nats *s);
/* SIGTERM (stop) or SIGKILL (kill), and reap. */
void tb_server_stop(struct t_nats *s);
void tb_server_kill(struct t_nats *s);
/* Three servers clustered on loopback routes, JetStream's meta group up. */
void tb_cluster_start(struct t_nats_cluster *c);

/* A `speculo bridge` process. */
struct tb_bridge {
    pid_t pid;
    char log[PATH_MAX];
};
/* Start `speculo bridge DIRECTION SEG --server SERVERS [ARGS...]` (a NULL-
 * terminated list) with SPECULO_DIR=dir, its output into a log file. */
void tb_bridge_start(struct tb_bridge *b, const char *dir, const char *direction,
                     const char *segment, const char *servers, ...);
/* SIGTERM, wait; its exit status (or 128 + signal). */
int tb_bridge_stop(struct tb_bridge *b);
/* SIGKILL, reap. */
void tb_bridge_kill(struct tb_bridge *b);
/* Still running? */
bool tb_bridge_alive(struct tb_bridge *b);
/* Its log holds `needle`. */
bool tb_log_has(const struct tb_bridge *b, const char *needle);
/* Count the lines of its log holding `needle`. */
int tb_log_count(const struct tb_bridge *b, const char *needle);
/* Wait until its log holds `needle` (fails the test, showing the log,
 * when it does not within timeout_ms or the process ended). */
void tb_log_wait(const struct tb_bridge *b, const char *needle, int timeout_ms);
/* ... until @n lines have it. */
void tb_log_wait_count(const struct tb_bridge *b, const char *needle, int n, int timeout_ms);
/* Print the log (for failing tests). */
void tb_log_dump(const struct tb_bridge *b);

/* Run `speculo ARGS...` (NULL-terminated) with SPECULO_DIR=dir to its end;
 * its exit status, its output (stdout and stderr) into out. */
int tb_run(const char *dir, char *out, size_t out_size, ...);

/* The test's origin and mirror segment directories (made by tb_setup). */
const char *tb_origin(void);
const char *tb_mirror(void);
void tb_setup(void);
void tb_teardown(void);

speculo_writer *tb_writer(const char *dir, const char *segment);
/* Commit a chunk; its id. */
uint64_t tb_put(speculo_writer *w, const void *data, size_t size, const char *name, int64_t ttl_ns,
                uint64_t replaces);
/* A chunk of t_fill(seed = its id) bytes. */
uint64_t tb_put_pattern(speculo_writer *w, size_t size, const char *name, int64_t ttl_ns);

/* A writer process committing into dir's SEG until told to stop: sizes
 * and names from a fixed sequence (every 197th chunk `big` bytes, some
 * named, some replacing an earlier one), a short sleep every few commits
 * so that the stream flows for a while. */
struct tb_wchild {
    pid_t pid;
    struct tb_wshared *sh;
    const char *dir, *segment;
};
void tb_wchild_start(struct tb_wchild *c, const char *dir, const char *segment, size_t big);
/* Chunks it committed so far. */
uint64_t tb_wchild_count(const struct tb_wchild *c);
/* Wait until it committed at least n. */
void tb_wchild_wait_count(const struct tb_wchild *c, uint64_t n, int timeout_ms);
/* Tell it to stop, wait for it (asserting it succeeded); its last id. */
uint64_t tb_wchild_stop(struct tb_wchild *c);

/* Are the live chunks of the mirror's SEG those of the origin's (ids,
 * names, bytes, commit times, expiry, and the segment's uid)? why says
 * the first difference. */
bool tb_same(const char *segment, char *why, size_t size);
/* Wait until they are. */
void tb_wait_same(const char *segment, int timeout_ms);
/* The live chunks of dir's SEG (0 when it is absent) and its last id. */
uint64_t tb_live(const char *dir, const char *segment, uint64_t *last_id);
/* Wait until the mirror's SEG has a chunk with this id or a later one. */
void tb_wait_mirror_id(const char *segment, uint64_t id, int timeout_ms);

/* A NATS client of the test's own. */
struct tb_js {
    natsConnection *nc;
    jsCtx *js;
};
void tb_js_connect(struct tb_js *j, const char *urls);
void tb_js_close(struct tb_js *j);
/* The stream's message count (asserting it exists). */
uint64_t tb_stream_msgs(struct tb_js *j, const char *stream);
/* Wait until the stream exists, then until its count satisfies cmp. */
void tb_wait_stream_msgs_at_most(struct tb_js *j, const char *stream, uint64_t n, int timeout_ms);
/* Read every message's headers: each chunk id is held by one message of
 * the stream only (fails the test otherwise). Returns how many ids. */
uint64_t tb_stream_unique_ids(struct tb_js *j, const char *stream);
/* Is the stream's R3 group whole: a leader, and both replicas current?
 * The leader's name into leader. */
bool tb_stream_replicas_current(struct tb_js *j, const char *stream, char *leader, size_t size);
/* Publish raw bytes with headers (k1, v1, k2, v2, ..., NULL) to subject,
 * into JetStream; asserts it was stored. */
void tb_publish(struct tb_js *j, const char *subject, const void *data, size_t size, ...);

/* The test cases of each file. */
TCase *tb_case_proto(void);
TCase *tb_case_mirror(void);
TCase *tb_case_faults(void);
TCase *tb_case_hostile(void);
TCase *tb_case_cli(void);
TCase *tb_case_cluster(void);

#endif
