/**
 * @file speculo.h
 * @brief speculo: IPC over shared memory for one host.
 *
 * One writer, many readers, lockless, zero-copy. A writer appends *chunks*
 * (blobs of any size) to a named *segment*; a chunk is visible to every
 * reader the instant the writer commits it and never changes afterwards.
 * A chunk may expire (a TTL) and may be obsoleted by a newer copy. When a
 * segment is full, or the writer's conditions hold, a garbage collector
 * copies the live chunks into a new segment file and atomically switches it
 * in; readers finish what they hold and move on at their next call.
 *
 * Segments are plain files in the segment directory: `$SPECULO_DIR` when
 * set, else `/dev/shm/speculo-$UID`. A reader keeps no file descriptor open
 * between calls; a writer keeps one, its segment file, whose lock is the
 * writer role.
 *
 * Conventions: every function that can fail returns 0 (or a non-negative
 * count) on success and a negative errno value on failure; out-parameters
 * are left untouched on failure; `close(NULL)` is a no-op. errno is never
 * the way an error is reported. speculo_strerror() turns any returned code
 * into a message.
 *
 * Errors with a fixed meaning throughout:
 * - `-EINVAL` a bad name or argument;
 * - `-ENAMETOOLONG` a segment name over 200 bytes, a chunk name over 255;
 * - `-ENOENT` no such segment, or no such live chunk;
 * - `-EBUSY` another live process is the segment's writer;
 * - `-EPERM` an unsafe segment directory or segment file (a symlink, not a
 *   regular file or directory, writable by others, or not owned by the
 *   writer);
 * - `-EBADMSG` a segment file that is corrupt or not a segment;
 * - `-EPROTO` a segment written in another format version;
 * - `-EFBIG` / `-ENOMEM` a chunk that cannot fit in memory.
 *
 * Thread safety: a handle is used by one thread at a time; distinct handles
 * are independent, in one process or many.
 */
#ifndef SPECULO_H
#define SPECULO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @cond INTERNAL */
#if defined(SPECULO_BUILDING) && defined(__GNUC__)
#define SPECULO_API __attribute__((visibility("default")))
#else
#define SPECULO_API
#endif
/** @endcond */

/** Version of this library, "MAJOR.MINOR.PATCH". */
#define SPECULO_VERSION "0.2.0"

/** Format version of the segment files this library reads and writes. */
#define SPECULO_FORMAT_VERSION 1

/** Default size of a new segment file, in bytes (4 MiB). */
#define SPECULO_DEFAULT_CAPACITY ((size_t)4 << 20)

/** Default dead-bytes percentage that triggers a garbage collection. */
#define SPECULO_DEFAULT_GC_DEAD_PERCENT 50

/** Default minimum of dead bytes before the ratio is considered (1 MiB). */
#define SPECULO_DEFAULT_GC_MIN_DEAD ((size_t)1 << 20)

/** Longest segment name, in bytes. */
#define SPECULO_SEGMENT_NAME_MAX 200

/** Longest chunk name, in bytes. */
#define SPECULO_CHUNK_NAME_MAX 255

/** Writer handle (opaque). */
typedef struct speculo_writer speculo_writer;
/** Reader handle (opaque). */
typedef struct speculo_reader speculo_reader;

/**
 * Options of speculo_writer_open(). Pass NULL, or zero-initialise the
 * struct and set what you need: a zero field means its default. Fields may
 * be added in later versions.
 */
struct speculo_writer_options {
    /** Size of a new segment file in bytes; default SPECULO_DEFAULT_CAPACITY.
     *  Used only when the segment is created (and as the least size the
     *  garbage collector gives it); it grows when live data needs more. */
    size_t capacity;
    /** File mode of a new segment file, default 0600 (0640 shares it with
     *  the group, read-only). Only the read and owner-write bits are used:
     *  nobody but the writer may modify a segment. */
    mode_t mode;
    /** Collect at commit time when the bytes of obsoleted chunks exceed this
     *  percentage of the bytes used; 0 means SPECULO_DEFAULT_GC_DEAD_PERCENT,
     *  100 or more means only when the segment is full. */
    unsigned gc_dead_percent;
    /** ...and exceed this many bytes; 0 means SPECULO_DEFAULT_GC_MIN_DEAD. */
    size_t gc_min_dead_bytes;
    /** The uid of a new segment (struct speculo_segment_ident); 0 means a
     *  random one. Used only when the segment is created. For a mirror,
     *  whose segment takes the uid of the segment it copies (see struct
     *  speculo_replica), so that both tell the same incarnation: give a uid
     *  that no earlier segment of this name had, or readers that mapped the
     *  earlier one cannot tell that it was created again. */
    uint64_t uid;
};

/** Options of speculo_writer_commit() and speculo_writer_put(); NULL means
 *  unnamed, never expires, replaces nothing. Fields may be added. */
struct speculo_commit_options {
    /** Publish as a named block: the chunk replaces the previous live
     *  version of this name. 1-255 bytes of [A-Za-z0-9_.-], starting with a
     *  letter or '_'. NULL for an unnamed chunk. */
    const char *name;
    /** The chunk expires ttl_ns nanoseconds after the commit; 0 = never. */
    int64_t ttl_ns;
    /** Id of a live chunk that this one obsoletes; 0 = none. */
    uint64_t replaces;
};

/**
 * A chunk as a reader sees it. Everything points into the shared mapping
 * (zero copy) and stays valid and unchanged at least until the next call on
 * the same reader, or its close, also when the garbage collector switches
 * the segment in between.
 */
