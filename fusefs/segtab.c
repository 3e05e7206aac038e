/*
 * The segments, as the filesystem numbers them. Each *incarnation* (a name
 * plus the segment's uid and creation time, which the collector keeps; a
 * file that cannot be read as a segment: its device and inode) gets a
 * slot, the high bits of its inode numbers: a GC switch keeps the slot, a
 * segment created again gets a new one.
 *
 * Learning which incarnation a file holds costs a reader open and an O(n)
 * speculo_reader_info(): it is done only when an fstatat() shows another
 * file under the name. While inotify watches the directory (notify.c), the
 * answer is kept ("verified") until an event names the segment: an
 * operation then makes no system call. Every chunk a pooled reader returns
 * is checked to come from the incarnation asked for (seg_reads()), which
 * covers the instant between a change and its event.
 *
 * One lock, S.lock (segtab_lock()), guards the table and every
 * incarnation's state, file, reader pool and held files (holds.c).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfs.h"

static struct {
    pthread_mutex_t lock;
    char dir[PATH_MAX];
    struct sfs_seg **all; /* every incarnation, all[slot - 1] */
    size_t nall, capall;
    struct sfs_seg **cur; /* the current incarnations, one per name */
    size_t ncur, capcur;
    uint64_t epoch; /* +1 at every change reported by inotify */
    int verify_on;  /* inotify watches the directory: "verified" may be kept */
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

int segtab_init(const char *dir)
{
    if (strlen(dir) >= sizeof S.dir)
        return -ENAMETOOLONG;
    strcpy(S.dir, dir);
    return 0;
}

const char *segtab_dir(void)
{
    return S.dir;
}

void segtab_lock(void)
{
    pthread_mutex_lock(&S.lock);
}

void segtab_unlock(void)
{
    pthread_mutex_unlock(&S.lock);
}

/* Locked. Close the pooled readers, which would follow the name to
 * whatever is created there next, and let the held files go. */
static void drop_files(struct sfs_seg *seg)
{
    for (unsigned k = 0; k < seg->npool; k++)
        g_reader_close(seg->pool[k]);
    seg->npool = 0;
    holds_drop(seg);
}

void segtab_fini(void)
{
    for (size_t i = 0; i < S.nall; i++) {
        drop_files(S.all[i]);
        pthread_rwlock_destroy(&S.all[i]->entries_lock);
        free(S.all[i]->name);
        free(S.all[i]);
    }
    free(S.all);
    free(S.cur);
    S.all = S.cur = NULL;
    S.nall = S.capall = S.ncur = S.capcur = 0;
}

struct sfs_seg *segtab_get(uint64_t slot)
{
    struct sfs_seg *seg = NULL;

    pthread_mutex_lock(&S.lock);
    if (slot >= 1 && slot <= S.nall)
        seg = S.all[slot - 1];
    pthread_mutex_unlock(&S.lock);
    return seg;
}

/* The segment file @name, not following a symlink; -ENOENT unless it is a
 * regular file (the library refuses anything else anyway). */
