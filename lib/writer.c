/*
 * The writer: open (create or take over), alloc + commit, obsolete, close.
 *
 * The commit protocol: a record is written in place after the tail, with
 * its commit word (the first 8 bytes) still 0; then the record's length is
 * stored into its commit word with release. A reader that acquires a
 * non-zero commit word sees the whole record. Readers poll the commit word
 * at their position, on the line that holds the record's header: one
 * cache-line transfer brings both, and alloc stores into that line at once
 * so that it is back in the writer's cache by the time commit writes it.
 *
 * The commit word where the *next* record will start must read 0 by then.
 * Past the tail the file is zero (the kernel's fresh pages) except below
 * w->dirty_end: a reservation given up, or what a dead writer left (found
 * at takeover). Only a commit that ends below that mark clears the next
 * commit word, before its release store.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "writer.h"

#define MAX_CHUNK_SIZE (UINT64_C(1) << 46) /* beyond any address space we can map */
#define PREFAULT_AHEAD ((uint64_t)256 << 10)
#define OPEN_ATTEMPTS 8

/*
 * Populate the pages up to `end` (plus some room ahead) before the commit
 * path touches them: a first touch of a tmpfs page costs microseconds, and
 * a full /dev/shm must give -ENOMEM here, not SIGBUS on a store later.
 */
int speculo__writer_prefault(speculo_writer *w, uint64_t end)
{
    if (end <= w->faulted_end)
        return 0;
    uint64_t from = w->faulted_end & ~(uint64_t)(SEG_PAGE - 1);
    uint64_t to = align_up(end + PREFAULT_AHEAD, SEG_PAGE);
    if (to > w->map.size)
        to = w->map.size;
    if (!w->populate_fallback && madvise(w->map.base + from, to - from, MADV_POPULATE_WRITE) < 0) {
        if (errno != EINVAL) /* EFAULT: a store would have raised SIGBUS */
            return errno == EFAULT ? -ENOSPC : -ENOMEM;
        w->populate_fallback = true;
    }
    if (w->populate_fallback) {
        if (fallocate(w->fd, 0, (off_t)from, (off_t)(to - from)) < 0 && errno != EOPNOTSUPP)
            return errno == ENOSPC ? -ENOSPC : -ENOMEM;
        /* Only pages wholly past the tail's commit word are touched, and a
         * byte is stored back unchanged: readers never look there. */
        for (uint64_t p = align_up(w->tail + REC_ALIGN, SEG_PAGE); p < to; p += SEG_PAGE) {
            volatile uint8_t *b = w->map.base + p;
            uint8_t unchanged = *b;
            *b = unchanged;
        }
    }
    w->faulted_end = to;
    return 0;
}

/* Publish a file's running totals, all of them: when a writer opens,
 * collects, obsoletes or closes. A commit publishes what it changed (see
 * commit_record()). */
void speculo__header_publish_totals(struct seg_header *h, const struct seg_totals *t)
{
    atomic_store_explicit(&h->committed_end, t->committed_end, memory_order_relaxed);
    atomic_store_explicit(&h->last_id, t->last_id, memory_order_relaxed);
    atomic_store_explicit(&h->last_commit_ns, t->last_commit_ns, memory_order_relaxed);
    atomic_store_explicit(&h->dead_bytes, t->dead_bytes, memory_order_relaxed);
    atomic_store_explicit(&h->names_used, t->names_used, memory_order_relaxed);
    /* publishes: the obsolete marks counted (speculo_reader_watch() readers
     * look at the marks once they see the count change) */
    atomic_store_explicit(&h->obsolete_count, t->obsolete_count, memory_order_release);
    /* publishes: the id table entries below nrecords */
    atomic_store_explicit(&h->nrecords, t->nrecords, memory_order_release);
}

/* The commit time of the file's newest record; with none (a collection
 * kept none), what the header carries from the files before. */
int64_t speculo__writer_last_commit_ns(const speculo_writer *w)
{
    if (w->nrecords == 0)
        /* observes: our own header */
        return atomic_load_explicit(&w_header(w)->last_commit_ns, memory_order_relaxed);
    uint64_t off = seg_table(&w->map)[w->nrecords - 1];
    return ((const struct rec_header *)(w->map.base + off))->committed_ns;
}

void speculo__writer_publish_totals(speculo_writer *w)
{
    struct seg_totals t = {
        .committed_end = w->tail,
        .last_id = w->next_id - 1,
        .last_commit_ns = speculo__writer_last_commit_ns(w),
        .dead_bytes = w->dead_bytes,
        .names_used = w->names_used,
        .obsolete_count = w->obsolete_count,
        .nrecords = w->nrecords,
    };
    speculo__header_publish_totals(w_header(w), &t);
}