typedef struct speculo_chunk {
    uint64_t id;          /**< >= 1, strictly increasing in commit order */
    const char *name;     /**< NUL-terminated; NULL when unnamed */
    const void *data;     /**< aligned to alignof(max_align_t) */
    size_t size;          /**< bytes at data */
    int64_t committed_ns; /**< wall clock, ns since the epoch */
    int64_t expires_ns;   /**< wall clock, ns since the epoch; 0 = never */
} speculo_chunk;

/**
 * What a reader can tell about its segment (speculo_reader_info()).
 * Fields may be added at the end.
 */
struct speculo_segment_info {
    uint32_t format_version;  /**< SPECULO_FORMAT_VERSION */
    uint64_t generation;      /**< 1 for a new segment, +1 at every GC switch */
    uint64_t capacity;        /**< size of the segment file, bytes */
    uint64_t data_capacity;   /**< bytes available to chunk records */
    uint64_t bytes_used;      /**< bytes taken by committed records */
    uint64_t dead_bytes;      /**< bytes of obsoleted records */
    uint64_t live_chunks;     /**< neither expired nor obsolete, now */
    uint64_t expired_chunks;  /**< expired and not obsolete */
    uint64_t obsolete_chunks; /**< obsoleted by a newer copy or explicitly */
    uint64_t named_chunks;    /**< live chunks that have a name */
    uint64_t first_id;        /**< id of the oldest record in this file; 0 if none */
    uint64_t last_id;         /**< id of the newest committed chunk; 0 if none */
    int64_t created_ns;       /**< when the segment (generation 1) was created */
    int64_t last_commit_ns;   /**< time of the newest commit; 0 if none */
    int64_t writer_pid;       /**< pid of the last writer as it saw itself (in its
                                   own PID namespace); 0 if none */
    int writer_alive;         /**< 1 if a live process holds the writer role */
};

/* ------------------------------------------------------------------ */
/** @name Writer */
/** @{ */

/**
 * Open @p segment for writing, creating it (and the segment directory,
 * mode 0700) when missing.
 *
 * A segment has one live writer at a time, whatever PID namespaces the
 * processes live in (containers sharing the segment directory): the role
 * is a lock on the segment file (an open file description lock), which
 * the kernel releases when the writer's process ends. So when the previous
 * writer has died (SIGKILL included) its role is taken over at once: every
 * chunk it committed is kept, the chunk it had not committed is discarded.
 * The writer keeps one descriptor open, for that lock. A child that the
 * writer's process forks holds no role: its copy of the handle can only be
 * closed (other writer calls return -EBUSY there), and it does not inherit
 * the writer's mapping.
 *
 * @param segment name, 1-200 bytes of [A-Za-z0-9_.-], not starting with '.'
 * @param opts    NULL or options (see struct speculo_writer_options)
 * @param out     receives the handle
 * A new segment is made complete (header, index and first pages
 * allocated) before it gets its name: on a full filesystem the open fails
 * with -ENOSPC and leaves nothing behind.
 *
 * @return 0; -EINVAL / -ENAMETOOLONG bad name or options; -EBUSY another
 *         live writer; -EPERM unsafe directory or file, or not owned by the
 *         caller; -EBADMSG corrupt segment; -EPROTO other format version;
 *         -ENOSPC / -ENOMEM the filesystem or memory is full; or an errno
 *         of open/mmap.
 */
SPECULO_API int speculo_writer_open(const char *segment, const struct speculo_writer_options *opts,
                                    speculo_writer **out);

/**
 * speculo_writer_open() in the segment directory @p dir instead of
 * `$SPECULO_DIR` or the default: for programs that take the directory from
 * their users (speculofs's `-o dir=`). The directory is checked as
 * speculo_dir_check() does (with SPECULO_DIR_WRITER), at this call and
 * whenever the writer opens it again (collections).
 * @param dir     the segment directory; NULL for speculo_segment_dir()'s,
 *                which is read at this call and kept for the handle's life
 * @param segment as for speculo_writer_open()
 * @param opts    as for speculo_writer_open()
 * @param out     receives the handle
 * @return as speculo_writer_open().
 */
SPECULO_API int speculo_writer_open_at(const char *dir, const char *segment,
                                       const struct speculo_writer_options *opts,
                                       speculo_writer **out);

/**
 * Reserve @p size bytes for the next chunk and return where to write them
 * (zero copy). The bytes become visible only on speculo_writer_commit().
 * A reservation made while an earlier one is uncommitted replaces it. The
 * segment is collected or grown first when the chunk does not fit.
 *
 * @param w    the writer
 * @param size bytes to reserve; 0 is a valid, empty chunk
 * @param data receives a pointer aligned to alignof(max_align_t), valid
 *             until the commit or the next alloc
 * @return 0; -EFBIG the size cannot be represented in a segment; -ENOSPC /
 *         -ENOMEM the segment directory's filesystem (/dev/shm) or memory
 *         is full (pages are allocated here, so a full filesystem is an
 *         error, never a SIGBUS later); -EBUSY in a child forked after the
 *         open (the role stays with the parent); or an error of the
 *         collector.
 */
SPECULO_API int speculo_writer_alloc(speculo_writer *w, size_t size, void **data);

