/*
 * What the kernel caches, and how it is taken back: the names of unnamed
 * chunks and of segments are cached (so that `ls -l` does not ask for every
 * file), and must still vanish when their chunk is obsoleted or expires, or
 * their segment is removed; a named chunk's name is never cached, so that
 * an update is seen the moment the commit returns.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "t_fuse.h"
#include "t_util.h"

#define MS INT64_C(1000000)

/* A cached name outlives its chunk or segment by the notifier's (or
 * inotify's) wake-up and one notification: "promptly" is tested as "within
 * T_PATIENCE_MS", a bound for a failure, not a speed. */
#define PROMPT_MS T_PATIENCE_MS

/* The name of a named chunk is looked up again at every path walk: after
 * an update, stat and open give the new version at once, every time, even
 * right after the old one was stat'ed (and would be cached if it could). */
START_TEST(test_named_update_seen_at_once)
{
    char p[PATH_MAX], text[64], buf[64];
    speculo_writer *w = tf_writer("named", 0, 0);
    struct stat st;
    ino_t last = 0;

    tf_path(p, "named", "block");
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(text, sizeof text, "version %d%s", i, i % 2 ? "" : " (even)");
        tf_put_str(w, "block", text);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_msg(st.st_ino != last, "round %d: the old inode after the update", i);
        ck_assert_int_eq(st.st_size, n);
        ck_assert_int_eq(stat(p, &st), 0); /* again: nothing stale either */
        ck_assert_int_eq(tf_read_file(p, buf, sizeof buf), n);
        ck_assert_msg(memcmp(buf, text, (size_t)n) == 0, "round %d: stale contents", i);
        last = st.st_ino;
    }
    speculo_writer_close(w);
}
END_TEST

/* An unnamed chunk whose name the kernel cached stops being stat-able
 * promptly once obsoleted (explicitly, or by `replaces`), and cannot be
 * opened at all from the moment obsolete() returns. The others stay. */
START_TEST(test_obsoleted_gone_promptly)
{
    enum { N = 200 };
    char p[PATH_MAX], id[24];
    speculo_writer *w = tf_writer("obs", 0, 0);
    uint64_t ids[N];
    int64_t worst = 0, waited;

    for (int i = 0; i < N; i++)
        ids[i] = tf_put_str(w, NULL, "x");
    for (int i = 0; i < N; i++) /* cached now */
        ck_assert_int_eq(tf_stat_err(tf_path(p, "obs", tf_idname(id, ids[i]))), 0);
    for (int i = 0; i < N; i += 2) {
        tf_path(p, "obs", tf_idname(id, ids[i]));
        if (i % 4 == 0) {
            ck_assert_int_eq(speculo_writer_obsolete(w, ids[i]), 0);
        } else {
            struct speculo_commit_options o = {.replaces = ids[i]};
            ck_assert_int_eq(speculo_writer_put(w, "y", 1, &o, NULL), 0);
        }
        if (i % 8 < 4) { /* stat: the notifier takes the name back */
            ck_assert_msg(tf_wait_stat(p, -ENOENT, PROMPT_MS, &waited) == -ENOENT,
                          "%s still stat-able %d ms after it was obsoleted", id, PROMPT_MS);
            if (waited > worst)
                worst = waited;
        }
        /* open: at once (speculofs refuses, the kernel looks the name up) */
        ck_assert_int_eq(open(p, O_RDONLY), -1);
        ck_assert_int_eq(errno, ENOENT);
        ck_assert_int_eq(tf_stat_err(p), -ENOENT);
    }
    for (int i = 1; i < N; i += 2)
        ck_assert_int_eq(tf_stat_err(tf_path(p, "obs", tf_idname(id, ids[i]))), 0);
    printf("obsoleted_gone_promptly: slowest: %" PRId64 " us\n", worst);
    speculo_writer_close(w);
}
END_TEST

/* More segments followed than one notifier waits on (SPECULO_WAIT_MAX):
 * an obsoletion in any of them takes its cached name back promptly, also
 * in segments followed after others were removed (their places reused). */