/* After a commit or obsolete marked chunks: the bytes they free and their
 * count, which speculo_reader_watch() waits for. */
static void publish_obsoletions(speculo_writer *w)
{
    struct seg_header *h = w_header(w);
    atomic_store_explicit(&h->dead_bytes, w->dead_bytes, memory_order_relaxed);
    /* publishes: the obsolete marks counted */
    atomic_store_explicit(&h->obsolete_count, w->obsolete_count, memory_order_release);
}

/* The committed record with this id, by binary search of the id table. */
int speculo__writer_find(const speculo_writer *w, uint64_t id, struct rec_view *v)
{
    int64_t i = speculo__table_lower_bound(&w->map, w->nrecords, id);
    if (i < 0)
        return (int)i;
    if ((uint64_t)i == w->nrecords)
        return -ENOENT;
    speculo__rec_check(w->map.base, &w->map.lay, seg_table(&w->map)[i], v);
    return v->id == id ? 0 : -ENOENT;
}

static void mark_obsolete(speculo_writer *w, const struct rec_view *v, uint64_t by)
{
    struct rec_header *r = (struct rec_header *)v->h;
    /* publishes: the chunk is dead; readers skip it from now on */
    atomic_store_explicit(&r->obsoleted_by, by, memory_order_release);
    w->dead_bytes += v->len;
    w->obsolete_count++;
}

/* ------------------------------------------------------------------ */
/* Opening: create, or map an existing file and take the writer role.  */

static int validate_options(const struct speculo_writer_options *o)
{
    if (!o)
        return 0;
    if (o->capacity > MAX_CHUNK_SIZE)
        return -EINVAL;
    return 0;
}

static void apply_options(speculo_writer *w, const struct speculo_writer_options *o)
{
    w->gc_dead_percent =
        o && o->gc_dead_percent ? o->gc_dead_percent : SPECULO_DEFAULT_GC_DEAD_PERCENT;
    w->gc_min_dead = o && o->gc_min_dead_bytes ? o->gc_min_dead_bytes : SPECULO_DEFAULT_GC_MIN_DEAD;
}

/* A temporary name for a file of this segment: ".SEG.KIND.<16 hex digits>"
 * (random: two writers in different PID namespaces may share a pid). */
static void temp_name(char *buf, size_t size, const char *segment, const char *kind)
{
    snprintf(buf, size, ".%s.%s.%016llx", segment, kind, (unsigned long long)speculo__random_u64());
}

/* Allocate the first @len bytes of a new file: a full filesystem fails
 * here (-ENOSPC), not with SIGBUS at a store or a reader's load later. */
static int allocate_file(int fd, struct seg_map *m, uint64_t len)
{
    if (fallocate(fd, 0, 0, (off_t)len) < 0 && errno != EOPNOTSUPP)
        return errno == ENOSPC ? -ENOSPC : -errno;
    /* map the pages too, so that the first commits do not fault; where
     * fallocate is unsupported this is the allocation */
    if (madvise(m->base, len, MADV_POPULATE_WRITE) < 0 && errno != EINVAL)
        return errno == EFAULT ? -ENOSPC : -ENOMEM;
    return 0;
}

/*
 * Make the file of a new generation (a new segment, or a collection's):
 * unnamed (O_TMPFILE) where the filesystem allows, else under a temporary
 * name; holding the role's lock from its first instant; with the mode,
 * owner and group asked for; sized and with f->allocate bytes allocated;
 * mapped into @m. Its descriptor is w->new_fd.
 */
int speculo__file_make(speculo_writer *w, int dirfd, const char *kind, struct new_file *f,
                       struct seg_map *m)
{
    f->tmp[0] = '\0';
    int fd = speculo__role_openat(w, true, dirfd, ".", O_TMPFILE | O_RDWR, f->mode);
    if (fd == -EOPNOTSUPP || fd == -EISDIR || fd == -EINVAL) {
        temp_name(f->tmp, sizeof f->tmp, w->segment, kind);
        fd = speculo__role_openat(w, true, dirfd, f->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW,
                                  f->mode);
        if (fd < 0)
            f->tmp[0] = '\0';
    }
    if (fd < 0)
        return fd;
    struct stat st;
    int rc = speculo__role_lock(fd);
    if (rc == 0 && (fchmod(fd, f->mode) < 0 || fstat(fd, &st) < 0))
        rc = -errno;
    if (rc == 0 && (st.st_uid != f->uid || st.st_gid != f->gid) && fchown(fd, f->uid, f->gid) < 0)
        rc = -errno;
    if (rc == 0 && (ftruncate(fd, (off_t)f->capacity) < 0 || fstat(fd, &st) < 0))
        rc = -errno;
    m->base = NULL;
    if (rc == 0)
        rc = speculo__role_map(fd, &st, true, m);
    if (rc == 0)
        rc = allocate_file(fd, m, f->allocate);
    if (rc < 0)
        speculo__file_abandon(w, dirfd, f, m);
    return rc;
}

