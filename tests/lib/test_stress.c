/*
 * reliability: shortened runs of the crash test (a writer killed with
 * SIGKILL at random instants, 100 rounds) and of the stress test (1 writer,
 * 8 reader processes, 10 s). The programs are tests/stress/crash and
 * tests/stress/stress, built with check_lib; each checks everything itself
 * and exits 0 only when every check held. Longer runs: scripts/crash-test,
 * make stress (docs/RELIABILITY.md).
 */
#include <limits.h>
#include <libgen.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "th.h"

/* tests/stress/PROG, found next to this program (tests/check_lib). */
static void stress_prog(const char *prog, char *buf, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    int len = snprintf(buf, size, "%s/stress/%s", dirname(self), prog);
    ck_assert_int_lt(len, (int)size);
    struct stat st;
    ck_assert_msg(stat(buf, &st) == 0, "%s missing: make tests/check_lib builds it", buf);
}

/* Run the program with its arguments in this test's SPECULO_DIR; its exit
 * status, or -ETIMEDOUT. */
static int run(const char *prog, char *const argv[], int timeout_ms)
{
    char path[PATH_MAX];
    stress_prog(prog, path, sizeof(path));
    fflush(stdout);
    pid_t pid = t_fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execv(path, argv);
        _exit(127);
    }
    return t_wait(pid, timeout_ms);
}

START_TEST(crash_100_rounds_lose_nothing)
{
    char *const argv[] = {"crash", "-r", "100", "-q", NULL};
    int rc = run("crash", argv, 100000);
    ck_assert_msg(rc == 0, "tests/stress/crash -r 100 exited %d (its messages are above)", rc);
    /* the driver cleaned up after its writers: only the segment is left */
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
}
END_TEST

START_TEST(stress_10_seconds_consistent)
{
    char *const argv[] = {"stress", "-t", "10", "-q", NULL};
    int rc = run("stress", argv, 100000);
    ck_assert_msg(rc == 0, "tests/stress/stress -t 10 exited %d (its messages are above)", rc);
    ck_assert_int_eq(t_dir_count(t_dir()), 1);
}
END_TEST

Suite *stress_suite(void)
{
    Suite *s = suite_create("reliability");
    TCase *tc = th_tcase("runs", 150);
    tcase_add_test(tc, crash_100_rounds_lose_nothing);
    tcase_add_test(tc, stress_10_seconds_consistent);
    suite_add_tcase(s, tc);
    return s;
}
