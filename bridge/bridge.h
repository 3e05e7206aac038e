/*
 * speculo-bridge: mirror a segment to other hosts through NATS JetStream.
 * `speculo bridge out SEG` forwards the chunks of local segment SEG to a
 * stream; `speculo bridge in SEG` commits the chunks of that stream into
 * local segment SEG (docs/BRIDGE.md).
 *
 *   main.c     options, signals, exit status
 *   log.c      one line per state change on stderr
 *   engine.c   the NATS connection and what the bridge asks of JetStream
 *   proto.c    the wire format
 *   out.c      the forwarder's reading side; outq.c its publisher;
 *   track.c    what it forwarded that is still in the stream
 *   in.c       the mirror
 */
#ifndef BRIDGE_H
#define BRIDGE_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nats/nats.h>

#include "proto.h"
#include "speculo.h"

enum { BR_EXIT_OK = 0, BR_EXIT_ERR = 1, BR_EXIT_USAGE = 2 };

/* What the command line gave. */
struct br_args {
    bool out; /* out, else in */
    const char *segment;
    const char *servers; /* URL[,URL...] */
    char stream[BR_STREAM_MAX + 1];
    int replicas; /* 0: not given (1 when creating) */
};

/* ---- stopping (main.c) ---- */

/* True once SIGINT/SIGTERM came, or a helper thread's fatal error. */
bool br_stopping(void);
/* Signalled when stopping, never cleared (br_sleep_ms waits on it). */
extern speculo_wakeup *br_wakeup;
/* Signalled when stopping and when the forwarder's main thread has work
 * (a message was stored): it clears it before looking for work. */
extern speculo_wakeup *br_kick;
/* A helper thread's fatal error: log it, make main stop with status 1. */
void br_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 1 when br_fatal() was called. */
bool br_failed(void);
/* Sleep up to ms, less when a stop comes. False once stopping. */
bool br_sleep_ms(int ms);

/* Monotonic and wall-clock time, ns. */
int64_t br_mono_ns(void);
int64_t br_wall_ns(void);
/* The path of the segment's file (the segment directory, then SEG). 0, or
 * -1 after logging that it is too long. */
int br_segment_path(const char *segment, char *buf, size_t size);

/* ---- log (log.c) ---- */

/* "speculo bridge ROLE: SEG: " before every line. */
void br_log_init(const char *role, const char *segment);
void br_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A message ignored from the stream: logged, but at most a few lines a
 * minute (a flood of garbage must not flood the log); the rest counted
 * and summed up in the next line. */
void br_log_ignored(uint64_t seq, const char *subject, const char *why);

/* ---- the engine (engine.c) ---- */

struct br_engine {
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    char stream[BR_STREAM_MAX + 1];
    char filter[BR_SUBJECT_MAX]; /* speculo.STREAM.> */
    int64_t stream_created;      /* when the stream we found was made */
    int64_t max_msg;             /* most bytes a message may take, headers included */
    atomic_int connected;        /* what the last state-change log said (a flag
                                    between the library's callback threads) */
};

/* Check URL[,URL...] and connect. Prints the error and returns -1 when it
 * cannot (bad URL, unreachable, no JetStream). */
int br_engine_connect(struct br_engine *e, const char *servers, const char *stream);
void br_engine_close(struct br_engine *e);
/* out: find the stream, or create it with `replicas`; check that it is one
 * of ours. -1 after printing the error. */
int br_stream_ensure(struct br_engine *e, const char *segment, int replicas);
/* in: wait until the stream exists (logging that once), check it. 0, 1
 * when stopping, -1 after printing the error. */
int br_stream_wait(struct br_engine *e);
/* The stream's current creation time, 0 when it is gone; -1 when the
 * engine cannot be asked now. */
int64_t br_stream_created(struct br_engine *e);
/* Update e->max_msg from the connection and the stream (a reconnection
 * may reach a server with another max_payload). */
void br_engine_limits(struct br_engine *e);

/* Called for each message of a scan: seq, its subject, and its headers
 * parsed (rc as br_parse()). Return false to stop. */
typedef bool (*br_scan_fn)(uint64_t seq, const char *subject, int rc, const struct br_msg *m,
                           const char *why, void *arg);
/* Read the headers of every message now in the stream, in order (a
 * headers-only ordered consumer). 0; 1 when stopping; -1 after logging
 * an error. *last receives the last sequence the stream had. */
int br_scan(struct br_engine *e, br_scan_fn fn, void *arg, uint64_t *last);

/* Outcome of one request to the engine. */
enum br_result {
    BR_OK,
    BR_RETRY, /* the engine cannot answer now: try again later */
    BR_GONE,  /* the stream is gone */
    BR_FAIL,  /* refused for good (why says it) */
};
/* Delete message seq (already gone is BR_OK). */
enum br_result br_delete(struct br_engine *e, uint64_t seq, char *why, size_t why_size);

/* ---- the two directions ---- */

int br_out(const struct br_args *a);
int br_in(const struct br_args *a);

#endif