void speculo__file_abandon(speculo_writer *w, int dirfd, struct new_file *f, struct seg_map *m)
{
    if (f->tmp[0])
        unlinkat(dirfd, f->tmp, 0);
    f->tmp[0] = '\0';
    speculo__ns_unmap(m);
    speculo__role_close(w, true);
}

/* Give the new file (w->new_fd) the segment's name: only if the name is
 * free (-EEXIST otherwise), or replacing the file there (a collection). */
int speculo__file_link(speculo_writer *w, int dirfd, struct new_file *f, bool replace)
{
    if (!f->tmp[0]) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", w->new_fd);
        const char *at = w->segment;
        if (replace) {
            temp_name(f->tmp, sizeof f->tmp, w->segment, "gc");
            at = f->tmp;
        }
        if (linkat(AT_FDCWD, proc, dirfd, at, AT_SYMLINK_FOLLOW) < 0 &&
            linkat(w->new_fd, "", dirfd, at, AT_EMPTY_PATH) < 0) {
            int rc = -errno;
            f->tmp[0] = '\0';
            return rc;
        }
        if (!replace)
            return 0;
    }
    if (renameat2(dirfd, f->tmp, dirfd, w->segment, replace ? 0 : RENAME_NOREPLACE) < 0)
        return -errno;
    f->tmp[0] = '\0';
    return 0;
}

/* Make a new segment complete (header, index, first records allocated,
 * so that no reader ever finds a page missing) before it has its name,
 * then link it in: a reader never sees a half-made file, a failure leaves
 * nothing behind, and of two writers creating at once exactly one wins
 * (-EEXIST for the other). */
static int create_segment(speculo_writer *w, int dirfd, const struct speculo_writer_options *o)
{
    uint64_t cap = o && o->capacity ? o->capacity : SPECULO_DEFAULT_CAPACITY;
    struct seg_layout l;
    speculo__seg_plan_layout(cap, 0, 0, 0, &l);
    struct new_file f = {
        .capacity = l.capacity,
        .mode = (o && o->mode ? o->mode : 0600) & 0644, /* nobody else may write */
        .uid = geteuid(),
        .gid = getegid(),
    };
    f.allocate =
        l.records_off + PREFAULT_AHEAD < l.capacity ? l.records_off + PREFAULT_AHEAD : l.capacity;
    int rc = speculo__file_make(w, dirfd, "new", &f, &w->map);
    if (rc < 0)
        return rc;
    struct seg_header *h = w_header(w);
    uint64_t uid = o && o->uid ? o->uid : speculo__random_u64();
    speculo__seg_init_header(h, &l, 1, uid, speculo__clock_wall_ns(), cap, speculo__random_u64());
    w->map.lay = l;
    /* names the writer for people; the file is not visible yet */
    atomic_store_explicit(&h->owner, w->token, memory_order_relaxed);
    rc = speculo__file_link(w, dirfd, &f, false);
    if (rc < 0) {
        speculo__file_abandon(w, dirfd, &f, &w->map);
        return rc;
    }
    speculo__role_switch(w);
    w->tail = w->dirty_end = l.records_off; /* a new file: zero past the header */
    w->next_id = 1;
    w->base_capacity = cap;
    w->faulted_end = f.allocate;
    return 0;
}

/* Take the writer role of the file w->fd: its lock decides (see role.c).
 * The owner word only names the writer. */
static int take_role(speculo_writer *w)
{
    int rc = speculo__role_lock(w->fd);
    if (rc < 0)
        return rc;
    /* observes: the previous holder's close (its lock, released after
     * this word, orders what it wrote before); publishes: our name */
    atomic_exchange_explicit(&w_header(w)->owner, w->token, memory_order_acq_rel);
    return 0;
}

static void give_role(speculo_writer *w)
{
    /* publishes: everything we wrote, to the next writer (before the lock
     * that lets it in is released) */
    atomic_store_explicit(&w_header(w)->owner, 0, memory_order_release);
}

/* Re-link the newest version of a name after a takeover: the previous
 * writer may have died between a commit and its index update. */