/**
 * Commit the reserved chunk: one release store makes it visible to every
 * reader, complete. A named chunk obsoletes the previous live version of its
 * name; `replaces` obsoletes that chunk. Waiting readers are woken.
 *
 * @param w    the writer
 * @param opts NULL or commit options
 * @param id   NULL, or receives the new chunk's id
 * @return 0; -EINVAL nothing reserved, a bad name or a negative ttl;
 *         -ENAMETOOLONG; -ENOENT `replaces` names a chunk that is not live.
 *         On an error the reservation is kept.
 */
SPECULO_API int speculo_writer_commit(speculo_writer *w, const struct speculo_commit_options *opts,
                                      uint64_t *id);

/**
 * A chunk as another segment committed it: what a mirror of that segment
 * commits (speculo_writer_commit_replica()). The replica interface: a
 * program that copies a segment elsewhere (`speculo bridge in`) gives each
 * chunk the id, times and name it had at the origin.
 */
struct speculo_replica {
    uint64_t id;          /**< the origin's id: greater than every id this
                               segment has used (speculo_writer_last_id()) */
    int64_t committed_ns; /**< the origin's commit time (> 0) */
    int64_t expires_ns;   /**< the origin's expiry instant; 0 = never */
    const char *name;     /**< NULL, or the chunk's name: obsoletes the live
                               version of that name here, as at the origin */
    uint64_t replaces;    /**< the id the chunk obsoleted at the origin, 0
                               if none: obsoleted here too if it is live here
                               (not an error if it is not) */
};

/**
 * Commit the reserved chunk (speculo_writer_alloc()) as a replica of a
 * chunk of another segment: with the id, commit time, expiry and name it
 * had there, instead of the next id, the clock and a TTL. Readers see it
 * as any chunk. Ids of later commits, replicas or not, follow it.
 * @param w the writer
 * @param c the chunk's metadata
 * @return 0; -EINVAL nothing reserved, an id not above every id used so
 *         far (or 2^63 and over), committed_ns <= 0, expires_ns < 0, a bad
 *         name; -ENAMETOOLONG. On an error the reservation is kept.
 */
SPECULO_API int speculo_writer_commit_replica(speculo_writer *w, const struct speculo_replica *c);

/**
 * The id of the newest chunk committed to the writer's segment (by any
 * writer, earlier ones included, also if the collector dropped it), 0 if
 * none: the next commit gets a greater one.
 * @param w the writer
 * @return the id, or 0 (also for NULL)
 */
SPECULO_API uint64_t speculo_writer_last_id(const speculo_writer *w);

/**
 * Copy @p size bytes from @p data into a new chunk and commit it:
 * speculo_writer_alloc() plus speculo_writer_commit().
 * @param w    the writer
 * @param data bytes to copy (may be NULL when size is 0)
 * @param size number of bytes
 * @param opts NULL or commit options
 * @param id   NULL, or receives the new chunk's id
 * @return as those two.
 */
SPECULO_API int speculo_writer_put(speculo_writer *w, const void *data, size_t size,
                                   const struct speculo_commit_options *opts, uint64_t *id);

/**
 * Mark the live chunk @p id obsolete: readers skip it from now on. Readers
 * blocked in speculo_reader_watch() are woken.
 * @param w  the writer
 * @param id the chunk to obsolete
 * @return 0; -ENOENT no live chunk has that id.
 */
SPECULO_API int speculo_writer_obsolete(speculo_writer *w, uint64_t id);

/**
 * Collect now: copy the live chunks (ids, names and times kept) into a new
 * segment file and switch it in atomically. Readers are not disturbed. An
 * uncommitted reservation is carried over (its data pointer changes: call
 * speculo_writer_alloc() again before writing more). The new file takes
 * the mode, owner and group that the segment file has at the switch (a
 * chmod or chgrp of the segment stays).
 * @param w the writer
 * @return 0; -ENOMEM / -ENOSPC; -EBUSY in a forked child; or an errno of
 *         the file operations.
 */
SPECULO_API int speculo_writer_gc(speculo_writer *w);

/**
 * Give up the writer role and free the handle. Committed chunks stay; an
 * uncommitted reservation is discarded. NULL is a no-op.
 * @param w the writer, or NULL
 */
SPECULO_API void speculo_writer_close(speculo_writer *w);

/** @} */
/* ------------------------------------------------------------------ */
/** @name Reader */
/** @{ */

/**
 * Open @p segment for reading. Needs read access only: a reader never
 * writes to the segment's data. The reader starts before the oldest chunk.
 * @param segment the segment's name
 * @param out     receives the handle
 * @return 0; -ENOENT no such segment; -EINVAL / -ENAMETOOLONG bad name;
 *         -EPERM unsafe directory or file; -EBADMSG corrupt; -EPROTO other
 *         format version; -EACCES; -ENOMEM.
 */
SPECULO_API int speculo_reader_open(const char *segment, speculo_reader **out);

/** Flag of speculo_reader_open_at(): the reader stays on the file it
 *  maps now. It never looks at the segment's name again: it does not
 *  follow a garbage-collection switch (it sees no chunk committed after
 *  the switch; speculo_reader_wait() returns at once once the file is
 *  switched), nor a removal (its calls go on answering from the file),
 *  nor a segment created again. For a program that must answer from one
 *  file for a while, such as a filesystem holding what it opened. */
#define SPECULO_READER_PINNED 1u

/**
 * speculo_reader_open() in the segment directory @p dir, with @p flags.
 * The directory is checked as speculo_dir_check() does, at this call and
 * whenever the reader opens it again (switches, waits).
 * @param dir     the segment directory; NULL for speculo_segment_dir()'s,
 *                which is read at this call and kept for the handle's life
 * @param segment the segment's name
 * @param flags   0 or SPECULO_READER_PINNED
 * @param out     receives the handle
 * @return as speculo_reader_open(); -EINVAL unknown flags.
 */
