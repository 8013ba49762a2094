/* Temporary directories of the unit tests: files written into them, and their removal.  Include after
 * <cmocka.h> and core/util.h. */
#ifndef SMHOST_TESTS_TMPDIR_H
#define SMHOST_TESTS_TMPDIR_H
#include <stdlib.h>
#include <string.h>

/* Write <root>/<rel>, creating its directories; the test fails when that cannot be done. */
static inline void tmpdir_put(const char *root, const char *rel, const char *text) {
    char *p = shx_path_join(root, rel), *dir = shx_xstrdup(p);
    *strrchr(dir, '/') = 0;
    assert_int_equal(shx_mkdirs(dir, 0755), 0);
    assert_int_equal(shx_write_file(p, text, strlen(text), 0), 0);
    free(dir);
    free(p);
}

/* rm -rf dir: 0, or -1 when that failed. */
static inline int tmpdir_remove(const char *dir) {
    return shx_rmtree(dir, 0) == 0 ? 0 : -1;
}
#endif