START_TEST(test_obsoleted_gone_in_many_segments)
{
    enum { N = 300, REMOVED = 100 };
    char p[PATH_MAX], id[24], seg[32];
    speculo_writer *w[N + REMOVED];
    uint64_t ids[N + REMOVED];

    for (int i = 0; i < N + REMOVED; i++) {
        if (i == N) /* the first ones go: their places are free */
            for (int k = 0; k < REMOVED; k++) {
                snprintf(seg, sizeof seg, "many%d", k);
                speculo_writer_close(w[k]);
                ck_assert_int_eq(speculo_segment_remove(seg, 0), 0);
                ck_assert_int_eq(tf_wait_stat(tf_path(p, seg, NULL), -ENOENT, PROMPT_MS, NULL),
                                 -ENOENT);
            }
        snprintf(seg, sizeof seg, "many%d", i);
        w[i] = tf_writer(seg, 64 << 10, 0);
        ids[i] = tf_put_str(w[i], NULL, "x");
        ck_assert_int_eq(tf_stat_err(tf_path(p, seg, tf_idname(id, ids[i]))), 0); /* cached */
    }
    for (int i = N + REMOVED - 1; i >= REMOVED; i--) {
        snprintf(seg, sizeof seg, "many%d", i);
        ck_assert_int_eq(speculo_writer_obsolete(w[i], ids[i]), 0);
        ck_assert_msg(tf_wait_stat(tf_path(p, seg, tf_idname(id, ids[i])), -ENOENT, PROMPT_MS,
                                   NULL) == -ENOENT,
                      "%s/%s still stat-able %d ms after it was obsoleted", seg, id, PROMPT_MS);
        speculo_writer_close(w[i]);
    }
}
END_TEST

/* Obsoletions while other processes stat the very names being obsoleted
 * (lookups racing the invalidation): none may stay cached. */
START_TEST(test_obsoleted_gone_under_lookups)
{
    enum { N = 300, READERS = 3 };
    char p[PATH_MAX], id[24];
    speculo_writer *w = tf_writer("race", 0, 0);
    volatile uint64_t *next = t_shared_alloc(sizeof *next);
    pid_t pids[READERS];
    uint64_t first = 0;

    for (int i = 0; i < N; i++) {
        uint64_t c = tf_put_str(w, NULL, "r");
        if (i == 0)
            first = c;
    }
    *next = first;
    for (int k = 0; k < READERS; k++) {
        pids[k] = t_fork();
        if (pids[k] == 0) {
            char q[PATH_MAX], name[24];
            while (*next != 0)
                for (uint64_t c = *next; c < *next + 3 && *next != 0; c++)
                    tf_stat_err(tf_path(q, "race", tf_idname(name, c)));
            _exit(0);
        }
    }
    for (uint64_t c = first; c < first + N; c++) {
        *next = c;
        t_sleep_ms(1); /* let the readers look it up */
        ck_assert_int_eq(speculo_writer_obsolete(w, c), 0);
        tf_path(p, "race", tf_idname(id, c));
        ck_assert_msg(tf_wait_stat(p, -ENOENT, PROMPT_MS, NULL) == -ENOENT,
                      "%s still stat-able %d ms after it was obsoleted", id, PROMPT_MS);
    }
    *next = 0;
    for (int k = 0; k < READERS; k++)
        ck_assert_int_eq(t_wait(pids[k], T_PATIENCE_MS), 0);
    for (uint64_t c = first; c < first + N; c++)
        ck_assert_int_eq(tf_stat_err(tf_path(p, "race", tf_idname(id, c))), -ENOENT);
    t_shared_free((void *)next, sizeof *next);
    speculo_writer_close(w);
}
END_TEST

/* A cached name never outlives the chunk's expiry: stat'ed until just
 * before, it is gone right after, with no notification. The stats before
 * the expiry prove something only when they end before it: on a machine
 * too slow for that, the round is tried again with a longer TTL. */