SPECULO_API int speculo_reader_open_at(const char *dir, const char *segment, unsigned flags,
                                       speculo_reader **out);

/**
 * Return the next live chunk in commit order after the last one this reader
 * returned, skipping expired and obsolete ones. Across a garbage-collection
 * switch it carries on after the last id it returned. Costs no system call
 * when nothing is new.
 *
 * @param r     the reader
 * @param chunk receives the chunk
 * @return 0 and fills @p chunk; -EAGAIN nothing new yet; -ENOENT the segment
 *         was removed (the reader keeps trying to reopen it at each call,
 *         and starts from the first chunk of a new segment of that name);
 *         -EBADMSG the segment is corrupt.
 */
SPECULO_API int speculo_reader_next(speculo_reader *r, speculo_chunk *chunk);

/**
 * Find the latest live version of the chunk named @p name, without scanning
 * the segment (a hash index kept in the segment by the writer; the cost does
 * not grow with the number of chunks).
 * @param r     the reader
 * @param name  the chunk's name
 * @param chunk receives the chunk; its name is the reader's copy of @p name
 *              (which may be passed to the next call)
 * @return 0; -ENOENT no live chunk of that name; -EINVAL / -ENAMETOOLONG;
 *         -EBADMSG the segment is corrupt (its index leads elsewhere).
 */
SPECULO_API int speculo_reader_get(speculo_reader *r, const char *name, speculo_chunk *chunk);

/**
 * Find the live chunk @p id (a binary search, O(log n)).
 * @param r     the reader
 * @param id    the chunk's id
 * @param chunk receives the chunk
 * @return 0; -ENOENT no live chunk has that id.
 */
SPECULO_API int speculo_reader_get_id(speculo_reader *r, uint64_t id, speculo_chunk *chunk);

/**
 * Pin the reader to the file it maps now, as if it had been opened with
 * SPECULO_READER_PINNED: from now on it answers from that file only.
 * @param r the reader
 * @return 0; -EINVAL.
 */
SPECULO_API int speculo_reader_pin(speculo_reader *r);

/** A reference on the mapping of a segment file (opaque). */
typedef struct speculo_mapping speculo_mapping;

/**
 * Keep the file that the reader maps now mapped, beyond what the reader
 * itself promises: the chunks it returned from that file (their data and
 * names) stay valid and unchanged until speculo_mapping_release(), whatever
 * the reader does meanwhile: further calls, collection switches, its
 * close. For chunks that must outlive the next call (language bindings
 * handing out zero-copy views, a program keeping several chunks).
 * Each reference costs nothing but the file staying mapped: memory of a
 * collected file is freed when its last reference goes.
 * @param r   the reader
 * @param out receives the reference
 * @return 0; -EINVAL.
 */
SPECULO_API int speculo_reader_hold(speculo_reader *r, speculo_mapping **out);

/**
 * Drop a reference taken by speculo_reader_hold(); the last one unmaps the
 * file (unless its reader still maps it). Callable from any thread. NULL
 * is a no-op.
 * @param m the reference, or NULL
 */
SPECULO_API void speculo_mapping_release(speculo_mapping *m);

/** The state of a record still in a segment file (struct speculo_record). */
enum speculo_state {
    SPECULO_STATE_LIVE = 0, /**< neither expired nor obsolete */
    SPECULO_STATE_EXPIRED,  /**< its expiry has passed (and it is not obsolete) */
    SPECULO_STATE_REPLACED, /**< obsoleted by a newer chunk (a named update or
                                 `replaces`): `obsoleted_by` says which */
    SPECULO_STATE_OBSOLETE, /**< obsoleted by speculo_writer_obsolete() */
};

/** A record of a segment file, live or dead (speculo_reader_walk(),
 *  speculo_reader_get_record()). Fields may be added at the end. */
struct speculo_record {
    speculo_chunk chunk;      /**< its chunk, valid as any chunk returned */
    enum speculo_state state; /**< at the time of the call */
    uint64_t obsoleted_by;    /**< with SPECULO_STATE_REPLACED, the id of the
                                   chunk that obsoleted it; else 0 */
    uint64_t replaces;        /**< the id it obsoleted at its commit, 0 */
    uint64_t offset;          /**< where the record starts in the file */
    uint64_t length;          /**< bytes it takes there (header, payload, name,
                                   padding) */
};

/**
 * Walk every record still in the file the reader maps, live or dead, in
 * commit order: give the first whose id is greater than @p after_id.
 * Dead records stay in the file until the next collection drops them.
 * The walk is a debugging view: it does not move the reader's position
 * for speculo_reader_next(); like a lookup, it first moves the reader to
 * the newest file if the segment was switched. O(log n) per call.
 * @param r        the reader
 * @param after_id 0 for the first record
 * @param rec      receives the record
 * @return 0; -ENOENT no record after that id; -EBADMSG; -EINVAL.
 */
SPECULO_API int speculo_reader_walk(speculo_reader *r, uint64_t after_id,
                                    struct speculo_record *rec);

/**
 * The record @p id, whatever its state, while it is still in the file.
 * @param r   the reader
 * @param id  the chunk's id
 * @param rec receives the record
 * @return 0; -ENOENT not in the file (never committed, or collected);
 *         -EBADMSG; -EINVAL.
 */
