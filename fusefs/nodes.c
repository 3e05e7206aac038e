/*
 * The chunk inodes the kernel holds, with their lookup counts.
 *
 * A chunk's attributes must outlive the chunk: a file opened before the
 * chunk expired still answers fstat(), and the kernel may ask for the
 * attributes of any inode it has not forgotten. So every LOOKUP that
 * returns a chunk records what its attributes are made of here, and the
 * record lives until the kernel's FORGET brings its count back to zero.
 * Inode numbers themselves are computed (sfs.h), so this table holds no
 * numbering state and forgetting loses nothing.
 *
 * A chained hash table keyed by inode number, one mutex: every operation
 * is a few pointer moves.
 */
#include <pthread.h>
#include <stdlib.h>

#include "sfs.h"

struct node {
    struct node *next;
    fuse_ino_t ino;
    uint64_t nlookup;
    struct sfs_meta meta;
};

static struct {
    pthread_mutex_t lock;
    struct node **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
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
    for (size_t i = 0; i < N.nbuckets; i++) {
        struct node *n = N.buckets[i];
        while (n != NULL) {
            struct node *next = n->next;
            free(n);
            n = next;
        }
    }
    free(N.buckets);
    N.buckets = NULL;
    N.nbuckets = 0;
    N.count = 0;
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
    for (size_t i = 0; i < N.nbuckets; i++) {
        struct node *n = N.buckets[i];
        while (n != NULL) {
            struct node *next = n->next;
            size_t k = bucket_of(n->ino, nb);
            n->next = b[k];
            b[k] = n;
            n = next;
        }
    }
    free(N.buckets);
    N.buckets = b;
    N.nbuckets = nb;
}

/* Count one more lookup of @ino and (re)record its attributes. */
int node_ref(fuse_ino_t ino, const struct sfs_meta *meta)
{
    struct node **pp;
    int rc = 0;

    pthread_mutex_lock(&N.lock);
    pp = find_slot(ino);
    if (*pp != NULL) {
        (*pp)->nlookup++;
        (*pp)->meta = *meta;
    } else {
        struct node *n = malloc(sizeof *n);
        if (n == NULL) {
            rc = -ENOMEM;
        } else {
            n->next = NULL;
            n->ino = ino;
            n->nlookup = 1;
            n->meta = *meta;
            *pp = n;
            N.count++;
            maybe_grow();
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