static int stat_file(const char *name, struct stat *st)
{
    char path[PATH_MAX];

    if (snprintf(path, sizeof path, "%s/%s", S.dir, name) >= (int)sizeof path)
        return -ENAMETOOLONG;
    if (fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    return S_ISREG(st->st_mode) ? 0 : -ENOENT;
}

/* Locked. The current incarnation of @name, and its index in S.cur. */
static struct sfs_seg *find_cur(const char *name, size_t *index)
{
    for (size_t i = 0; i < S.ncur; i++)
        if (strcmp(S.cur[i]->name, name) == 0) {
            if (index != NULL)
                *index = i;
            return S.cur[i];
        }
    return NULL;
}

/* Locked. The current @seg is gone from its name. */
static void mark_dead(struct sfs_seg *seg)
{
    size_t i;

    if (find_cur(seg->name, &i) == seg)
        S.cur[i] = S.cur[--S.ncur];
    seg->state = SEG_DEAD;
    seg->verified = 0;
    drop_files(seg);
}

/* Locked. @st is what the file under the name looks like now, learnt
 * after @epoch0 was read: kept as verified only if no inotify event came
 * in between (the event may be about a change after the stat). */
static void set_file(struct sfs_seg *seg, const struct stat *st, uint64_t epoch0)
{
    seg->st = *st;
    seg->verified = S.verify_on && S.epoch == epoch0 && !seg->bad && seg->state == SEG_CURRENT;
}

/* What a file holds: a readable segment (uid, created_ns), or not. */
struct identity {
    int bad;
    uint64_t uid;
    int64_t created_ns;
    dev_t dev;
    ino_t ino;
};

/* Writers first: a notifier taking the names the kernel holds must not
 * wait for a gap in a stream of lookups (glibc's default lets readers
 * starve it). Nobody takes it twice, as that kind requires. */
static int init_entries_lock(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t a;
    int rc = pthread_rwlockattr_init(&a);

    if (rc == 0)
        rc = pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (rc == 0)
        rc = pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
    return rc;
}

/* Locked. The incarnation of @name that @id tells: one seen before (after
 * a GC switch, or a file briefly missing), else a new one. It is made the
 * current one of its name. NULL when out of memory (or slots). */
static struct sfs_seg *incarnation(const char *name, const struct identity *id)
{
    struct sfs_seg *seg = NULL, *other;

    for (size_t i = S.nall; seg == NULL && i-- > 0;) {
        struct sfs_seg *s = S.all[i];
        if (s->bad == id->bad && strcmp(s->name, name) == 0 &&
            (id->bad ? s->st.st_dev == id->dev && s->st.st_ino == id->ino
                     : s->uid == id->uid && s->created_ns == id->created_ns))
            seg = s;
    }
    if (seg == NULL) {
        if (S.nall >= SFS_SLOT_MAX || sfs_grow(&S.all, &S.capall, S.nall + 1, sizeof *S.all) != 0 ||
            (seg = calloc(1, sizeof *seg)) == NULL)
            return NULL;
        if ((seg->name = strdup(name)) == NULL || init_entries_lock(&seg->entries_lock) != 0) {
            free(seg->name);
            free(seg);
            return NULL;
        }
        seg->bad = id->bad;
        seg->uid = id->uid;
        seg->created_ns = id->created_ns;
        seg->state = SEG_REAPED; /* not current yet: nothing to take back */
        S.all[S.nall++] = seg;
        seg->slot = S.nall;
    }
    other = find_cur(name, NULL);
    if (other == seg)
        return seg;
    if (sfs_grow(&S.cur, &S.capcur, S.ncur + 1, sizeof *S.cur) != 0)
        return NULL;
    if (other != NULL)
        mark_dead(other);
    S.cur[S.ncur++] = seg;
    seg->state = SEG_CURRENT;
    return seg;
}

/* Open the file under @name as a segment and learn its identity. On
 * success *r is a reader left for the pool (or NULL). A file whose records
 * cannot all be read (speculo_reader_info() scans them) is bad. */
static int learn(const char *name, const struct stat *st, struct identity *id, speculo_reader **r)
{
    struct speculo_segment_info info;
    struct speculo_segment_ident ident;
    int rc = g_reader_open(name, r);

    *id = (struct identity){.dev = st->st_dev, .ino = st->st_ino};
    if (rc == -ENOENT)
        return rc;
    if (rc == 0 && (rc = g_info(*r, &info)) == 0)
        rc = speculo_reader_ident(*r, &ident);
    if (rc == 0) {
        id->uid = ident.uid;
        id->created_ns = ident.created_ns;
        return 0;
    }
    fuse_log(FUSE_LOG_DEBUG, "speculofs: %s: %s\n", name, speculo_strerror(rc));
    g_reader_close(*r);
    *r = NULL;
    id->bad = 1;
    return 0;
}

/* Locked. Keep @r in the pool of @seg if there is room; else it is
 * returned for the caller to close. */
static speculo_reader *pool_put(struct sfs_seg *seg, speculo_reader *r)
{
    if (r != NULL && seg->state == SEG_CURRENT && seg->npool < SFS_POOL_MAX) {
        seg->pool[seg->npool++] = r;
        return NULL;
    }
    return r;
}

static int resolve(const char *name, const struct stat *st, uint64_t epoch0, struct sfs_seg **out)
{
    struct identity id;
    speculo_reader *r = NULL;
    int rc = learn(name, st, &id, &r);

    if (rc != 0)
        return rc;
    pthread_mutex_lock(&S.lock);
    *out = incarnation(name, &id);
    if (*out != NULL) {
        set_file(*out, st, epoch0);
        r = pool_put(*out, r);
    }
    pthread_mutex_unlock(&S.lock);
    g_reader_close(r);
    return *out != NULL ? 0 : -ENOMEM;
}

/* The current incarnation of segment @name, and its file's stat: the one
 * verified; else the file is looked at, and learnt if it is not the one
 * last seen (its incarnation found again, or new). An unreadable file is
 * looked at every time: it may become readable (a chmod, say). -ENOENT when
 * no file is there: the incarnation that was there died. */
static int current(const char *name, struct sfs_seg **out, struct stat *st)
{
    struct sfs_seg *seg;
    uint64_t epoch0;
    int rc, known = 0;

    pthread_mutex_lock(&S.lock);
    seg = find_cur(name, NULL);
    if (seg != NULL && seg->verified) {
        *st = seg->st;
        *out = seg;
        pthread_mutex_unlock(&S.lock);
        return 0;
    }
    epoch0 = S.epoch;
    pthread_mutex_unlock(&S.lock);
    rc = stat_file(name, st);
    pthread_mutex_lock(&S.lock);
    seg = find_cur(name, NULL);
    if (rc == -ENOENT && seg != NULL)
        mark_dead(seg);
    if (rc == 0 && seg != NULL && !seg->bad && seg->st.st_dev == st->st_dev &&
        seg->st.st_ino == st->st_ino) {
        set_file(seg, st, epoch0);
        *out = seg;
        known = 1;
    }
    pthread_mutex_unlock(&S.lock);
    return rc == 0 && !known ? resolve(name, st, epoch0, out) : rc;
}

int segtab_lookup(const char *name, struct sfs_seg **out, struct stat *st)
{
    int rc = speculo_segment_name_check(name);

    if (rc != 0)
        return rc == -ENAMETOOLONG ? rc : -ENOENT;
    return current(name, out, st);
}

/* 0 when @seg is still the incarnation under its name (and fills @st),
 * -ENOENT when it was removed or replaced. */
int seg_check(struct sfs_seg *seg, struct stat *st)
{
    struct sfs_seg *now = NULL;
    int rc = 0;

    pthread_mutex_lock(&S.lock);
    if (seg->verified) { /* verified: current, no need to look for it */
        *st = seg->st;
        now = seg;
    }
    pthread_mutex_unlock(&S.lock);
    if (now == NULL)
        rc = current(seg->name, &now, st);
    return rc == 0 && now != seg ? -ENOENT : rc;
}

/* Did the chunks @r returned last come from @seg? A reader follows the
 * segment's name, possibly to a segment created there since: then the
 * name is looked at again next time. */
int seg_reads(struct sfs_seg *seg, const speculo_reader *r)
{
    struct speculo_segment_ident id;

    if (speculo_reader_ident(r, &id) == 0 && !seg->bad && id.uid == seg->uid &&
        id.created_ns == seg->created_ns)
        return 1;
    pthread_mutex_lock(&S.lock);
    seg->verified = 0;
    pthread_mutex_unlock(&S.lock);
    return 0;
}

/* A reader on @seg, from the pool or new; give it back with
 * seg_reader_give(). -EIO for a segment that cannot be read. */
int seg_reader_take(struct sfs_seg *seg, speculo_reader **out)
{
    *out = NULL;
    if (seg->bad)
        return -EIO;
    pthread_mutex_lock(&S.lock);
    if (seg->npool > 0)
        *out = seg->pool[--seg->npool];
    pthread_mutex_unlock(&S.lock);
    return *out != NULL ? 0 : g_reader_open(seg->name, out);
}

/* @rc is what the last call on @r returned: a reader that faulted is
 * closed, never pooled again. */
void seg_reader_give(struct sfs_seg *seg, speculo_reader *r, int rc)
{
    if (r != NULL && rc != SFS_FAULT) {
        pthread_mutex_lock(&S.lock);
        r = pool_put(seg, r);
        pthread_mutex_unlock(&S.lock);
    }
    g_reader_close(r);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the segment files now in the directory, sorted (not the
 * reserved dot names, nor what is not a regular file). */
int segtab_list(char ***names, size_t *count)
{
    DIR *d = opendir(S.dir);
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    struct stat st;

    if (d == NULL)
        return -errno;
    while ((de = readdir(d)) != NULL) {
        if (speculo_segment_name_check(de->d_name) != 0 ||
            (de->d_type != DT_REG && (de->d_type != DT_UNKNOWN || stat_file(de->d_name, &st) != 0)))
            continue;
        if (sfs_grow(&v, &cap, n + 1, sizeof *v) != 0 || (v[n] = strdup(de->d_name)) == NULL) {
            closedir(d);
            segtab_free_list(v, n);
            return -ENOMEM;
        }
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_names);
    *names = v;
    *count = n;
    return 0;
}

void segtab_free_list(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* ------------------------------------------------------------------ */
/* What inotify reports                                                */

/* An event about @name (NULL: about anything, e.g. the queue overflowed):
 * what was verified of it is no longer. Called as soon as the event is
 * read, before segtab_recheck(). */
void segtab_changed(const char *name)
{
    struct sfs_seg *seg;

    pthread_mutex_lock(&S.lock);
    S.epoch++;
    if (name == NULL)
        for (size_t i = 0; i < S.ncur; i++)
            S.cur[i]->verified = 0;
    else if ((seg = find_cur(name, NULL)) != NULL)
        seg->verified = 0;
    pthread_mutex_unlock(&S.lock);
}

/* inotify is (1) or is no longer (0) watching the directory. */
void segtab_verify_enable(int on)
{
    pthread_mutex_lock(&S.lock);
    S.verify_on = on;
    pthread_mutex_unlock(&S.lock);
    segtab_changed(NULL);
}

/* After an inotify event about @name: is its current incarnation still
 * under it? A removed or replaced one is marked dead (segtab_take_dead()
 * then finds it); one still there (a GC switch, a chmod) is verified again,
 * and returned in *attr_changed when its owner or mode changed. A file
 * under a name with no current incarnation is left for the first lookup: no
 * slot is spent on a segment nobody looks at. */
int segtab_recheck(const char *name, struct sfs_seg **attr_changed)
{
    struct sfs_seg *cur;
    struct identity id;
    struct stat st, old;
    speculo_reader *r = NULL;
    uint64_t epoch0;
    int rc;

    *attr_changed = NULL;
    pthread_mutex_lock(&S.lock);
    cur = find_cur(name, NULL);
    if (cur != NULL)
        old = cur->st;
    epoch0 = S.epoch;
    pthread_mutex_unlock(&S.lock);
    if (cur == NULL || cur->bad)
        return 0;
    rc = stat_file(name, &st);
    if (rc == 0 && (st.st_dev != old.st_dev || st.st_ino != old.st_ino))
        rc = learn(name, &st, &id, &r);
    else if (rc == 0)
        id = (struct identity){.uid = cur->uid, .created_ns = cur->created_ns};
    pthread_mutex_lock(&S.lock);
    if (cur->state != SEG_CURRENT || (rc != 0 && rc != -ENOENT)) {
        /* died meanwhile, or cannot tell */
    } else if (rc == -ENOENT || id.bad || id.uid != cur->uid || id.created_ns != cur->created_ns) {
        mark_dead(cur);
    } else {
        if (cur->st.st_uid != st.st_uid || cur->st.st_gid != st.st_gid ||
            sfs_allowed(cur->st.st_mode, 0555) != sfs_allowed(st.st_mode, 0555))
            *attr_changed = cur; /* the owner or mode a chunk takes from the file */
        set_file(cur, &st, epoch0);
        r = pool_put(cur, r);
    }
    pthread_mutex_unlock(&S.lock);
    g_reader_close(r);
    return rc == -ENOENT ? 0 : rc;
}

/* The incarnations that died since the last call: what the kernel may
 * cache of them is to be taken back (notify.c), once. */
size_t segtab_take_dead(struct sfs_seg ***out)
{
    struct sfs_seg **v = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&S.lock);
    for (size_t i = 0; i < S.nall; i++) {
        if (S.all[i]->state != SEG_DEAD || sfs_grow(&v, &cap, n + 1, sizeof *v) != 0)
            continue;
        S.all[i]->state = SEG_REAPED;
        v[n++] = S.all[i];
    }
    pthread_mutex_unlock(&S.lock);
    *out = v;
    return n;
}