SPECULO_API int speculo_reader_get_record(speculo_reader *r, uint64_t id,
                                          struct speculo_record *rec);

/** Flag of speculo_reader_get_version(): also a version of a named chunk
 *  that a newer version *of the same name* obsoleted, while it has not
 *  expired. Not one obsoleted by speculo_writer_obsolete(), nor by
 *  `replaces` from a chunk of another name or none. */
#define SPECULO_GET_SUPERSEDED 1u

/**
 * Find the chunk @p id, telling apart a chunk that is gone from the file
 * from one that is there but dead. For a program that looked a name up a
 * moment ago (speculo_reader_get()) and must now give exactly the version
 * it found, even if an update replaced it in between: with
 * SPECULO_GET_SUPERSEDED, that version is returned as long as it is in the
 * file and unexpired. A lookup linearized at the moment of the earlier
 * speculo_reader_get() is thus completed.
 * @param r     the reader
 * @param id    the chunk's id
 * @param flags 0 or SPECULO_GET_SUPERSEDED
 * @param chunk receives the chunk (valid as any chunk returned)
 * @return 0; -ENOENT no record with this id in the file the reader maps
 *         (never committed, or dropped by the collector); -ESTALE the
 *         record is there but dead (expired or obsoleted, and not taken
 *         by the flag); -EINVAL; -EBADMSG.
 */
SPECULO_API int speculo_reader_get_version(speculo_reader *r, uint64_t id, unsigned flags,
                                           speculo_chunk *chunk);

/**
 * Position the reader so that speculo_reader_next() returns the first live
 * chunk whose id is greater than @p after_id. 0 rewinds to the oldest chunk;
 * UINT64_MAX skips everything committed so far (follow only new chunks).
 * @param r        the reader
 * @param after_id next() returns chunks with greater ids
 * @return 0; -EBADMSG.
 */
SPECULO_API int speculo_reader_seek(speculo_reader *r, uint64_t after_id);

/**
 * Block until something was committed that speculo_reader_next() has not
 * returned yet, or the segment was switched or removed; return 0 at once if
 * that is already so. Sleeps on a futex in the segment without polling; the
 * writer makes the wake-up system call only while a reader waits. A reader
 * that has no write access to the segment file cannot register as a waiter:
 * it checks in sleeps of at most one millisecond instead.
 *
 * @param r          the reader
 * @param timeout_ms negative: wait for ever
 * @return 0; -ETIMEDOUT; -EINTR when a signal interrupted the wait (so that
 *         a program can handle it).
 */
SPECULO_API int speculo_reader_wait(speculo_reader *r, int timeout_ms);

/** What speculo_reader_watch() reports. Fields may be added at the end. */
struct speculo_watch {
    /** Chunks obsoleted since the previous report (or the reader's open):
     *  by a named update, by `replaces`, or by speculo_writer_obsolete(). */
    uint64_t obsoleted;
    /** 1 when the reader moved to a file that does not directly follow
     *  its own (a segment created again, or several garbage-collection
     *  switches at once) or found the segment removed, since the previous
     *  report. Obsoletions made meanwhile are then not all counted in
     *  `obsoleted`: whatever the caller knows of live chunks is to be
     *  checked again. A single switch is no move: its obsoletions are
     *  counted. */
    int moved;
};

/**
 * Like speculo_reader_wait(), for a program that keeps what it learned of
 * live chunks (a cache, a filesystem view) and must learn when any of them
 * dies other than by expiring: block until something was committed that
 * speculo_reader_next() has not returned yet, a chunk was obsoleted, or the
 * reader moved (see struct speculo_watch), since the previous report;
 * return at once if that is already so. Sleeps on the same futex as speculo_reader_wait(),
 * which speculo_writer_commit() and speculo_writer_obsolete() wake. A
 * reader without write access to the segment checks in sleeps of at most a
 * millisecond instead. While the segment is removed it returns at once, as
 * speculo_reader_wait() does.
 *
 * What it reports is consumed: the next call waits for something newer.
 * Commits are not reported (speculo_reader_next() returns them); a commit
 * that obsoletes a chunk counts in `obsoleted` (its
 * speculo_chunk_replaces() names the chunk, except when a named commit
 * given `replaces` obsoletes two).
 *
 * @param r          the reader
 * @param timeout_ms negative: wait for ever
 * @param ev         receives what happened (untouched on an error)
 * @return 0; -ETIMEDOUT; -EINTR when a signal interrupted the wait; -EINVAL.
 */
SPECULO_API int speculo_reader_watch(speculo_reader *r, int timeout_ms, struct speculo_watch *ev);

/** A wakeup (opaque): ends a speculo_wait() from another thread or from a
 *  signal handler. */
typedef struct speculo_wakeup speculo_wakeup;

/**
 * Make a wakeup, not signalled.
 * @param out receives it
 * @return 0; -EINVAL; -ENOMEM.
 */
SPECULO_API int speculo_wakeup_create(speculo_wakeup **out);

/** Free a wakeup that no wait uses any more. NULL is a no-op.
 * @param wk the wakeup, or NULL */
SPECULO_API void speculo_wakeup_destroy(speculo_wakeup *wk);

/**
 * Signal @p wk: every speculo_wait() given it returns -ECANCELED, at once
 * or as soon as it starts, until speculo_wakeup_clear(). Callable from any
 * thread and from a signal handler (async-signal-safe; errno is kept).
 * There is no race: a signal that comes while a wait is about to sleep
 * still ends it.
 * @param wk the wakeup (NULL is a no-op)
 */
