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
#define SPECULO_VERSION "0.1.0"

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
 * @param chunk receives the chunk
 * @return 0; -ENOENT no live chunk of that name; -EINVAL / -ENAMETOOLONG.
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

/** What identifies a segment (speculo_reader_ident()). */
struct speculo_segment_ident {
    /** Random, chosen when the segment is created, kept by the garbage
     *  collector: a segment removed and created again has another one. */
    uint64_t uid;
    /** When the segment (generation 1) was created, wall clock ns. */
    int64_t created_ns;
    /** Generation of the file the reader maps: +1 at every GC switch. */
    uint64_t generation;
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

/** Flag of speculo_dir_check(): check for a writer (which must own the
 *  directory, and creates it, mode 0700, when missing). */
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
 * @param why      NULL, or receives a sentence saying what is wrong when
 *                 the result is -EPERM ("" otherwise)
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
