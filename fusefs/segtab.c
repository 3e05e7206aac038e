/*
 * The segments of the segment directory, as the filesystem numbers them.
 *
 * Each *incarnation* of a segment gets a slot, the high bits of all its
 * inode numbers. An incarnation is a name plus the segment's uid and
 * creation time (kept by the garbage collector), so a GC switch keeps the
 * slot, and a segment removed and created again under the same name gets a
 * new one: its chunk 1 is not the old chunk 1, and must not inherit its
 * inode (nor the kernel's page cache of it). A file that cannot be read as
 * a segment is an incarnation of its own, told by its (device, inode).
 *
 * Learning which incarnation a file holds costs a reader open and an O(n)
 * speculo_reader_info(), so it is done only when the file under a name is
 * not the one last seen: at a GC switch, a removal, a creation. Whether it
 * is, an fstatat() tells; and while inotify watches the segment directory
 * (notify.c), the answer is kept until an event names the segment
 * ("verified"), so that an operation costs no system call at all. Readers
 * follow a name by themselves: every chunk a pooled reader returns is
 * checked to come from the incarnation asked for (seg_same()), which
 * covers the instant between a change and its inotify event.
 *
 * Each incarnation keeps a small pool of idle readers, so that lookups do
 * not map the segment every time.
 *
 * One lock, S.lock (segtab_lock()), guards the table and every
 * incarnation's state, file, pool and held files (holds.c).
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
    size_t n = strlen(dir);

    if (n >= sizeof S.dir)
        return -ENAMETOOLONG;
    memcpy(S.dir, dir, n + 1);
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

int segtab_stat_dir(struct stat *st)
{
    return lstat(S.dir, st) == 0 ? 0 : -errno;
}

void segtab_fini(void)
{
    for (size_t i = 0; i < S.nall; i++) {
        struct sfs_seg *seg = S.all[i];
        struct sfs_hold *v[SFS_HOLD_MAX];
        unsigned n = holds_take(seg, v);
        for (unsigned k = 0; k < n; k++)
            hold_put(v[k]);
        for (unsigned k = 0; k < seg->npool; k++)
            g_reader_close(seg->pool[k]);
        pthread_rwlock_destroy(&seg->entries_lock);
        free(seg->name);
        free(seg);
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

static size_t find_cur_index(const char *name)
{
    for (size_t i = 0; i < S.ncur; i++)
        if (strcmp(S.cur[i]->name, name) == 0)
            return i;
    return SIZE_MAX;
}

static struct sfs_seg *find_cur(const char *name)
{
    size_t i = find_cur_index(name);
    return i == SIZE_MAX ? NULL : S.cur[i];
}

/* Locked. The incarnation is gone from its name: forget its readers, which
 * would otherwise follow the name to whatever is created there next. */
static void mark_dead(struct sfs_seg *seg)
{
    size_t i = find_cur_index(seg->name);
    struct sfs_hold *v[SFS_HOLD_MAX];
    unsigned n = holds_take(seg, v);

    if (i != SIZE_MAX && S.cur[i] == seg)
        S.cur[i] = S.cur[--S.ncur];
    seg->state = SEG_DEAD;
    seg->verified = 0;
    for (unsigned k = 0; k < seg->npool; k++)
        g_reader_close(seg->pool[k]);
    seg->npool = 0;
    for (unsigned k = 0; k < n; k++)
        hold_put(v[k]);
}

/* Locked. @st is what the file under the name looks like now, learnt
 * after @epoch0 was read: kept as verified only if no inotify event came
 * in between (the event may be about a change after the stat). */
static void set_file(struct sfs_seg *seg, const struct stat *st, uint64_t epoch0)
{
    seg->st = *st;
    seg->verified = S.verify_on && S.epoch == epoch0 && !seg->bad && seg->state == SEG_CURRENT;
}

/* Locked. Make @seg the current incarnation of its name (again, after a
 * file briefly missing). */
static int make_current(struct sfs_seg *seg)
{
    struct sfs_seg *other = find_cur(seg->name);

    if (other == seg)
        return 0;
    if (other != NULL)
        mark_dead(other);
    if (sfs_grow(&S.cur, &S.capcur, S.ncur + 1, sizeof *S.cur) != 0)
        return -ENOMEM;
    S.cur[S.ncur++] = seg;
    seg->state = SEG_CURRENT;
    return 0;
}

/* What a file holds: a readable segment (uid, created_ns), or not. */
struct identity {
    int bad;
    uint64_t uid;
    int64_t created_ns;
    dev_t dev;
    ino_t ino;
};

/* Locked. An earlier incarnation with this identity, newest first: a GC
 * switch, or a file that was briefly missing, keeps its slot. */
static struct sfs_seg *find_any(const char *name, const struct identity *id)
{
    for (size_t i = S.nall; i-- > 0;) {
        struct sfs_seg *s = S.all[i];
        if (s->bad != id->bad || strcmp(s->name, name) != 0)
            continue;
        if (!id->bad && s->uid == id->uid && s->created_ns == id->created_ns)
            return s;
        if (id->bad && s->st.st_dev == id->dev && s->st.st_ino == id->ino)
            return s;
    }
    return NULL;
}