SPECULO_API void speculo_wakeup_signal(speculo_wakeup *wk);

/**
 * Clear @p wk, so that the next waits sleep again.
 * @param wk the wakeup
 * @return 1 if it was signalled, 0 if not; -EINVAL.
 */
SPECULO_API int speculo_wakeup_clear(speculo_wakeup *wk);

/** The most readers one speculo_wait() takes. */
#define SPECULO_WAIT_MAX 127

/** Event flag of struct speculo_wait_item: also wake for what
 *  speculo_reader_watch() reports (obsoletions, moves). */
#define SPECULO_WAIT_WATCH 1u

/** One reader in a speculo_wait(). */
struct speculo_wait_item {
    speculo_reader *reader; /**< the reader */
    unsigned events;        /**< 0: commits (as speculo_reader_wait()), or
                                 SPECULO_WAIT_WATCH (as speculo_reader_watch()) */
    int ready;              /**< set by speculo_wait(): 1 when this reader has
                                 news, 0 otherwise */
};

/**
 * Wait on several readers at once (one futex_waitv(2) sleep for all,
 * without polling), and on a wakeup: return when at least one reader has
 * news, as speculo_reader_wait() or (with SPECULO_WAIT_WATCH)
 * speculo_reader_watch() would return; at once if one already has. The
 * news itself is taken by the usual calls: speculo_reader_next() for
 * commits, speculo_reader_watch() with a 0 timeout for the rest.
 *
 * Readers without write access to their segment fall back to sleeps of at
 * most a millisecond, as in speculo_reader_wait(). Each reader is used by
 * this call: it must not be used by another thread meanwhile.
 *
 * @param items      @p n readers with what to wait for; ready is set on return
 * @param n          0 to SPECULO_WAIT_MAX (0 waits on the wakeup alone)
 * @param wk         NULL, or a wakeup that ends the wait
 * @param timeout_ms negative: wait for ever
 * @return the number of readers with news (>= 1); -ETIMEDOUT; -ECANCELED
 *         the wakeup is signalled; -EINTR a signal interrupted the wait;
 *         -EINVAL bad arguments (n over SPECULO_WAIT_MAX, a NULL reader,
 *         unknown events, n 0 and no wakeup).
 */
SPECULO_API int speculo_wait(struct speculo_wait_item *items, size_t n, speculo_wakeup *wk,
                             int timeout_ms);

/** What identifies a segment (speculo_reader_ident()). */
struct speculo_segment_ident {
    /** Random (or the writer options' `uid`), chosen when the segment is
     *  created, kept by the garbage collector: a segment removed and
     *  created again has another one. */
    uint64_t uid;
    /** When the segment (generation 1) was created, wall clock ns. */
    int64_t created_ns;
    /** Generation of the file the reader maps: +1 at every GC switch. */
    uint64_t generation;
    /** Size of that file, bytes. */
    uint64_t capacity;
    /** That file's device; with @c ino, tells one file from another
     *  (generations of different segments of one name may be equal). */
    dev_t dev;
    /** That file's inode number. */
    ino_t ino;
};

/**
 * Identify the segment file the reader maps now, without a scan and
 * without looking at the name again: the file the chunks it returned last
 * came from. A reader follows its segment's name: after the segment was
 * removed and created again, it maps the new segment (another `uid`).
 * @param r  the reader
 * @param id receives the identity
 * @return 0; -EINVAL.
 */
SPECULO_API int speculo_reader_ident(const speculo_reader *r, struct speculo_segment_ident *id);

/**
 * Describe the segment as this reader sees it now (it first moves to the
 * newest file if the segment was switched). Counts chunk states by a scan of
 * the record headers (O(n)).
 * @param r    the reader
 * @param info receives the description
 * @return 0; -EBADMSG.
 */
SPECULO_API int speculo_reader_info(speculo_reader *r, struct speculo_segment_info *info);

/** Close the reader and unmap its segment. NULL is a no-op.
 * @param r the reader, or NULL
 */
SPECULO_API void speculo_reader_close(speculo_reader *r);

/**
 * The id of the chunk that @p chunk obsoleted when it was committed (its
 * `replaces` option, or the previous version of its name), 0 if none.
 * @p chunk must have been filled by a reader call and still be valid.
 * @param chunk a chunk filled by a reader call
 * @return the replaced chunk's id, or 0
 */
SPECULO_API uint64_t speculo_chunk_replaces(const speculo_chunk *chunk);

/** @} */
/* ------------------------------------------------------------------ */
/** @name Segments and names */
/** @{ */

/**
 * Write the segment directory's path (`$SPECULO_DIR`, else
 * `/dev/shm/speculo-$UID`) into @p buf.
 * @param buf  receives the path, NUL-terminated
 * @param size size of buf
 * @return its length; -ENAMETOOLONG if @p size is too small.
 */
SPECULO_API int speculo_segment_dir(char *buf, size_t size);

/** Flag of speculo_dir_check(): check for a writer, which must own the
 *  directory (it creates it, mode 0700, when missing; the check does not). */
#define SPECULO_DIR_WRITER 1u

