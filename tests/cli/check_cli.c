/*
 * End-to-end tests of the command-line tool: each test runs ./cli/speculo
 * as a child process in a temporary SPECULO_DIR and checks its output
 * bytes and exit status. Run from the top of the source tree (make check),
 * or set SPECULO_CLI to the binary.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "t_proc.h"

static int find_paths(void)
{
    const char *cli = getenv("SPECULO_CLI");
    if (!getcwd(tc_srcdir, sizeof tc_srcdir))
        return -1;
    if (!realpath(cli ? cli : "cli/speculo", tc_cli)) {
        fprintf(stderr, "check_cli: %s not found: run from the source tree after make\n",
                cli ? cli : "cli/speculo");
        return -1;
    }
    return 0;
}

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *(*cases[])(void) = {tc_case_putcat,    tc_case_list,   tc_case_tail,  tc_case_follow,
                               tc_case_admin,     tc_case_errors, tc_case_docs,  tc_case_messages,
                               tc_case_info_json, tc_case_stats,  tc_case_trust, tc_case_prune,
                               tc_case_debug};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = cases[i]();
        tcase_add_checked_fixture(tc, tc_setup, tc_teardown);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    if (find_paths() < 0)
        return 1;
    SRunner *sr = srunner_create(cli_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
