/*
 * check_fuse: speculofs mounted for real and driven with POSIX calls and
 * shell tools. Exits 77 (skipped) on a machine that cannot mount FUSE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "t_fuse.h"
#include "t_util.h"

int main(void)
{
    char why[256];
    SRunner *sr;
    int failed;

    if (tf_fuse_usable(why, sizeof why) != 0) {
        printf("check_fuse: %s: skipped\n", why);
        return 77;
    }
    if (access(tf_bin(), X_OK) != 0) {
        fprintf(stderr, "check_fuse: %s is not built (make fusefs/speculofs)\n", tf_bin());
        return 1;
    }
    if (t_base_init("fuse") != 0) {
        fprintf(stderr, "check_fuse: cannot make a temporary directory\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    sr = srunner_create(tf_suite_namespace());
    srunner_add_suite(sr, tf_suite_live());
    srunner_add_suite(sr, tf_suite_big());
    srunner_add_suite(sr, tf_suite_faults());
    srunner_add_suite(sr, tf_suite_lifecycle());
    srunner_add_suite(sr, tf_suite_load());
    srunner_add_suite(sr, tf_suite_cache());
    srunner_add_suite(sr, tf_suite_mount());
    srunner_add_suite(sr, tf_suite_all());
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    tf_unmount_all();
    t_base_cleanup();
    if (tf_bad_exits > 0)
        fprintf(stderr, "check_fuse: %d speculofs server(s) did not exit cleanly\n", tf_bad_exits);
    return failed == 0 && tf_bad_exits == 0 ? 0 : 1;
}
