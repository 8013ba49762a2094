/* Unit tests for host/job/envsize.c: building the environment in O(n log n) with the semantics of replacing
 * entries in place, and the execve size check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "job/envsize.h"

static void push(shx_strvec *env, const char *kv) { shx_strvec_push(env, kv); }

static void test_dedupe_keeps_first_position_and_last_value(void **state) {
    (void)state;
    shx_strvec env = {0};
    push(&env, "B=1");
    push(&env, "A=1");
    push(&env, "B=2");
    push(&env, "AB=x");
    push(&env, "A=2");
    push(&env, "B=3");
    push(&env, "EMPTY=");
    shx_env_dedupe(&env);
    assert_int_equal(env.n, 4);
    assert_string_equal(env.v[0], "B=3");
    assert_string_equal(env.v[1], "A=2");
    assert_string_equal(env.v[2], "AB=x");
    assert_string_equal(env.v[3], "EMPTY=");
    assert_null(env.v[4]);
    shx_strvec_free(&env);
}

static void test_dedupe_of_100k_names_is_fast(void **state) {
    (void)state;
    shx_strvec env = {0};
    for (int i = 0; i < 100000; i++) shx_strvec_take(&env, shx_xasprintf("SM_HP_K%06d=%d", i % 50000, i));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    shx_env_dedupe(&env);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(env.n, 50000);
    assert_string_equal(env.v[7], "SM_HP_K000007=50007");
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s < 2.0); /* a scan per entry took minutes; the sort takes milliseconds (seconds under ASan) */
    shx_strvec_free(&env);
}

static void test_size_check_names_the_biggest_and_the_limit(void **state) {
    (void)state;
    const char *argv[] = {"prog", "--small", "1", NULL};
    char *big = malloc(200000);
    memset(big, 'x', 199999);
    memcpy(big, "SM_HPS=", 7);
    big[199999] = 0;
    const char *envp[] = {"PATH=/bin", big, NULL};
    char err[1024] = "";
    assert_int_equal(shx_exec_size_check(argv, envp, err, sizeof err), -1);
    assert_non_null(strstr(err, "variable SM_HPS"));
    assert_non_null(strstr(err, "200000 bytes"));
    assert_non_null(strstr(err, "MAX_ARG_STRLEN"));
    const char *small_env[] = {"PATH=/bin", NULL};
    assert_int_equal(shx_exec_size_check(argv, small_env, err, sizeof err), 0);
    assert_int_equal(shx_exec_size_check(argv, NULL, err, sizeof err), 0);
    free(big);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedupe_keeps_first_position_and_last_value),
        cmocka_unit_test(test_dedupe_of_100k_names_is_fast),
        cmocka_unit_test(test_size_check_names_the_biggest_and_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