static int recover_name(speculo_writer *w, const struct rec_view *v)
{
    uint64_t hash = speculo__name_hash(w_header(w)->hash_seed, v->name, v->name_len);
    struct name_slot *slot;
    struct rec_view prev;
    int rc = speculo__index_slot_for(&w->map, v->name, v->name_len, hash, &slot, &prev);
    if (rc < 0)
        return -EBADMSG;
    if (prev.h && prev.id >= v->id)
        return 0;
    if (!prev.h) {
        slot->hash = hash;
        w->names_used++;
    }
    /* publishes: the newest version of the name, before the older one is
     * marked obsolete (as commit does: a get() never finds neither) */
    atomic_store_explicit(&slot->off, v->off, memory_order_release);
    if (prev.h &&
        !atomic_load_explicit(&((struct rec_header *)prev.h)->obsoleted_by, memory_order_relaxed))
        mark_obsolete(w, &prev, v->id);
    return 0;
}

/* Finish a `replaces` that a dead writer committed but did not mark. */
static void recover_replaces(speculo_writer *w, const struct rec_view *v)
{
    struct rec_view old;
    if (v->replaces == 0 || v->replaces >= v->id || speculo__writer_find(w, v->replaces, &old) < 0)
        return;
    if (!atomic_load_explicit(&((struct rec_header *)old.h)->obsoleted_by, memory_order_relaxed))
        mark_obsolete(w, &old, v->id);
}

/*
 * How far past the tail @tail the previous writer of the file may have
 * written (a reservation it gave up or was filling when it died): the end
 * of the last non-zero word at a record boundary, where a later reader
 * could take it for a commit word. Only the ranges the file holds are
 * read: a hole reads as zeros, and touching one on a full tmpfs would
 * raise SIGBUS. A filesystem that cannot tell holes is read to the end.
 */
