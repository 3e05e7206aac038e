/*
 * The library test program: one runner, a suite per module.
 *   ./tests/check_lib                 all suites
 *   CK_RUN_SUITE=gc ./tests/check_lib one suite (CK_RUN_CASE for one case)
 *   ./tests/check_lib --hold-writer SEG | --try-writer SEG   (test_role.c)
 */
#include <stdio.h>
#include <stdlib.h>

#include "th.h"

Suite *watch_suite(void); /* test_watch.c */
int role_helper_main(int argc, char **argv);

int main(int argc, char **argv)
{
    /* check_lib --hold-writer|--try-writer SEG: a writer for the role
     * suite's tests, run in another PID namespace (test_role.c) */
    if (argc > 1)
        return role_helper_main(argc, argv) < 0 ? 2 : 0;
    if (t_base_init("check-lib") < 0) {
        perror("t_base_init");
        return 1;
    }
    if (!th_root())
        fprintf(stderr, "check_lib: not root: the tests that change uid are skipped\n");

    SRunner *sr = srunner_create(namespace_suite());
    srunner_add_suite(sr, format_suite());
    srunner_add_suite(sr, writer_suite());
    srunner_add_suite(sr, reader_suite());
    srunner_add_suite(sr, gc_suite());
    srunner_add_suite(sr, wait_suite());
    srunner_add_suite(sr, wait_many_suite());
    srunner_add_suite(sr, watch_suite());
    srunner_add_suite(sr, multiprocess_suite());
    srunner_add_suite(sr, role_suite());
    srunner_add_suite(sr, replica_suite());
    srunner_add_suite(sr, records_suite());
    srunner_add_suite(sr, check_suite());
    srunner_add_suite(sr, hostile_suite());
    srunner_add_suite(sr, adversary_suite());
    srunner_add_suite(sr, edges_suite());
    srunner_add_suite(sr, regress_suite());
    srunner_add_suite(sr, stress_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    t_base_cleanup();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
