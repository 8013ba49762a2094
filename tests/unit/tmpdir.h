/* Temporary directories of the unit tests: files written into them, a configuration loaded from text, and their
 * removal.  Include after <cmocka.h> and core/util.h. */
#ifndef SMHOST_TESTS_TMPDIR_H
#define SMHOST_TESTS_TMPDIR_H
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

/* Write <root>/<rel>, creating its directories; the test fails when that cannot be done. */
static inline void tmpdir_put(const char *root, const char *rel, const char *text) {
    char *p = shx_path_join(root, rel), *dir = shx_xstrdup(p);
    *strrchr(dir, '/') = 0;
    assert_int_equal(shx_mkdirs(dir, 0755), 0);
    assert_int_equal(shx_write_file(p, text, strlen(text), 0), 0);
    free(dir);
    free(p);
}

/* Load cfg from the smhost.ini text `ini` (written to a temporary file, removed again): 0, or -1. */
static inline int tmpdir_load_config(shx_config *cfg, const char *ini) {
    char path[] = "/tmp/smhost-test-ini-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    ssize_t w = write(fd, ini, strlen(ini));
    close(fd);
    char err[1024];
    int rc = w == (ssize_t)strlen(ini) ? shx_config_load_file(cfg, path, 1, err, sizeof err) : -1;
    unlink(path);
    return rc;
}

/* rm -rf dir: 0, or -1 when that failed. */
static inline int tmpdir_remove(const char *dir) {
    return shx_rmtree(dir, 0) == 0 ? 0 : -1;
}
#endif