/**
 * Check that @p dir is safe to keep segments in, as every call of this
 * library checks the segment directory before using it: a directory whose
 * path does not reach it through a symbolic link in its last component,
 * however spelled (`dir`, `dir/`, `dir/.`); writable by nobody but its
 * owner; owned by the caller when it is the default directory (anyone
 * could have created `/dev/shm/speculo-UID` first) or with
 * SPECULO_DIR_WRITER.
 * @param dir      the directory's path; NULL for the segment directory
 *                 (see speculo_segment_dir())
 * @param flags    0, or SPECULO_DIR_WRITER
 * @param why      NULL, or receives what is wrong with the directory when
 *                 the result is -EPERM, such as "writable by others (chmod
 *                 go-w it)" or "it is a symbolic link" ("" otherwise)
 * @param why_size size of why
 * @return 0; -EPERM unsafe; -ENOENT missing; -ENOTDIR; -EACCES;
 *         -ENAMETOOLONG; -EINVAL bad flags.
 */
SPECULO_API int speculo_dir_check(const char *dir, unsigned flags, char *why, size_t why_size);

/**
 * Check a segment name: 1-200 bytes of [A-Za-z0-9_.-], not starting with '.'.
 * @param segment the name to check
 * @return 0; -EINVAL; -ENAMETOOLONG.
 */
SPECULO_API int speculo_segment_name_check(const char *segment);

/**
 * Check a chunk name: 1-255 bytes of [A-Za-z0-9_.-], starting with a letter
 * or '_'.
 * @param name the name to check
 * @return 0; -EINVAL; -ENAMETOOLONG.
 */
SPECULO_API int speculo_chunk_name_check(const char *name);

/** Flag of speculo_segment_remove(): remove even while a writer is alive. */
#define SPECULO_REMOVE_FORCE 1u

/**
 * Remove a segment, and the temporary files its dead writers left (a
 * collection or a creation they did not finish). Readers that have it
 * mapped keep their data; they learn of the removal at their next call
 * (speculo_reader_next() returns -ENOENT) and waiting readers are woken.
 * Without SPECULO_REMOVE_FORCE it holds the writer role while removing,
 * so that no writer can start on the file meanwhile.
 * @param segment the segment's name
 * @param flags   0 or SPECULO_REMOVE_FORCE
 * @return 0; -ENOENT; -EBUSY its writer is alive and no force was given;
 *         -EPERM unsafe directory; or an errno of unlink.
 */
SPECULO_API int speculo_segment_remove(const char *segment, unsigned flags);

/**
 * speculo_segment_remove() in the segment directory @p dir (NULL: the one
 * of speculo_segment_dir()).
 * @param dir     the segment directory, or NULL
 * @param segment the segment's name
 * @param flags   0 or SPECULO_REMOVE_FORCE
 * @return as speculo_segment_remove().
 */
SPECULO_API int speculo_segment_remove_at(const char *dir, const char *segment, unsigned flags);

/** Flag of speculo_leftovers_remove(): report, remove nothing. */
#define SPECULO_DRY_RUN 1u

/** Called by speculo_leftovers_remove() for each file it removes (or, dry,
 *  would remove): its name in the segment directory, the bytes it held. */
typedef void (*speculo_leftover_fn)(const char *file, uint64_t bytes, void *arg);

/**
 * Remove the files that dead writers left in the segment directory: the
 * temporary files of a collection or a creation they did not finish
 * (named `.SEG.gc.*` and `.SEG.new.*`). A file that a live writer is
 * making is never one of them (its lock says so), whatever PID namespace
 * that writer runs in. speculo_segment_remove() and a writer taking a
 * segment over do this for their segment.
 * @param dir     the segment directory, or NULL for speculo_segment_dir()'s
 * @param segment only that segment's files; NULL for every segment's,
 *                also of segments that no longer exist
 * @param flags   0 or SPECULO_DRY_RUN
 * @param fn      NULL, or called for each file
 * @param arg     passed to fn
 * @return how many files were (or would be) removed; -EINVAL;
 *         -ENAMETOOLONG; -EPERM unsafe directory; -ENOENT no directory.
 */
SPECULO_API int speculo_leftovers_remove(const char *dir, const char *segment, unsigned flags,
                                         speculo_leftover_fn fn, void *arg);

/**
 * Write a text description of @p segment into @p buf: one `key: value` line
 * each for the format version, generation, capacity, bytes used, live /
 * expired / obsolete chunk counts, writer pid and whether it is alive, last
 * commit time, and so on. For a segment that cannot be read (corrupt, wrong
 * version, truncated) the text says what is wrong (`error:` line) and the
 * call still succeeds. This is the `.info` file of speculofs and the output
 * of `speculo info`.
 *
 * @param segment the segment's name
 * @param buf     receives the text (may be NULL when size is 0)
 * @param size    size of buf
 * @return the length of the full text (like snprintf: the text is cut, and
 *         NUL-terminated, when @p size is smaller); -ENOENT no such
 *         segment; -EINVAL / -ENAMETOOLONG bad name; -EPERM unsafe directory.
 */
SPECULO_API int speculo_segment_describe(const char *segment, char *buf, size_t size);

/**
 * speculo_segment_describe() in the segment directory @p dir (NULL: the
 * one of speculo_segment_dir()).
 * @param dir     the segment directory, or NULL
 * @param segment the segment's name
 * @param buf     receives the text (may be NULL when size is 0)
 * @param size    size of buf
 * @return as speculo_segment_describe().
 */
SPECULO_API int speculo_segment_describe_at(const char *dir, const char *segment, char *buf,
                                            size_t size);