START_TEST(test_expired_gone_at_expiry)
{
    char p[PATH_MAX], id[24], dir[PATH_MAX];
    speculo_writer *w = tf_writer("ttl", 0, 0);

    tf_path(dir, "ttl", NULL);
    for (int round = 0; round < 5; round++) {
        for (int attempt = 0;; attempt++) {
            int64_t ttl = t_ttl_ns((200 + 100 * round) * MS, attempt), before = t_real_ns();
            uint64_t c = tf_put(w, NULL, "brief", 5, ttl);
            int64_t gone = t_expired_by(ttl), lives_until = before + ttl;
            int looked = 0;
            tf_path(p, "ttl", tf_idname(id, c));
            for (;;) {
                int rc = tf_stat_err(p);
                int64_t now = t_real_ns();
                if (now < lives_until) { /* the stat ended before the expiry */
                    ck_assert_msg(rc == 0, "round %d: %s: %s before its expiry", round, id,
                                  strerror(-rc));
                    looked++;
                }
                if (now >= lives_until - 2 * MS)
                    break;
                t_sleep_ms(1);
            }
            if (looked > 0) {
                t_sleep_until_real(gone);
                ck_assert_msg(tf_stat_err(p) == -ENOENT, "round %d: %s stat-able after its expiry",
                              round, id);
                ck_assert_int_eq(tf_dir_has(dir, id), 0);
                break;
            }
            ck_assert_msg(attempt + 1 < T_TTL_ATTEMPTS,
                          "round %d: never stat'ed within a TTL of %" PRId64 " ms", round,
                          ttl / MS);
        }
    }
    speculo_writer_close(w);
}
END_TEST

/* A removed segment's directory disappears promptly though its name and
 * its chunks' were cached; created again, it shows the new contents. */
START_TEST(test_removed_segment_gone_recreated_new)
{
    char p[PATH_MAX], c1[PATH_MAX], id[24], buf[64];
    struct stat d1, f1, d2 = {0}, f2 = {0};

    tf_path(p, "phoenix", NULL);
    for (int round = 0; round < 5; round++) {
        char text[32];
        speculo_writer *w = tf_writer("phoenix", 0, 0);
        int n = snprintf(text, sizeof text, "incarnation %d", round);
        uint64_t c = tf_put_str(w, NULL, text);
        tf_path(c1, "phoenix", tf_idname(id, c));
        ck_assert_msg(tf_wait_stat(p, 0, PROMPT_MS, NULL) == 0, "round %d: not there", round);
        ck_assert_int_eq(stat(p, &d1), 0);
        ck_assert_int_eq(stat(c1, &f1), 0);
        ck_assert_int_eq(tf_read_file(c1, buf, sizeof buf), n);
        ck_assert(memcmp(buf, text, (size_t)n) == 0);
        if (round > 0) {
            ck_assert(d1.st_ino != d2.st_ino);
            ck_assert(f1.st_ino != f2.st_ino);
        }
        speculo_writer_close(w);
        ck_assert_int_eq(speculo_segment_remove("phoenix", 0), 0);
        ck_assert_msg(tf_wait_stat(p, -ENOENT, PROMPT_MS, NULL) == -ENOENT,
                      "round %d: removed segment still there after %d ms", round, PROMPT_MS);
        ck_assert_int_eq(tf_stat_err(c1), -ENOENT);
        d2 = d1;
        f2 = f1;
    }
}
END_TEST

/* The garbage collector renames a new file over the segment: the same
 * incarnation, so nothing cached is taken back, and nothing cached fails:
 * every name still stats (same inode) and opens. */
START_TEST(test_gc_keeps_cached_entries)
{
    enum { N = 500 };
    char p[PATH_MAX], id[24];
    speculo_writer *w = tf_writer("kept", 0, 0);
    uint64_t ids[N];
    ino_t inos[N];

    for (int i = 0; i < N; i++)
        ids[i] = tf_put_str(w, NULL, "kept");
    for (int i = 0; i < N; i++) {
        struct stat st;
        ck_assert_int_eq(stat(tf_path(p, "kept", tf_idname(id, ids[i])), &st), 0);
        inos[i] = st.st_ino;
    }
    for (int round = 0; round < 5; round++) {
        ck_assert_int_eq(speculo_writer_gc(w), 0);
        for (int i = 0; i < N; i++) {
            struct stat st;
            char buf[8];
            tf_path(p, "kept", tf_idname(id, ids[i]));
            ck_assert_msg(stat(p, &st) == 0, "round %d: %s: %s", round, id, strerror(errno));
            ck_assert_uint_eq(st.st_ino, inos[i]);
            if (i % 50 == 0)
                ck_assert_int_eq(tf_read_file(p, buf, sizeof buf), 4);
        }
        ck_assert_int_eq(tf_stat_err(tf_path(p, "kept", NULL)), 0);
    }
    speculo_writer_close(w);
}
END_TEST

/* `ls -l` lists with READDIRPLUS: every entry's attributes are right,
 * named and unnamed, and what is not cached (named) still stats. */