/* Writers first: a notifier taking the names the kernel holds must not
 * wait for a gap in a stream of lookups (glibc's default lets readers
 * starve it). Nobody takes it twice, as that kind requires. */
static int init_entries_lock(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t a;
    int rc = pthread_rwlockattr_init(&a);

    if (rc != 0)
        return rc;
    rc = pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (rc == 0)
        rc = pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
    return rc;
}

/* Locked. */
static struct sfs_seg *new_seg(const char *name, const struct identity *id)
{
    struct sfs_seg *seg;

    if (S.nall >= SFS_SLOT_MAX || sfs_grow(&S.all, &S.capall, S.nall + 1, sizeof *S.all) != 0)
        return NULL;
    seg = calloc(1, sizeof *seg);
    if (seg == NULL)
        return NULL;
    seg->name = strdup(name);
    if (seg->name == NULL) {
        free(seg);
        return NULL;
    }
    if (init_entries_lock(&seg->entries_lock) != 0) {
        free(seg->name);
        free(seg);
        return NULL;
    }
    seg->bad = id->bad;
    seg->uid = id->uid;
    seg->created_ns = id->created_ns;
    seg->state = SEG_REAPED; /* until make_current(): nothing to take back */
    S.all[S.nall++] = seg;
    seg->slot = S.nall;
    return seg;
}

/* Open the file under @name as a segment and learn its identity. On
 * success *r is a reader left for the pool (or NULL). A file whose records
 * cannot all be read (speculo_reader_info() scans them) is bad. */
static int learn(const char *name, const struct stat *st, struct identity *id, speculo_reader **r)
{
    struct speculo_segment_info info;
    struct speculo_segment_ident ident;
    int rc;

    memset(id, 0, sizeof *id);
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    *r = NULL;
    rc = g_reader_open(name, r);
    if (rc == -ENOENT)
        return rc;
    if (rc == 0) {
        rc = g_info(*r, &info);
        if (rc == 0)
            rc = speculo_reader_ident(*r, &ident);
        if (rc != 0) {
            g_reader_close(*r);
            *r = NULL;
        }
    }
    if (rc != 0) {
        id->bad = 1;
        fuse_log(FUSE_LOG_DEBUG, "speculofs: %s: %s\n", name, speculo_strerror(rc));
        return 0;
    }
    id->uid = ident.uid;
    id->created_ns = ident.created_ns;
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
    speculo_reader *r;
    struct sfs_seg *seg;
    int rc = learn(name, st, &id, &r);

    if (rc != 0)
        return rc;
    pthread_mutex_lock(&S.lock);
    seg = find_any(name, &id);
    if (seg == NULL)
        seg = new_seg(name, &id);
    if (seg == NULL || make_current(seg) != 0) {
        rc = -ENOMEM;
    } else {
        set_file(seg, st, epoch0);
        r = pool_put(seg, r);
        *out = seg;
    }
    pthread_mutex_unlock(&S.lock);
    g_reader_close(r);
    return rc;
}

/*
 * The current incarnation of segment @name, and its file's stat: the one
 * verified; else the file is looked at, and learnt if it is not the one
 * last seen (its incarnation found again, or new). An unreadable file is
 * looked at every time: it may become readable (a chmod, say). -ENOENT
 * when no file is there: the incarnation that was there died.
 */
static int current(const char *name, struct sfs_seg **out, struct stat *st)
{
    struct sfs_seg *seg;
    uint64_t epoch0;
    int rc, known = 0;

    pthread_mutex_lock(&S.lock);
    seg = find_cur(name);
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
    seg = find_cur(name);
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
    struct sfs_seg *now;
    int rc = current(seg->name, &now, st);

    return rc == 0 && now != seg ? -ENOENT : rc;
}

/* Does @id (of the file a reader of @seg maps) name this incarnation? A
 * pooled reader follows the name to a segment created there since. */
int seg_same(const struct sfs_seg *seg, const struct speculo_segment_ident *id)
{
    return !seg->bad && id->uid == seg->uid && id->created_ns == seg->created_ns;
}

/* A reader found another file under the name: look again next time. */
void seg_unverify(struct sfs_seg *seg)
{
    pthread_mutex_lock(&S.lock);
    seg->verified = 0;
    pthread_mutex_unlock(&S.lock);
}

/* A reader on @seg, from the pool or new; give it back with
 * seg_reader_give(). -EIO for a segment that cannot be read. */
int seg_reader_take(struct sfs_seg *seg, speculo_reader **out)
{
    speculo_reader *r = NULL;
    int rc;

    if (seg->bad)
        return -EIO;
    pthread_mutex_lock(&S.lock);
    if (seg->npool > 0)
        r = seg->pool[--seg->npool];
    pthread_mutex_unlock(&S.lock);
    if (r != NULL) {
        *out = r;
        return 0;
    }
    rc = g_reader_open(seg->name, &r);
    if (rc == 0)
        *out = r;
    return rc;
}

