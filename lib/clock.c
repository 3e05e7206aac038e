/* Clocks and randomness: small wrappers that cannot fail in practice. */
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int64_t speculo__clock_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t speculo__clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Used for segment uids and hash seeds: unpredictable is nice, unique is
 * what matters, so fall back to time and pid when getrandom is missing. */
uint64_t speculo__random_u64(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    return (uint64_t)speculo__clock_mono_ns() * 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
}