START_TEST(test_listing_attributes)
{
    enum { N = 2000 };
    char p[PATH_MAX + 32], dir[PATH_MAX], out[256];
    speculo_writer *w = tf_writer("ls", 0, 0640);
    DIR *d;
    struct dirent *de;
    int seen = 0;

    for (int i = 0; i < N; i++) {
        char name[32], text[32];
        snprintf(name, sizeof name, "n%d", i);
        snprintf(text, sizeof text, "%*d", 1 + i % 17, i);
        tf_put_str(w, i % 3 == 0 ? name : NULL, text);
    }
    tf_path(dir, "ls", NULL);
    ck_assert_ptr_nonnull(d = opendir(dir));
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        ck_assert_int_eq(fstatat(dirfd(d), de->d_name, &st, 0), 0);
        ck_assert_int_eq(st.st_mode, S_IFREG | 0440);
        ck_assert_uint_eq(st.st_ino, de->d_ino);
        ck_assert_int_ge(st.st_size, 1);
        ck_assert_int_le(st.st_size, 17);
        seen++;
    }
    closedir(d);
    ck_assert_int_eq(seen, N);
    ck_assert_int_lt(snprintf(p, sizeof p, "ls -l '%s' | wc -l", dir), (int)sizeof p);
    ck_assert_int_eq(tf_sh(p, out, sizeof out), 0);
    ck_assert_int_eq(atoi(out), N + 1); /* and "total" */
    speculo_writer_close(w);
}
END_TEST

/* Only the user.* namespace is speculofs's: security labels and POSIX
 * ACLs are not supported (EOPNOTSUPP, so `ls -l` stops asking). */
START_TEST(test_xattr_other_namespaces_unsupported)
{
    static const char *const others[] = {"security.selinux", "system.posix_acl_access",
                                         "system.posix_acl_default", "trusted.x"};
    char p[PATH_MAX], id[24], buf[64];
    speculo_writer *w = tf_writer("x", 0, 0);
    uint64_t c = tf_put_str(w, NULL, "x");
    const char *paths[3];
    char segdir[PATH_MAX];

    paths[0] = tf_path(p, "x", tf_idname(id, c));
    paths[1] = tf_path(segdir, "x", NULL);
    paths[2] = tf_m.mnt;
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
            errno = 0;
            ck_assert_int_eq(getxattr(paths[i], others[k], buf, sizeof buf), -1);
            ck_assert_msg(errno == EOPNOTSUPP, "%s of %s: %s", others[k], paths[i],
                          strerror(errno));
        }
    ck_assert_int_gt(getxattr(paths[0], "user.speculo.id", buf, sizeof buf), 0);
    ck_assert_int_eq(getxattr(paths[0], "user.speculo.expires", buf, sizeof buf), -1);
    ck_assert_int_eq(errno, ENODATA);
    speculo_writer_close(w);
}
END_TEST

Suite *tf_suite_cache(void)
{
    Suite *s = suite_create("cache");

    suite_add_tcase(s, tf_tcase("named_update_seen_at_once", test_named_update_seen_at_once,
                                tf_setup, 60));
    suite_add_tcase(s, tf_tcase("obsoleted_gone_promptly", test_obsoleted_gone_promptly,
                                tf_setup, 60));
    suite_add_tcase(s, tf_tcase("obsoleted_gone_in_many_segments",
                                test_obsoleted_gone_in_many_segments, tf_setup, 120));
    suite_add_tcase(s, tf_tcase("obsoleted_gone_under_lookups", test_obsoleted_gone_under_lookups,
                                tf_setup, 120));
    suite_add_tcase(s, tf_tcase("expired_gone_at_expiry", test_expired_gone_at_expiry, tf_setup,
                                60));
    suite_add_tcase(s, tf_tcase("removed_segment_gone_recreated_new",
                                test_removed_segment_gone_recreated_new, tf_setup, 60));
    suite_add_tcase(s, tf_tcase("gc_keeps_cached_entries", test_gc_keeps_cached_entries,
                                tf_setup, 60));
    suite_add_tcase(s, tf_tcase("listing_attributes", test_listing_attributes, tf_setup, 60));
    suite_add_tcase(s, tf_tcase("xattr_other_namespaces_unsupported",
                                test_xattr_other_namespaces_unsupported, tf_setup, 30));
    return s;
}
