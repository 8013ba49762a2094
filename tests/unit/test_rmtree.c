/* shx_rmtree: rm -rf that never follows a symbolic link, tolerates a missing path, and removes files too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_removes_a_deep_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_follows_a_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_path_and_plain_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reports_the_first_error_and_goes_on, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
