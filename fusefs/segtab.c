/*
 * The segments of the segment directory, as the filesystem numbers them.
 *
 * Each *incarnation* of a segment gets a slot, the high bits of all its
 * inode numbers. An incarnation is a name plus the segment's creation time
 * (kept by the garbage collector), so a GC switch keeps the slot, and a
 * segment removed and created again under the same name gets a new one:
 * its chunk 1 is not the old chunk 1, and must not inherit its inode (nor
 * the kernel's page cache of it). A file that cannot be read as a segment
 * is an incarnation of its own, told by its (device, inode).
 *
 * Learning which incarnation a file holds costs a reader open and an O(n)
 * speculo_reader_info(), so it is done only when the file under a name is
 * not the one last seen (an fstatat() per operation tells): at a GC
 * switch, a removal, a creation. Each incarnation keeps a small pool of
 * idle readers, so that lookups do not map the segment every time.
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

#define POOL_MAX (sizeof(((struct sfs_seg *)0)->pool) / sizeof(speculo_reader *))

static struct {
    pthread_mutex_t lock;
    char dir[PATH_MAX];
    struct sfs_seg **all; /* every incarnation, all[slot - 1] */
    size_t nall, capall;
    struct sfs_seg **cur; /* the incarnations not dead, one per name */
    size_t ncur, capcur;
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

int segtab_stat_dir(struct stat *st)
{
    return lstat(S.dir, st) == 0 ? 0 : -errno;
}

void segtab_fini(void)
{
    for (size_t i = 0; i < S.nall; i++) {
        struct sfs_seg *seg = S.all[i];
        for (unsigned k = 0; k < seg->npool; k++)
            g_reader_close(seg->pool[k]);
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

    if (i != SIZE_MAX && S.cur[i] == seg)
        S.cur[i] = S.cur[--S.ncur];
    seg->dead = 1;
    for (unsigned k = 0; k < seg->npool; k++)
        g_reader_close(seg->pool[k]);
    seg->npool = 0;
}

static int grow(void *pp, size_t *cap, size_t need)
{
    void **p = pp;
    size_t n = *cap ? *cap * 2 : 16;
    void *np;

    if (need <= *cap)
        return 0;
    np = realloc(*p, n * sizeof(void *));
    if (np == NULL)
        return -ENOMEM;
    *p = np;
    *cap = n;
    return 0;
}

/* Locked. Make @seg the current incarnation of its name. */
static int make_current(struct sfs_seg *seg)
{
    struct sfs_seg *other = find_cur(seg->name);

    if (other == seg)
        return 0;
    if (other != NULL)
        mark_dead(other);
    if (grow(&S.cur, &S.capcur, S.ncur + 1) != 0)
        return -ENOMEM;
    S.cur[S.ncur++] = seg;
    seg->dead = 0;
    return 0;
}

/* What a file holds: a readable segment created at created_ns, or not. */
struct identity {
    int bad;
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
        if (!id->bad && s->created_ns == id->created_ns)
            return s;
        if (id->bad && s->dev == id->dev && s->ino == id->ino)
            return s;
    }
    return NULL;
}

/* Locked. */
static struct sfs_seg *new_seg(const char *name, const struct identity *id)
{
    struct sfs_seg *seg;

    if (S.nall >= SFS_SLOT_MAX || grow(&S.all, &S.capall, S.nall + 1) != 0)
        return NULL;
    seg = calloc(1, sizeof *seg);
    if (seg == NULL)
        return NULL;
    seg->name = strdup(name);
    if (seg->name == NULL) {
        free(seg);
        return NULL;
    }
    seg->bad = id->bad;
    seg->created_ns = id->created_ns;
    seg->dead = 1; /* until make_current() */
    S.all[S.nall++] = seg;
    seg->slot = S.nall;
    return seg;
}

/* Open the file under @name as a segment and learn its identity. On
 * success *r is a reader left for the pool (or NULL). */
static int learn(const char *name, const struct stat *st, struct identity *id,
                 speculo_reader **r)
{
    struct speculo_segment_info info;
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
        if (rc != 0) {
            g_reader_close(*r);
            *r = NULL;
        }
    }
    if (rc != 0) {
        id->bad = 1;
        if (sfs_debug)
            fuse_log(FUSE_LOG_DEBUG, "speculofs: %s: %s\n", name, speculo_strerror(rc));
        return 0;
    }
    id->created_ns = info.created_ns;
    return 0;
}

static int resolve(const char *name, const struct stat *st, struct sfs_seg **out)
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
        seg->dev = st->st_dev;
        seg->ino = st->st_ino;
        if (r != NULL && seg->npool < POOL_MAX) {
            seg->pool[seg->npool++] = r;
            r = NULL;
        }
        *out = seg;
    }
    pthread_mutex_unlock(&S.lock);
    g_reader_close(r);
    return rc;
}

/* Locked. Still the file we know, and readable: nothing to learn. */
static int known_file(const struct sfs_seg *seg, const struct stat *st)
{
    return !seg->dead && !seg->bad && seg->dev == st->st_dev && seg->ino == st->st_ino;
}

/* The current incarnation of segment @name, and its file's stat. An
 * unreadable file is looked at again every time: it may have become
 * readable (a chmod, say). */
int segtab_lookup(const char *name, struct sfs_seg **out, struct stat *st)
{
    struct sfs_seg *seg;
    int rc = speculo_segment_name_check(name);

    if (rc != 0)
        return rc == -ENAMETOOLONG ? rc : -ENOENT;
    rc = stat_file(name, st);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&S.lock);
    seg = find_cur(name);
    if (seg != NULL && !known_file(seg, st))
        seg = NULL;
    pthread_mutex_unlock(&S.lock);
    if (seg != NULL) {
        *out = seg;
        return 0;
    }
    return resolve(name, st, out);
}

/* 0 when @seg is still the incarnation under its name (and fills @st),
 * -ENOENT when it was removed or replaced. */
int seg_check(struct sfs_seg *seg, struct stat *st)
{
    struct sfs_seg *now;
    int ok;
    int rc = stat_file(seg->name, st);

    if (rc == -ENOENT) {
        pthread_mutex_lock(&S.lock);
        if (!seg->dead)
            mark_dead(seg);
        pthread_mutex_unlock(&S.lock);
    }
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&S.lock);
    ok = known_file(seg, st);
    pthread_mutex_unlock(&S.lock);
    if (ok)
        return 0;
    rc = resolve(seg->name, st, &now);
    if (rc != 0)
        return rc;
    return now == seg ? 0 : -ENOENT;
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
        if (!seg->dead && seg->npool < POOL_MAX) {
            seg->pool[seg->npool++] = r;
            r = NULL;
        }
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
        if (grow(&v, &cap, n + 1) != 0 || (v[n] = strdup(de->d_name)) == NULL) {
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