/** What speculo_segment_check() found. Fields may be added at the end. */
struct speculo_check_report {
    /** 0: the file is sound. -EBADMSG: it is not; `offset` and `problem`
     *  say where and what. -EPROTO: a segment of another format version.
     *  When not 0, the counts cover what was checked before the problem. */
    int status;
    /** Where the first problem is, in bytes from the start of the file:
     *  the header field, record, id table entry or name index slot that is
     *  wrong. */
    uint64_t offset;
    /** What is wrong there, one line of printable ASCII ("" when sound),
     *  such as "record id 2: payload size 9223372036854775808 does not fit
     *  in its 128-byte record". */
    char problem[512];
    uint64_t file_size;        /**< size of the file checked, bytes */
    uint64_t generation;       /**< its generation (1 + collections) */
    uint64_t records;          /**< committed records, live or dead */
    uint64_t live_records;     /**< neither expired nor obsolete */
    uint64_t expired_records;  /**< expired, not obsolete */
    uint64_t replaced_records; /**< obsoleted by a newer chunk */
    uint64_t obsolete_records; /**< obsoleted explicitly */
    uint64_t first_id;         /**< id of the oldest record; 0 if none */
    uint64_t last_id;          /**< id of the newest record; 0 if none */
    uint64_t bytes_used;       /**< bytes the records take */
    uint64_t live_bytes;       /**< ...of which live records */
    uint64_t dead_bytes;       /**< ...of which expired and obsolete records:
                                    what the next collection frees */
    uint64_t free_bytes;       /**< the record area's unused room after the
                                    last record */
    uint64_t table_slots;      /**< size of the id table (records it can list) */
    uint64_t index_slots;      /**< size of the name index */
    uint64_t index_used;       /**< slots taken: a name keeps its slot for the
                                    file's life, also once all its versions
                                    are dead */
    uint64_t index_dead;       /**< taken slots whose name has no live version */
    uint64_t index_displaced;  /**< names not in their home slot (another name
                                    holds it): see speculo_collision_fn */
    uint64_t index_same_home;  /**< names whose home slot is another name's
                                    too (their hashes agree in the bits that
                                    choose the slot) */
    /** The most slots a lookup of a name in the index visits. */
    uint64_t index_longest_probe;
    /** 1: the file carries the mark of a collection switch or a removal yet
     *  is still under the segment's name (a writer died between the two
     *  steps; the next writer repairs it). Not a problem. */
    int superseded;
};

/** A name of the index that collides with another: it is not in its home
 *  slot (the slot its hash selects, the index probing linearly from
 *  there), so a lookup of it visits the slots in between. Valid during the
 *  callback only. */
struct speculo_name_collision {
    const char *name;      /**< the name */
    uint64_t id;           /**< the record its slot points at */
    uint64_t home;         /**< its home slot */
    uint64_t slot;         /**< the slot it is in; a lookup visits
                                (slot - home) mod index_slots + 1 slots */
    const char *home_name; /**< the name in its home slot */
    uint64_t home_id;      /**< the record that slot points at */
    int same_home;         /**< 1: home_name has the same home slot; 0: it is
                                there because a run of names from earlier
                                slots pushed it there */
};

/** Called by speculo_segment_check() for each name of the index that is
 *  not in its home slot, in slot order. */
typedef void (*speculo_collision_fn)(const struct speculo_name_collision *c, void *arg);

/**
 * Verify a whole segment file and say where it is wrong: the header and
 * its layout, every committed record (the checks readers make, ids in
 * increasing order, obsolete marks and `replaces` pointing at older ids,
 * names matching their stored hash), the id table (an entry per record,
 * where the record is), the name index (each slot points at a record of
 * its name, reachable from its home slot; one slot per name, at its
 * newest version), and the header's totals. Besides, it counts what
 * speculo_segment_describe() does not say: the bytes a collection would
 * free, the unused room, the index's load and its colliding names.
 *
 * A file that a writer is committing to is checked as it is: what a
 * writer has not finished (the last record not yet in the index or
 * counted in the header, one killed in the middle of a commit) is no
 * problem. If the segment is switched by a collection meanwhile, the new
 * file is checked. The file is only read; the check never reads outside
 * it, and ends on any input (O(n log n) in the records and names), using
 * memory in proportion to them.
 *
 * @param dir     the segment directory, or NULL for speculo_segment_dir()'s
 * @param segment the segment's name
 * @param report  receives what was found
 * @param fn      NULL, or called for each colliding name (found before a
 *                problem, if there is one)
 * @param arg     passed to fn
 * @return 0 when the file was checked (sound or not: see report->status);
 *         -ENOENT no such segment; -EINVAL / -ENAMETOOLONG bad name;
 *         -EPERM unsafe directory or file; -EACCES; -ENOSPC the file's
 *         pages cannot be read (a full filesystem); -ENOMEM.
 */
SPECULO_API int speculo_segment_check_at(const char *dir, const char *segment,
                                         struct speculo_check_report *report,
                                         speculo_collision_fn fn, void *arg);

/**
 * speculo_segment_check_at() in the segment directory of
 * speculo_segment_dir().
 * @param segment the segment's name
 * @param report  receives what was found
 * @param fn      NULL, or called for each colliding name
 * @param arg     passed to fn
 * @return as speculo_segment_check_at().
 */
SPECULO_API int speculo_segment_check(const char *segment, struct speculo_check_report *report,
                                      speculo_collision_fn fn, void *arg);

/**
 * A message for an error code returned by this library (negative or
 * positive errno). Never NULL; thread-safe.
 * @param err an error code
 * @return a static, NUL-terminated message
 */
SPECULO_API const char *speculo_strerror(int err);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* SPECULO_H */
