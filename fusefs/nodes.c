/* The chunk and .all record inodes the kernel holds, with their lookup
 * counts and what their attributes are made of: the kernel may ask for the
 * attributes of any inode it has not forgotten, also after the chunk died.
 * A chained hash table keyed by inode number, under one mutex; beside it,
 * per slot, an array of the unnamed chunk ids held: what a notifier copies
 * while the segment's lookups wait (nodes_unnamed()), so a copy, not a
 * walk. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sfs.h"

struct node {
    struct node *next;
    fuse_ino_t ino;
    uint64_t nlookup;
    size_t pos; /* unnamed: its place in its slot's array */
    struct sfs_meta meta;
};

struct slotvec {
    uint64_t *ids;
    size_t n, cap;
};

static struct {
    pthread_mutex_t lock;
    struct node **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    struct slotvec *byslot; /* byslot[slot]: unnamed chunk ids held */
    size_t nbyslot;
} N = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A 64-bit mix (splitmix finaliser): chunk ids are dense, slots sit in the
 * high bits, and both must spread over the low bits used as the index. */
static size_t bucket_of(fuse_ino_t ino, size_t nbuckets)
{
    uint64_t x = (uint64_t)ino;

    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return (size_t)(x & (nbuckets - 1));
}

int nodes_init(void)
{
    N.nbuckets = 1024;
    N.buckets = calloc(N.nbuckets, sizeof(struct node *));
    return N.buckets != NULL ? 0 : -ENOMEM;
}

void nodes_fini(void)
{
    for (size_t i = 0; i < N.nbuckets; i++)
        for (struct node *n = N.buckets[i], *next; n != NULL; n = next) {
            next = n->next;
            free(n);
        }
    for (size_t i = 0; i < N.nbyslot; i++)
        free(N.byslot[i].ids);
    free(N.buckets);
    free(N.byslot);
    N.buckets = NULL;
    N.byslot = NULL;
    N.nbuckets = N.count = N.nbyslot = 0;
}

static struct node **find_slot(fuse_ino_t ino)
{
    struct node **pp = &N.buckets[bucket_of(ino, N.nbuckets)];

    while (*pp != NULL && (*pp)->ino != ino)
        pp = &(*pp)->next;
    return pp;
}

/* Double the table when it is fuller than one node per bucket; on
 * allocation failure keep the old one (longer chains, still correct). */
static void maybe_grow(void)
{
    size_t nb = N.nbuckets * 2;
    struct node **b;

    if (N.count < N.nbuckets)
        return;
    b = calloc(nb, sizeof(struct node *));
    if (b == NULL)
        return;
    for (size_t i = 0; i < N.nbuckets; i++)
        for (struct node *n = N.buckets[i], *next; n != NULL; n = next) {
            size_t k = bucket_of(n->ino, nb);
            next = n->next;
            n->next = b[k];
            b[k] = n;
        }
    free(N.buckets);
    N.buckets = b;
    N.nbuckets = nb;
}

/* Locked. A new unnamed node joins its slot's array. */
static int slot_add(struct node *n)
{
    uint64_t slot = sfs_ino_slot(n->ino);
    struct slotvec *v;

    if (n->meta.named || sfs_ino_kind(n->ino) != SFS_CHUNK)
        return 0;
    if (slot >= N.nbyslot) {
        size_t old = N.nbyslot;
        if (sfs_grow(&N.byslot, &N.nbyslot, slot + 1, sizeof *N.byslot) != 0)
            return -ENOMEM;
        memset(N.byslot + old, 0, (N.nbyslot - old) * sizeof *N.byslot);
    }
    v = &N.byslot[slot];
    if (sfs_grow(&v->ids, &v->cap, v->n + 1, sizeof *v->ids) != 0)
        return -ENOMEM;
    n->pos = v->n;
    v->ids[v->n++] = sfs_ino_low(n->ino);
    return 0;
}

