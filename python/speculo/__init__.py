"""speculo: IPC over shared memory for one host, from Python.

One writer, many readers, lockless, zero copy. A Writer appends chunks
(blobs of any size) to a named segment; a chunk is visible to every Reader
the instant it is committed, and never changes afterwards. A chunk may
have a name (a changeable block: the newest version wins), an expiry
(ttl), and may obsolete an older chunk (replaces).

    import speculo

    with speculo.Writer("sensor") as w:
        w.put(b"21.5", name="temperature", ttl=5.0)

    with speculo.Reader("sensor") as r:
        print(bytes(r.get("temperature").data))     # b'21.5'
        for chunk in r.follow(timeout=10):          # all, then new ones as they come
            print(chunk.id, chunk.name, bytes(chunk.data))

Chunks are not copied: Chunk.data is a read-only memoryview of the shared
memory (numpy.frombuffer(chunk.data, dtype) reads it in place), valid for
as long as anything references it, also after the reader has moved on or
been closed. Writer.alloc(size) gives a writable memoryview into the
segment, which commit() publishes.

Segments are files in the segment directory: $SPECULO_DIR when set, else
/dev/shm/speculo-$UID (segment_dir()). The C library, the `speculo`
command-line tool and the speculofs filesystem read and write the same
segments.

Errors: OSError with the errno (FileNotFoundError for a missing segment,
PermissionError for an unsafe directory, errno.EBUSY for a writer role
held by another live process, errno.EBADMSG for a corrupt segment...);
ValueError for a bad name or argument; BufferError and TypeError for
misuse of the zero-copy buffers.

Waiting: Reader.wait() and Reader.follow() sleep without polling, with the
GIL released, and Ctrl-C interrupts them (KeyboardInterrupt). In asyncio,
run the wait in a thread:

    while True:
        for chunk in reader:
            handle(chunk)
        await asyncio.to_thread(reader.wait, 1.0)
"""

from .speculo import (
    DEFAULT_CAPACITY,
    END,
    FORMAT_VERSION,
    VERSION,
    Chunk,
    Reader,
    Writer,
    remove,
    segment_dir,
    segments,
)

__version__ = VERSION

__all__ = [
    "Chunk",
    "Reader",
    "Writer",
    "segments",
    "remove",
    "segment_dir",
    "END",
    "DEFAULT_CAPACITY",
    "FORMAT_VERSION",
    "VERSION",
]
