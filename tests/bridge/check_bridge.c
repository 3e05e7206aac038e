/*
 * Tests of `speculo bridge`: its wire format in-process, then real
 * nats-server processes (one, and a 3-node cluster) on free loopback
 * ports with `speculo bridge out` and `in` as real processes between two
 * segment directories. Skipped (exit 77) when nats-server is missing.
 * Run from the top of the source tree (make check).
 *   CK_RUN_CASE=faults ./tests/check_bridge     one case
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tb.h"

/* The bridge processes the tests start inherit this: in a sanitizer build,
 * LeakSanitizer leaves out a leak inside libnats (see lsan.supp). */
static int lsan_suppress_libnats(void)
{
    char supp[PATH_MAX];
    if (!realpath("tests/bridge/lsan.supp", supp))
        return -1;
    const char *old = getenv("LSAN_OPTIONS");
    char opts[2 * PATH_MAX];
    snprintf(opts, sizeof opts, "%s%ssuppressions=%s", old ? old : "", old && *old ? ":" : "",
             supp);
    return setenv("LSAN_OPTIONS", opts, 1);
}

int main(void)
{
    if (!realpath("cli/speculo", tb_cli) || access("cli/speculo-bridge", X_OK) != 0) {
        fprintf(stderr, "check_bridge: cli/speculo or cli/speculo-bridge not found: run from the "
                        "source tree after make\n");
        return 1;
    }
    if (!t_nats_find()) {
        fprintf(stderr, "check_bridge: nats-server not found (apt-get install nats-server): "
                        "skipped\n");
        return 77;
    }
    if (lsan_suppress_libnats() < 0) {
        perror("tests/bridge/lsan.supp");
        return 1;
    }
    if (t_base_init("check-bridge") < 0) {
        perror("t_base_init");
        return 1;
    }
    Suite *s = suite_create("bridge");
    TCase *(*cases[])(void) = {tb_case_proto,  tb_case_cli,     tb_case_mirror,
                               tb_case_faults, tb_case_hostile, tb_case_cluster};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = cases[i]();
        tcase_add_checked_fixture(tc, tb_setup, tb_teardown);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    t_base_cleanup();
    return failed ? 1 : 0;
}