static uint64_t written_end(const speculo_writer *w, uint64_t tail)
{
    uint64_t end = tail, size = w->map.size, pos = tail;
    while (pos < size) {
        off_t data = lseek(w->fd, (off_t)pos, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break; /* nothing but a hole to the end */
        off_t hole = data < 0 ? -1 : lseek(w->fd, data, SEEK_HOLE);
        uint64_t from = data < 0 ? pos : (uint64_t)data;
        uint64_t to = hole < 0 || (uint64_t)hole > size ? size : (uint64_t)hole;
        for (uint64_t p = align_up(from, REC_ALIGN); p + sizeof(uint64_t) <= to; p += REC_ALIGN) {
            struct rec_header *r = (struct rec_header *)(w->map.base + p);
            /* observes: our own file (we hold the role; its last writer is gone) */
            if (atomic_load_explicit(&r->commit, memory_order_relaxed))
                end = p + sizeof(uint64_t);
        }
        pos = to > from ? to : size;
    }
    return end;
}

/*
 * Rebuild the writer's state from the file: walk every committed record
 * (checking each one), rewrite the id table, re-link names, recount. The
 * walk stops at the first commit word that is 0: that is where a dead
 * writer's half-written record, if any, starts, and where we write next.
 * Costs O(records); it runs once per open.
 */
static int recover(speculo_writer *w)
{
    struct seg_header *h = w_header(w);
    uint64_t *table = seg_table(&w->map);
    uint64_t pos = w->map.lay.records_off, n = 0, last = 0;
    w->dead_bytes = w->obsolete_count = 0;
    for (;;) {
        struct rec_view v;
        int rc = speculo__rec_check(w->map.base, &w->map.lay, pos, &v);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        /* ids increase; one of 2^63 or more is corruption (the next id
         * would wrap to 0 and ids would go backwards); names go into the
         * index, and must be names */
        if (v.id <= last || v.id >= UINT64_MAX / 2 || n >= w->map.lay.table_slots ||
            (v.name && !speculo__chunk_name_valid(v.name, v.name_len)))
            return -EBADMSG;
        last = v.id;
        table[n++] = pos;
        if (atomic_load_explicit(&((struct rec_header *)v.h)->obsoleted_by, memory_order_relaxed)) {
            w->dead_bytes += v.len;
            w->obsolete_count++;
        }
        pos += v.len;
    }
    w->tail = pos;
    w->dirty_end = written_end(w, pos);
    w->nrecords = n;
    /* The next id follows every id ever used: the records', the published
     * last id, and those of chunks that earlier collections dropped. Values
     * from the header are bounded so a corrupt one cannot exhaust ids. */
    uint64_t hdr_last = atomic_load_explicit(&h->last_id, memory_order_relaxed);
    w->next_id = last + 1;
    if (hdr_last >= w->next_id && hdr_last < UINT64_MAX / 2)
        w->next_id = hdr_last + 1;
    if (h->min_next_id > w->next_id && h->min_next_id < UINT64_MAX / 2)
        w->next_id = h->min_next_id;
    w->names_used = 0;
    struct name_slot *slots = seg_index(&w->map);
    for (uint64_t i = 0; i < h->index_slots; i++)
        w->names_used += atomic_load_explicit(&slots[i].off, memory_order_relaxed) != 0;
    for (uint64_t i = 0; i < n; i++) {
        struct rec_view v;
        speculo__rec_check(w->map.base, &w->map.lay, table[i], &v);
        if (v.name && recover_name(w, &v) < 0)
            return -EBADMSG;
        recover_replaces(w, &v);
    }
    /* The capacity asked for at creation never exceeds the file (the
     * collector never makes a file smaller): a larger value is corruption,
     * and must not make the next collection fill /dev/shm. */
    w->base_capacity =
        h->base_capacity && h->base_capacity <= w->map.size ? h->base_capacity : w->map.size;
    speculo__writer_publish_totals(w);
    w->faulted_end = w->tail & ~(uint64_t)(SEG_PAGE - 1); /* earlier pages are in use */
    return 0;
}

/* Map the existing segment and take it over. 1 means "the name now points
 * to another file, try again". */
static int open_existing(speculo_writer *w, int dirfd)
{
    struct stat st;
    int fd = speculo__role_openat(w, false, dirfd, w->segment, O_RDWR | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0)
        return speculo__ns_open_error(-fd);
    int rc = speculo__ns_check_segment(fd, true, &st);
    if (rc == 0)
        rc = speculo__role_map(fd, &st, false, &w->map);
    if (rc < 0) {
        speculo__role_close(w, false);
        return rc;
    }
    rc = take_role(w);
    if (rc == 0 && atomic_load_explicit(&w_header(w)->superseded, memory_order_acquire)) {
        /* Switched or removed since we opened it, or a GC died between
         * marking and renaming: only in that last case is it still ours. */
        if (speculo__ns_same_file(dirfd, w->segment, &w->map) == 1)
            atomic_store_explicit(&w_header(w)->superseded, 0, memory_order_release);
        else
            rc = 1;
    }
    /* An older library, or a failure, may have left pages that readers
     * look at unallocated: allocate them now, or fail without a SIGBUS. */
    if (rc == 0)
        rc = allocate_file(fd, &w->map,
                           w->map.lay.records_off + SEG_PAGE <= w->map.size
                               ? w->map.lay.records_off + SEG_PAGE
                               : w->map.size);
    if (rc == 0)
        rc = recover(w);
    if (rc != 0) {
        if (rc != -EBUSY)
            give_role(w);
        speculo__ns_unmap(&w->map);
        speculo__role_close(w, false);
    }
    return rc;
}

/* Open the writer @w of its segment in the directory it was given. */
static int writer_start(speculo_writer *w, const struct speculo_writer_options *opts)
{
    int dirfd;
    int rc = speculo__dir_open(&w->dir, true, &dirfd);
    if (rc < 0)
        return rc;
    for (int attempt = 0; attempt < OPEN_ATTEMPTS; attempt++) {
        rc = open_existing(w, dirfd);
        if (rc == -ENOENT) {
            rc = create_segment(w, dirfd, opts);
            if (rc == -EEXIST)
                rc = 1;
        }
        if (rc != 1)
            break;
    }
    if (rc == 1)
        rc = -EBUSY; /* the name kept changing under us: someone else is writing */
    if (rc == 0)     /* we hold the role: what other writers left is theirs no more */
        speculo__temporaries_remove(dirfd, w->segment, false, NULL, NULL);
    close(dirfd);
    if (rc == 0)
        w->barrier_registered = speculo__wait_register_writer();
    return rc;
}

int speculo_writer_open_at(const char *dir, const char *segment,
                           const struct speculo_writer_options *opts, speculo_writer **out)
{
    if (!out)
        return -EINVAL;
    int rc = speculo_segment_name_check(segment);
    if (rc == 0)
        rc = validate_options(opts);
    if (rc < 0)
        return rc;
    speculo_writer *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    memcpy(w->segment, segment, strlen(segment) + 1); /* fits: name checked */
    w->token = speculo__owner_self_token();
    apply_options(w, opts);
    rc = speculo__dir_get(dir, &w->dir);
    if (rc == 0) {
        speculo__role_register(w);
        rc = writer_start(w, opts);
        if (rc < 0)
            speculo__role_unregister(w);
    }
    if (rc < 0) {
        speculo__dir_put(&w->dir);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int speculo_writer_open(const char *segment, const struct speculo_writer_options *opts,
                        speculo_writer **out)
{
    return speculo_writer_open_at(NULL, segment, opts, out);
}

void speculo_writer_close(speculo_writer *w)
{
    if (!w)
        return;
    if (!w->forked) { /* a forked child's copy holds no role: the parent's file */
        speculo__writer_publish_totals(w);
        give_role(w);
    }
    speculo__ns_unmap(&w->map);
    speculo__role_unregister(w); /* after the owner word: this releases the lock */
    speculo__dir_put(&w->dir);
    free(w);
}

/* ------------------------------------------------------------------ */
/* Writing.                                                            */

/* Give up the reservation (another alloc, a failed put): its payload may
 * have been written, so commit words up to its end can hold anything. */
static void drop_reservation(speculo_writer *w)
{
    if (!w->reserved)
        return;
    uint64_t end = w->tail + REC_HEADER_SIZE + w->res_size;
    if (end > w->dirty_end)
        w->dirty_end = end;
    w->reserved = false;
}

/* The slow half of reserve(): collect when the record (and the next commit
 * word) would not fit, populate the pages it will touch. */
static __attribute__((noinline)) int make_room(speculo_writer *w, uint64_t need)
{
    bool fits = need <= w->map.size - w->tail && w->nrecords < w->map.lay.table_slots &&
                w->names_used < w->map.lay.index_slots / 2;
    if (!fits) {
        int rc = speculo__writer_collect(w, need);
        if (rc < 0)
            return rc;
    }
    if (w->tail + need > w->faulted_end)
        return speculo__writer_prefault(w, w->tail + need);
    return 0;
}

/* Reserve room at the tail for a chunk of @size; its payload goes at
 * w->map.base + w->tail + REC_HEADER_SIZE. Inlined into alloc and put: one
 * comparison each way in the common case. */
static inline __attribute__((always_inline)) int reserve(speculo_writer *w, size_t size)
{
    if (w->forked)
        return -EBUSY;
    if ((uint64_t)size > MAX_CHUNK_SIZE)
        return -EFBIG;
    drop_reservation(w);
    /* room for the record with the longest name, and the next commit word
     * (faulted_end never passes the end of the mapping) */
    uint64_t need = rec_length(size, NAME_RESERVE - 1) + REC_ALIGN;
    if (w->tail + need > w->faulted_end || w->nrecords >= w->map.lay.table_slots ||
        w->names_used >= w->map.lay.index_slots / 2) {
        int rc = make_room(w, need);
        if (rc < 0)
            return rc;
    }
    w->reserved = true;
    w->res_size = size;
    /* The record's first line is the one its readers poll, so it sits in
     * their caches: a store to it now (the size, rewritten at commit)
     * brings the line back while the payload is written and the clock read,
     * instead of after them. Its commit word stays 0: nothing is published. */
    ((struct rec_header *)(w->map.base + w->tail))->size = size;
    return 0;
}

int speculo_writer_alloc(speculo_writer *w, size_t size, void **data)
{
    if (!w || !data)
        return -EINVAL;
    int rc = reserve(w, size);
    if (rc < 0)
        return rc;
    *data = w->map.base + w->tail + REC_HEADER_SIZE;
    return 0;
}

static int64_t expiry(int64_t now, int64_t ttl)
{
    if (ttl == 0)
        return 0;
    return ttl > INT64_MAX - now ? INT64_MAX : now + ttl;
}

/* What a commit writes besides the payload, checked. */
struct commit_meta {
    const char *name; /* NULL: unnamed */
    uint32_t name_len;
    bool same_name; /* the name of the last named commit (w->name) */
    uint64_t id;
    int64_t committed_ns, expires_ns;
    const struct rec_view *replaced; /* a live chunk to obsolete, or NULL */
};

/* The name of a commit, checked and measured in one pass; the name of the
 * last named commit was, then. */
static int commit_name(const speculo_writer *w, struct commit_meta *m, const char *name)
{
    if (!name)
        return 0;
    m->name = name;
    if (w->name_slot && strcmp(name, w->name) == 0) {
        m->name_len = w->name_len;
        m->same_name = true;
        return 0;
    }
    ssize_t n = speculo__chunk_name_len(name);
    if (n < 0)
        return (int)n;
    m->name_len = (uint32_t)n;
    return 0;
}

/* The slot of the commit's name and the name's newest record (prev->h
 * NULL if none): for the name of the last named commit, that commit's slot
 * and record, as this writer wrote them, while the slot still points there
 * (only this writer stores slots: another value is a damaged file); else by
 * a probe, whose slot is kept for next time. */
static int commit_slot(speculo_writer *w, const struct commit_meta *m, struct name_slot **slot,
                       uint64_t *hash, struct rec_view *prev)
{
    /* observes: our own last store to the slot */
    if (m->same_name &&
        atomic_load_explicit(&w->name_slot->off, memory_order_relaxed) == w->name_rec.off) {
        *prev = w->name_rec;
        *slot = w->name_slot;
        *hash = w->name_hash;
        return 0;
    }
    *hash = speculo__name_hash(w_header(w)->hash_seed, m->name, m->name_len);
    if (speculo__index_slot_for(&w->map, m->name, m->name_len, *hash, slot, prev) < 0)
        return -EBADMSG;
    w->name_slot = NULL; /* until the commit stores the slot */
    memcpy(w->name, m->name, m->name_len + 1);
    w->name_len = m->name_len;
    w->name_hash = *hash;
    return 0;
}

/* Everything in the commit options that can fail, checked before anything
 * is written; @replaced receives the chunk to obsolete. */
static int check_commit(speculo_writer *w, const struct speculo_commit_options *o,
                        struct commit_meta *m, struct rec_view *replaced)
{
    if (!o)
        return 0;
    if (o->ttl_ns < 0)
        return -EINVAL;
    int rc = commit_name(w, m, o->name);
    if (rc < 0)
        return rc;
    if (o->replaces) {
        int64_t now = m->committed_ns;
        if (speculo__writer_find(w, o->replaces, replaced) < 0 ||
            !speculo__rec_live(replaced, &now))
            return -ENOENT;
        m->replaced = replaced;
    }
    m->expires_ns = expiry(m->committed_ns, o->ttl_ns);
    return 0;
}

/*
 * Publish the reserved chunk: the record, then (release) its commit word;
 * then its name in the index, the obsoletions, the record count, the
 * wake-up. Inlined into both callers: it is the commit path.
 */
static inline __attribute__((always_inline)) int commit_record(speculo_writer *w,
                                                               const struct commit_meta *m)
{
    struct seg_header *h = w_header(w);
    const char *name = m->name;
    uint32_t name_len = m->name_len;
    uint64_t hash = 0;
    struct name_slot *slot = NULL;
    struct rec_view prev; /* its other fields are read only once h is set */
    prev.h = NULL;
    prev.id = 0;
    if (name) {
        int64_t now = m->committed_ns;
        if (commit_slot(w, m, &slot, &hash, &prev) < 0)
            return -EBADMSG;
        if (prev.h && !speculo__rec_live(&prev, &now))
            prev.h = NULL;
    }
    uint64_t off = w->tail, len = rec_length(w->res_size, name_len), cid = m->id;
    uint64_t obsolete_before = w->obsolete_count;
    struct rec_header *r = (struct rec_header *)(w->map.base + off);
    r->id = cid;
    r->size = w->res_size;
    r->committed_ns = m->committed_ns;
    r->expires_ns = m->expires_ns;
    uint64_t replaces = m->replaced ? m->replaced->id : prev.h ? prev.id : 0;
    r->replaces = replaces;
    /* nothing reads a record before its commit word: relaxed clears the
     * leftovers of an abandoned reservation */
    atomic_store_explicit(&r->obsoleted_by, 0, memory_order_relaxed);
    r->name_len = name_len;
    r->name_hash = (uint32_t)hash;
    if (name)
        memcpy((char *)r + REC_HEADER_SIZE + align_up(w->res_size, PAYLOAD_ALIGN), name,
               name_len + 1);
    if (off + len < w->dirty_end && w->map.size - (off + len) >= REC_HEADER_SIZE) {
        struct rec_header *next = (struct rec_header *)(w->map.base + off + len);
        /* ordered before our release below: the next commit word reads 0 */
        atomic_store_explicit(&next->commit, 0, memory_order_relaxed);
    }
    /* publishes: the record, its payload and name (and a cleared next word) */
    atomic_store_explicit(&r->commit, len, memory_order_release);
    /* read only below nrecords, published below */
    seg_table(&w->map)[w->nrecords] = off;

    if (slot) {
        if (!prev.h && atomic_load_explicit(&slot->off, memory_order_relaxed) == 0) {
            slot->hash = hash;
            /* informational */
            atomic_store_explicit(&h->names_used, ++w->names_used, memory_order_relaxed);
        }
        /* publishes: this record as the newest version of its name */
        atomic_store_explicit(&slot->off, off, memory_order_release);
        w->name_slot = slot;
        w->name_rec = (struct rec_view){
            .h = r,
            .off = off,
            .len = len,
            .name = (const char *)r + REC_HEADER_SIZE + align_up(w->res_size, PAYLOAD_ALIGN),
            .id = cid,
            .size = w->res_size,
            .replaces = replaces,
            .committed_ns = m->committed_ns,
            .expires_ns = m->expires_ns,
            .name_len = name_len,
        };
        if (prev.h)
            mark_obsolete(w, &prev, cid);
    }
    if (m->replaced && !atomic_load_explicit(&((struct rec_header *)m->replaced->h)->obsoleted_by,
                                             memory_order_relaxed))
        mark_obsolete(w, m->replaced, cid);
    w->tail = off + len;
    w->nrecords++;
    w->next_id = cid + 1;
    w->reserved = false;
    bool obsoleted = w->obsolete_count != obsolete_before;
    if (obsoleted)
        publish_obsoletions(w);
    /* informational, on a line no polling reader reads: where the records
     * end, the newest id and its time (describe, check, takeover) */
    atomic_store_explicit(&h->committed_end, w->tail, memory_order_relaxed);
    atomic_store_explicit(&h->last_id, cid, memory_order_relaxed);
    atomic_store_explicit(&h->last_commit_ns, m->committed_ns, memory_order_relaxed);
    /* publishes: this record's id table entry (get_id() searches the table
     * up to nrecords) */
    atomic_store_explicit(&h->nrecords, w->nrecords, memory_order_release);
    speculo__wake_waiters_after_commit(h, w->barrier_registered);
    uint64_t used = w->tail - h->records_off;
    if (obsoleted && w->gc_dead_percent < 100 && w->dead_bytes > w->gc_min_dead &&
        w->dead_bytes * 100 > used * w->gc_dead_percent)
        (void)speculo__writer_collect(w, 0); /* the commit stands; a failure retries later */
    return 0;
}

/* Commit the reservation with @opts. A commit without options (unnamed,
 * no TTL, nothing replaced) is the common case: commit_record() is inlined
 * with those parts compiled out. */
static inline __attribute__((always_inline)) int
commit_reserved(speculo_writer *w, const struct speculo_commit_options *opts, uint64_t *id)
{
    struct commit_meta m = {.id = w->next_id, .committed_ns = speculo__clock_wall_ns()};
    int rc;
    if (!opts) {
        rc = commit_record(w, &m);
    } else {
        struct rec_view replaced;
        rc = check_commit(w, opts, &m, &replaced);
        if (rc == 0)
            rc = commit_record(w, &m);
    }
    if (rc == 0 && id)
        *id = m.id;
    return rc;
}

int speculo_writer_commit(speculo_writer *w, const struct speculo_commit_options *opts,
                          uint64_t *id)
{
    if (!w || !w->reserved)
        return -EINVAL;
    return commit_reserved(w, opts, id);
}

int speculo_writer_commit_replica(speculo_writer *w, const struct speculo_replica *c)
{
    if (!w || !c || !w->reserved || c->id < w->next_id || c->id >= UINT64_MAX / 2 ||
        c->committed_ns <= 0 || c->expires_ns < 0)
        return -EINVAL;
    struct commit_meta m = {
        .id = c->id,
        .committed_ns = c->committed_ns,
        .expires_ns = c->expires_ns,
    };
    int rc = commit_name(w, &m, c->name);
    if (rc < 0)
        return rc;
    /* the origin obsoleted it: here too, if it is still live here (the
     * clock is read only for a chunk that can expire) */
    struct rec_view replaced;
    int64_t now = 0;
    if (c->replaces && c->replaces < c->id &&
        speculo__writer_find(w, c->replaces, &replaced) == 0 && speculo__rec_live(&replaced, &now))
        m.replaced = &replaced;
    return commit_record(w, &m);
}

uint64_t speculo_writer_last_id(const speculo_writer *w)
{
    return w ? w->next_id - 1 : 0;
}

int speculo_writer_put(speculo_writer *w, const void *data, size_t size,
                       const struct speculo_commit_options *opts, uint64_t *id)
{
    if (!w || (!data && size))
        return -EINVAL;
    int rc = reserve(w, size);
    if (rc < 0)
        return rc;
    if (size)
        memcpy(w->map.base + w->tail + REC_HEADER_SIZE, data, size);
    rc = commit_reserved(w, opts, id);
    if (rc < 0)
        drop_reservation(w);
    return rc;
}

int speculo_writer_obsolete(speculo_writer *w, uint64_t id)
{
    if (!w)
        return -EINVAL;
    if (w->forked)
        return -EBUSY;
    struct rec_view v;
    int64_t now = 0;
    if (id == 0 || speculo__writer_find(w, id, &v) < 0 || !speculo__rec_live(&v, &now))
        return -ENOENT;
    mark_obsolete(w, &v, OBSOLETE_EXPLICIT);
    speculo__writer_publish_totals(w);
    /* readers in speculo_reader_watch() wait for this; no one else wakes
     * for it (speculo_reader_wait() goes back to sleep) */
    speculo__wake_waiters_after_commit(w_header(w), w->barrier_registered);
    return 0;
}
