/*
 * The input format of fuzz_fs, shared with make_corpus (which writes seed
 * programs) and with the replay test.
 *
 * An input is a segment file, optionally followed by a program of
 * operations and a 4-byte trailer:
 *
 *   [ segment file ][ program: N bytes ][ N ][ 's' 'f' 'z' ]
 *
 * An input without the trailer is a segment file alone (so the seed
 * segments of scripts/fuzz-corpus are inputs as they are): it gets the
 * sweep every input gets (list everything, look everything up, stat,
 * read, xattrs), and no program.
 *
 * A program is a sequence of operations: an opcode byte (taken modulo
 * FZ_NOPS), then argument bytes as the operation needs them (a program
 * that ends early reads zeroes). Arguments choose among what the
 * simulated kernel knows (inodes looked up, open files and directories,
 * names listed) by index, modulo their number.
 */
#ifndef FUZZ_FS_H
#define FUZZ_FS_H

#define FZFS_MAGIC "sfz"
#define FZFS_MAGIC_LEN 3
#define FZFS_TRAILER (FZFS_MAGIC_LEN + 1)

enum fz_op {
    FZ_LOOKUP,     /* parent, name */
    FZ_GETATTR,    /* inode */
    FZ_OPEN,       /* inode, flags */
    FZ_READ,       /* open file, size, offset */
    FZ_RELEASE,    /* open file */
    FZ_OPENDIR,    /* inode */
    FZ_READDIR,    /* open directory, size, offset */
    FZ_RELEASEDIR, /* open directory */
    FZ_GETXATTR,   /* inode, attribute name, size */
    FZ_LISTXATTR,  /* inode, size */
    FZ_FORGET,     /* inode, count, single or batch */
    FZ_STATFS,
    FZ_REFUSED,    /* (two operands, unused): no write operation is served */
    FZ_FILE,       /* what happens to the segment directory: enum fz_file_op, arg */
    FZ_NOTIFY,     /* notify.c stops following segments, or starts again (notify_stub.c) */
    FZ_FAILNEXT,   /* the next reply does not reach the kernel */
    FZ_NOPS
};

/* Changes made to the segment directory behind the filesystem's back. */
enum fz_file_op {
    FZF_REPLACE,  /* the same bytes in a new file renamed over "s" (new inode) */
    FZF_REMOVE,   /* arg even: unlink "s"; odd: speculo_segment_remove() */
    FZF_TRUNCATE, /* "s" cut in place while mapped; arg picks the new size */
    FZF_WRITER,   /* a writer takes "s" over: puts, obsoletes, collects */
    FZF_SECOND,   /* a copy of the input as segment "t" */
    FZF_JUNK,     /* a directory, a symlink, a FIFO, a dot file, a bad name */
    FZF_CHMOD,    /* arg picks a mode for "s" */
    FZF_RESTORE,  /* the input's bytes written back into "s" in place */
    FZF_NOPS
};

#endif
