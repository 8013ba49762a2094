/* Unit tests for host/job/dns.c.  "localhost" resolves from /etc/hosts without a network; names under the
 * reserved .invalid top-level domain (RFC 6761) never resolve. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "job/dns.h"
#include "core/exitcodes.h"

static void test_localhost_resolves(void **state) {
    (void)state;
    const char *hosts[] = {"localhost", "127.0.0.1"};
    char err[512] = "";
    assert_int_equal(shx_dns_wait(hosts, 2, 1, err, sizeof err), 0);
    assert_string_equal(err, "");
}

static void test_no_hosts(void **state) {
    (void)state;
    char err[512] = "";
    assert_int_equal(shx_dns_wait(NULL, 0, 0, err, sizeof err), 0);
}

static void test_unresolvable_names_the_first_failing_host(void **state) {
    (void)state;
    const char *hosts[] = {"localhost", "smhost-no-such-host.invalid", "another-no-such-host.invalid"};
    char err[512] = "";
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(shx_dns_wait(hosts, 3, 1, err, sizeof err), SHX_EXIT_UNAVAILABLE);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_non_null(strstr(err, "\"smhost-no-such-host.invalid\""));
    assert_null(strstr(err, "another-no-such-host"));
    assert_non_null(strstr(err, "within 1 s"));
    assert_non_null(strstr(err, "dns_timeout_seconds"));
    /* It retried until the limit (not a timing assertion on speed: only that it did wait). */
    double waited = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    assert_true(waited >= 0.9);
}

static void test_zero_timeout_tries_once(void **state) {
    (void)state;
    const char *hosts[] = {"smhost-no-such-host.invalid"};
    char err[512] = "";
    assert_int_equal(shx_dns_wait(hosts, 1, 0, err, sizeof err), SHX_EXIT_UNAVAILABLE);
    assert_non_null(strstr(err, "(tried 1 time;"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localhost_resolves),
        cmocka_unit_test(test_no_hosts),
        cmocka_unit_test(test_unresolvable_names_the_first_failing_host),
        cmocka_unit_test(test_zero_timeout_tries_once),
    };
    return cmocka_run_group_tests_name("dns", tests, NULL, NULL);
}