/* Locked. A forgotten unnamed node leaves it: the last id takes its place. */
static void slot_del(const struct node *n)
{
    uint64_t slot = sfs_ino_slot(n->ino);
    struct slotvec *v;
    uint64_t last;

    if (n->meta.named || sfs_ino_kind(n->ino) != SFS_CHUNK || slot >= N.nbyslot)
        return;
    v = &N.byslot[slot];
    last = v->ids[--v->n];
    if (n->pos != v->n) {
        struct node *m = *find_slot(sfs_ino(slot, last));
        v->ids[n->pos] = last;
        if (m != NULL)
            m->pos = n->pos;
    }
}

/* Count one more lookup of @ino and (re)record its attributes (whether a
 * chunk is named never changes: an inode is one chunk). */
int node_ref(fuse_ino_t ino, const struct sfs_meta *meta)
{
    struct node **pp;
    int rc = 0;

    pthread_mutex_lock(&N.lock);
    pp = find_slot(ino);
    if (*pp != NULL) {
        int named = (*pp)->meta.named;
        (*pp)->nlookup++;
        (*pp)->meta = *meta;
        (*pp)->meta.named = named; /* as in the slot's array */
    } else {
        struct node *n = malloc(sizeof *n);
        if (n == NULL) {
            rc = -ENOMEM;
        } else {
            n->next = NULL;
            n->ino = ino;
            n->nlookup = 1;
            n->meta = *meta;
            rc = slot_add(n);
        }
        if (rc == 0) {
            *pp = n;
            N.count++;
            maybe_grow();
        } else {
            free(n);
        }
    }
    pthread_mutex_unlock(&N.lock);
    return rc;
}

/* Copy out, so that no caller holds a pointer a FORGET may free. */
int node_get(fuse_ino_t ino, struct sfs_meta *meta)
{
    struct node *n;

    pthread_mutex_lock(&N.lock);
    n = *find_slot(ino);
    if (n != NULL)
        *meta = n->meta;
    pthread_mutex_unlock(&N.lock);
    return n != NULL ? 0 : -ENOENT;
}

void node_forget(fuse_ino_t ino, uint64_t nlookup)
{
    struct node **pp;

    pthread_mutex_lock(&N.lock);
    pp = find_slot(ino);
    if (*pp != NULL) {
        struct node *n = *pp;
        if (n->nlookup > nlookup) {
            n->nlookup -= nlookup;
        } else {
            *pp = n->next;
            slot_del(n);
            free(n);
            N.count--;
        }
    }
    pthread_mutex_unlock(&N.lock);
}

size_t nodes_count(void)
{
    size_t c;

    pthread_mutex_lock(&N.lock);
    c = N.count;
    pthread_mutex_unlock(&N.lock);
    return c;
}

/* The notifier's question: which names of this segment may the kernel
 * have cached? Only unnamed chunks get a positive entry timeout. A copy
 * of the slot's array; SIZE_MAX when no memory was left for it. */
size_t nodes_unnamed(uint64_t slot, uint64_t **ids)
{
    uint64_t *v = NULL;
    size_t n = 0;

    pthread_mutex_lock(&N.lock);
    if (slot < N.nbyslot && N.byslot[slot].n > 0) {
        n = N.byslot[slot].n;
        v = malloc(n * sizeof *v);
        if (v != NULL)
            memcpy(v, N.byslot[slot].ids, n * sizeof *v);
        else
            n = SIZE_MAX;
    }
    pthread_mutex_unlock(&N.lock);
    *ids = v;
    return n;
}

/* A segment file's owner or mode changed: a chunk's come from it. (The
 * list is cut short when memory runs out.) */
size_t nodes_set_owner(uint64_t slot, const struct stat *file, fuse_ino_t **inos)
{
    fuse_ino_t *v = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&N.lock);
    for (size_t i = 0; i < N.nbuckets; i++)
        for (struct node *p = N.buckets[i]; p != NULL; p = p->next) {
            if (sfs_ino_slot(p->ino) != slot)
                continue;
            p->meta.uid = file->st_uid;
            p->meta.gid = file->st_gid;
            p->meta.mode = sfs_allowed(file->st_mode, 0444);
            if (sfs_grow(&v, &cap, n + 1, sizeof *v) == 0)
                v[n++] = p->ino;
        }
    pthread_mutex_unlock(&N.lock);
    *inos = v;
    return n;
}
