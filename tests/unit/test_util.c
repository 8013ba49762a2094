/* core/util's rules that several modules share: shx_rmtree (rm -rf that never follows a symbolic link, tolerates a
 * missing path, and removes files too), shx_parse_long (whole numbers users write), the stop signals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "tmpdir.h"

static int setup(void **state) {
    char tmpl[] = "/tmp/smhost-rmtree-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    *state = shx_xstrdup(tmpl);
    return 0;
}

static int teardown(void **state) {
    int rc = tmpdir_remove(*state);
    free(*state);
    return rc;
}

static void test_removes_a_deep_tree(void **state) {
    const char *root = *state;
    tmpdir_put(root, "t/a/b/c/d/file", "x");
    tmpdir_put(root, "t/a/other", "y");
    tmpdir_put(root, "t/.hidden/z", "z");
    char *t = shx_path_join(root, "t");
    assert_int_equal(shx_rmtree(t, 0), 0);
    assert_false(shx_is_dir(t));
    free(t);
}

static void test_never_follows_a_link(void **state) {
    const char *root = *state;
    tmpdir_put(root, "outside/keep", "precious");
    tmpdir_put(root, "t/f", "x");
    char *t = shx_path_join(root, "t"), *link = shx_path_join(root, "t/link"), *out = shx_path_join(root, "outside");
    char *keep = shx_path_join(root, "outside/keep");
    assert_int_equal(symlink(out, link), 0);
    assert_int_equal(shx_rmtree(t, 0), 0);
    assert_false(shx_is_dir(t));
    assert_true(shx_is_file(keep));
    /* a link given as the path itself: the link goes, its target stays */
    assert_int_equal(symlink(out, t), 0);
    assert_int_equal(shx_rmtree(t, 0), 0);
    struct stat st;
    assert_int_equal(lstat(t, &st), -1);
    assert_true(shx_is_file(keep));
    free(t), free(link), free(out), free(keep);
}

static void test_missing_path_and_plain_file(void **state) {
    const char *root = *state;
    char *missing = shx_path_join(root, "nothing-here"), *f = shx_path_join(root, "file");
    assert_int_equal(shx_rmtree(missing, 0), 0);
    tmpdir_put(root, "file", "x");
    assert_int_equal(shx_rmtree(f, SHX_RMTREE_ONE_FS), 0);
    assert_false(shx_is_file(f));
    free(missing), free(f);
}

/* An entry that cannot be removed (its directory is read-only): the first error comes back, and everything else
 * is still removed.  Root ignores the mode, so as root the walk runs in a child that became nobody. */
static int locked_case(const char *root) {
    char *t = shx_path_join(root, "t"), *locked = shx_path_join(root, "t/locked"), *g = shx_path_join(root, "t/free");
    char *f = shx_path_join(root, "t/locked/f");
    int ok = shx_mkdirs(locked, 0755) == 0 && shx_mkdirs(g, 0755) == 0 && shx_write_file(f, "x", 1, 0) == 0 &&
             chmod(locked, 0555) == 0 && shx_rmtree(t, 0) == -EACCES && !shx_is_dir(g) && shx_is_file(f);
    if (chmod(locked, 0755) < 0) ok = 0;
    free(t), free(locked), free(g), free(f);
    return ok;
}

static void test_reports_the_first_error_and_goes_on(void **state) {
    const char *root = *state;
    if (geteuid() != 0) {
        assert_true(locked_case(root));
        return;
    }
    assert_int_equal(chmod(root, 0777), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(setgid(65534) == 0 && setuid(65534) == 0 && locked_case(root) ? 0 : 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_parse_long(void **state) {
    (void)state;
    long v = -7;
    const struct {
        const char *s;
        long want;
    } good[] = {{"0", 0}, {"8", 8}, {" 8", 8}, {"8 ", 8}, {"\t8\n", 8}, {"+8", 8}, {"-3", -3}, {"0010", 10}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        if (shx_parse_long(good[i].s, -10, 100, &v) != 0) fail_msg("\"%s\" refused", good[i].s);
        assert_int_equal(v, good[i].want);
    }
    const char *bad[] = {"", " ", "abc", "1.5", "0x10", "12abc", "1 2", "--1", "+-1", "- 1", "1_000",
                         "99999999999999999999", NULL};
    for (size_t i = 0; bad[i]; i++) {
        v = 42;
        if (shx_parse_long(bad[i], -10, 1000000, &v) != -1) fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(v, 42); /* untouched */
    }
    assert_int_equal(shx_parse_long(NULL, 0, 1, &v), -1);
    /* the bounds are inclusive */
    assert_int_equal(shx_parse_long("1", 1, 5, &v), 0);
    assert_int_equal(shx_parse_long("5", 1, 5, &v), 0);
    assert_int_equal(shx_parse_long("0", 1, 5, &v), -1);
    assert_int_equal(shx_parse_long("6", 1, 5, &v), -1);
}

static void test_stop_signals(void **state) {
    (void)state;
    const int stop[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP}, other[] = {SIGCHLD, SIGUSR1, SIGUSR2, SIGWINCH, SIGPIPE, 0};
    for (size_t i = 0; i < sizeof stop / sizeof *stop; i++) assert_true(shx_is_stop_signal(stop[i]));
    for (size_t i = 0; i < sizeof other / sizeof *other; i++) assert_false(shx_is_stop_signal(other[i]));
    /* pending: only while blocked and not yet taken; a non-stop signal pending does not count */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    assert_int_equal(sigprocmask(SIG_BLOCK, &set, &old), 0);
    assert_int_equal(shx_stop_signal_pending(), 0);
    raise(SIGUSR1);
    assert_int_equal(shx_stop_signal_pending(), 0);
    raise(SIGHUP);
    assert_int_equal(shx_stop_signal_pending(), SIGHUP);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) > 0) {
    }
    assert_int_equal(shx_stop_signal_pending(), 0);
    assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
}

static void test_exit_code_of(void **state) {
    (void)state;
    pid_t a = fork();
    if (a == 0) _exit(3);
    pid_t b = fork();
    if (b == 0) {
        raise(SIGKILL);
        _exit(0);
    }
    int sa, sb;
    assert_int_equal(waitpid(a, &sa, 0), a);
    assert_int_equal(waitpid(b, &sb, 0), b);
    assert_int_equal(shx_exit_code_of(sa), 3);
    assert_int_equal(shx_exit_code_of(sb), 128 + SIGKILL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_removes_a_deep_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_follows_a_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_path_and_plain_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_the_first_error_and_goes_on, setup, teardown),
        cmocka_unit_test(test_parse_long),
        cmocka_unit_test(test_stop_signals),
        cmocka_unit_test(test_exit_code_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