/* @rc is what the last call on @r returned: a reader that faulted is
 * closed, never pooled again. */
void seg_reader_give(struct sfs_seg *seg, speculo_reader *r, int rc)
{
    if (r == NULL)
        return;
    if (rc != SFS_FAULT) {
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

static int is_segment_entry(const struct dirent *de)
{
    struct stat st;

    if (speculo_segment_name_check(de->d_name) != 0)
        return 0; /* includes the reserved dot names */
    if (de->d_type == DT_REG)
        return 1;
    return de->d_type == DT_UNKNOWN && stat_file(de->d_name, &st) == 0;
}

/* The names of the segment files now in the directory, sorted. */
int segtab_list(char ***names, size_t *count)
{
    DIR *d = opendir(S.dir);
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;

    if (d == NULL)
        return -errno;
    while ((de = readdir(d)) != NULL) {
        if (!is_segment_entry(de))
            continue;
        if (sfs_grow(&v, &cap, n + 1, sizeof *v) != 0 || (v[n] = strdup(de->d_name)) == NULL) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc != 0) {
        segtab_free_list(v, n);
        return rc;
    }
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

/* Locked. */
static void unverify_all(void)
{
    for (size_t i = 0; i < S.ncur; i++)
        S.cur[i]->verified = 0;
}

/* inotify is (1) or is no longer (0) watching the directory. */
void segtab_verify_enable(int on)
{
    pthread_mutex_lock(&S.lock);
    S.verify_on = on;
    S.epoch++;
    unverify_all();
    pthread_mutex_unlock(&S.lock);
}

/* An event about @name (NULL: about anything, e.g. the queue overflowed):
 * what was verified of it is no longer. Called as soon as the event is
 * read, before segtab_recheck(). */
void segtab_changed(const char *name)
{
    struct sfs_seg *seg;

    pthread_mutex_lock(&S.lock);
    S.epoch++;
    if (name == NULL) {
        unverify_all();
    } else if ((seg = find_cur(name)) != NULL) {
        seg->verified = 0;
    }
    pthread_mutex_unlock(&S.lock);
}

/* Locked. Did the owner or mode a chunk takes from the file change? */
static int owner_changed(const struct sfs_seg *seg, const struct stat *st)
{
    return seg->st.st_uid != st->st_uid || seg->st.st_gid != st->st_gid ||
           sfs_allowed(seg->st.st_mode, 0555) != sfs_allowed(st->st_mode, 0555);
}

/* Locked. The file under @cur's name holds @id (learnt from @st): the same
 * incarnation after a GC switch, or another one. */
static speculo_reader *settle(struct sfs_seg *cur, const struct identity *id, const struct stat *st,
                              uint64_t epoch0, speculo_reader *r, struct sfs_seg **attr_changed)
{
    if (cur->state != SEG_CURRENT || find_cur(cur->name) != cur)
        return r;
    if (id->bad || id->uid != cur->uid || id->created_ns != cur->created_ns) {
        mark_dead(cur);
        return r;
    }
    if (owner_changed(cur, st))
        *attr_changed = cur;
    set_file(cur, st, epoch0);
    return pool_put(cur, r);
}

/*
 * After an inotify event about @name: is its current incarnation still
 * under it? A removed or replaced one is marked dead (segtab_take_dead()
 * then finds it); one still there (a GC switch, a chmod) is verified
 * again, and returned in *attr_changed when its owner or mode changed. A
 * file under a name with no current incarnation is left for the first
 * lookup: no slot is spent on a segment nobody looks at.
 */
int segtab_recheck(const char *name, struct sfs_seg **attr_changed)
{
    struct sfs_seg *cur;
    struct identity id;
    struct stat st;
    speculo_reader *r = NULL;
    uint64_t epoch0;
    dev_t dev = 0;
    ino_t ino = 0;
    int rc;

    *attr_changed = NULL;
    pthread_mutex_lock(&S.lock);
    cur = find_cur(name);
    if (cur != NULL) {
        dev = cur->st.st_dev;
        ino = cur->st.st_ino;
    }
    epoch0 = S.epoch;
    pthread_mutex_unlock(&S.lock);
    if (cur == NULL || cur->bad)
        return 0;
    rc = stat_file(name, &st);
    if (rc == 0 && (st.st_dev != dev || st.st_ino != ino))
        rc = learn(name, &st, &id, &r);
    else if (rc == 0)
        id = (struct identity){.uid = cur->uid, .created_ns = cur->created_ns};
    pthread_mutex_lock(&S.lock);
    if (rc == -ENOENT && cur->state == SEG_CURRENT)
        mark_dead(cur);
    else if (rc == 0)
        r = settle(cur, &id, &st, epoch0, r, attr_changed);
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
        struct sfs_seg *seg = S.all[i];
        if (seg->state != SEG_DEAD || sfs_grow(&v, &cap, n + 1, sizeof *v) != 0)
            continue;
        seg->state = SEG_REAPED;
        v[n++] = seg;
    }
    pthread_mutex_unlock(&S.lock);
    *out = v;
    return n;
}
