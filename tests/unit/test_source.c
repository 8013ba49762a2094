/* Unit tests for host/unpack/source.c: sagemaker_submit_directory as a directory or a tar archive.  Hostile archives
 * are built here with libarchive's write API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "unpack/source.h"
#include "core/util.h"
#include "tmpdir.h"

static char g_dir[64];
static char *g_code, *g_outside;
static char g_err[2048];

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/smhost-source-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    g_code = shx_xasprintf("%s/ml/code", g_dir);
    g_outside = shx_xasprintf("%s/outside", g_dir);
    if (shx_mkdirs(g_outside, 0755) < 0) return -1;
    g_err[0] = 0;
    return 0;
}
static int teardown(void **state) {
    (void)state;
    int rc = tmpdir_remove(g_dir);
    free(g_code);
    free(g_outside);
    return rc == 0 ? 0 : -1;
}

/* ---- building archives ----------------------------------------------------------------------------------- */

static struct archive *tar_open(const char *name, int gzip) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gzip) archive_write_add_filter_gzip(a);
    char *path = shx_path_join(g_dir, name);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    free(path);
    return a;
}
static void tar_add(struct archive *a, const char *name, mode_t type, int perm, const char *data, const char *link,
                    int hard) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, perm);
    archive_entry_set_mtime(e, 1700000000, 0);
    if (link && hard) archive_entry_set_hardlink(e, link);
    else if (link) archive_entry_set_symlink(e, link);
    if (type == AE_IFCHR) archive_entry_set_rdev(e, makedev(1, 3));
    archive_entry_set_size(e, data ? (la_int64_t)strlen(data) : 0);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    if (data) assert_int_equal(archive_write_data(a, data, strlen(data)), (la_ssize_t)strlen(data));
    archive_entry_free(e);
}
static void tar_file(struct archive *a, const char *name, const char *data, int perm) {
    tar_add(a, name, AE_IFREG, perm, data, NULL, 0);
}
static void tar_dir(struct archive *a, const char *name) {
    tar_add(a, name, AE_IFDIR, 0755, NULL, NULL, 0);
}
static void tar_symlink(struct archive *a, const char *name, const char *target) {
    tar_add(a, name, AE_IFLNK, 0777, NULL, target, 0);
}
static void tar_hardlink(struct archive *a, const char *name, const char *target) {
    tar_add(a, name, AE_IFREG, 0644, NULL, target, 1);
}
static char *tar_close(struct archive *a, const char *name) {
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return shx_path_join(g_dir, name);
}

/* ---- checks ---------------------------------------------------------------------------------------------- */

static void assert_code_empty(void) {
    if (!shx_dir_is_empty(g_code)) {
        char *cmd = shx_xasprintf("ls -laR '%s' >&2", g_code);
        if (system(cmd)) {}
        free(cmd);
        fail_msg("%s is not empty after a failed unpack", g_code);
    }
}

static const char *g_find;
static int g_found;
static int find_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    if (!strcmp(path + ftw->base, g_find)) g_found = 1;
    return 0;
}
/* Is there a file called name anywhere under the test directory? */
static int exists_anywhere(const char *name) {
    g_find = name;
    g_found = 0;
    nftw(g_dir, find_cb, 16, FTW_PHYS);
    return g_found;
}

static char *slurp(const char *dir, const char *rel) {
    char *p = shx_path_join(dir, rel), *out = NULL;
    size_t len;
    int rc = shx_read_file(p, &out, &len);
    if (rc < 0) fail_msg("cannot read %s: %s", p, strerror(-rc));
    free(p);
    return out;
}

static int mode_of(const char *dir, const char *rel) {
    char *p = shx_path_join(dir, rel);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    free(p);
    return (int)(st.st_mode & 07777);
}

static void expect_refused(const char *archive, const char *needle) {
    int rc = shx_source_prepare(archive, g_code, g_err, sizeof g_err);
    if (rc != SHX_EXIT_DATAERR) fail_msg("expected %d, got %d (%s)", SHX_EXIT_DATAERR, rc, g_err);
    if (!strstr(g_err, needle)) fail_msg("error \"%s\" lacks \"%s\"", g_err, needle);
    assert_non_null(strstr(g_err, archive));
    assert_non_null(strstr(g_err, "nothing was unpacked"));
    assert_code_empty();
}

/* ---- good sources ---------------------------------------------------------------------------------------- */

static void build_good(struct archive *a) {
    tar_dir(a, "./");
    tar_dir(a, "pkg/");
    tar_dir(a, "pkg/sub/");
    tar_dir(a, "pkg/sub/deep/");
    tar_file(a, "pkg/sub/deep/data.txt", "deep data\n", 0644);
    tar_file(a, "./train.sh", "#!/bin/sh\necho hi\n", 0755);
    tar_file(a, "suid", "x", 04755);
    tar_file(a, "readonly.txt", "ro", 0444);
    tar_symlink(a, "link", "pkg/sub");
    tar_symlink(a, "pkg/sub/up", "../../train.sh");
    tar_hardlink(a, "pkg/hard.sh", "train.sh");
    tar_file(a, "implicit/dir/file.py", "print(1)\n", 0644); /* parents not listed */
}

static void check_good(void) {
    char *s = slurp(g_code, "pkg/sub/deep/data.txt");
    assert_string_equal(s, "deep data\n");
    free(s);
    s = slurp(g_code, "train.sh");
    assert_string_equal(s, "#!/bin/sh\necho hi\n");
    free(s);
    s = slurp(g_code, "implicit/dir/file.py");
    assert_string_equal(s, "print(1)\n");
    free(s);
    assert_int_equal(mode_of(g_code, "train.sh"), 0755);                  /* executable bit preserved */
    assert_int_equal(mode_of(g_code, "suid"), 0755);                      /* setuid dropped */
    assert_int_equal(mode_of(g_code, "readonly.txt") & 0600, 0600);      /* owner can always write */
    char *p = shx_path_join(g_code, "link");
    char buf[64] = "";
    assert_int_equal(readlink(p, buf, sizeof buf - 1), 7);
    assert_string_equal(buf, "pkg/sub");
    free(p);
    s = slurp(g_code, "link/up"); /* link -> pkg/sub, up -> ../../train.sh */
    assert_string_equal(s, "#!/bin/sh\necho hi\n");
    free(s);
    struct stat a, b;
    char *pa = shx_path_join(g_code, "train.sh"), *pb = shx_path_join(g_code, "pkg/hard.sh");
    assert_int_equal(stat(pa, &a), 0);
    assert_int_equal(stat(pb, &b), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    free(pa);
    free(pb);
    assert_false(exists_anywhere("smhost-unpack")); /* no staging directory left */
    DIR *d = opendir(g_code);
    struct dirent *de;
    while ((de = readdir(d))) assert_null(strstr(de->d_name, ".smhost-unpack"));
    closedir(d);
}

static void test_good_tar_gz(void **state) {
    (void)state;
    struct archive *a = tar_open("code.tar.gz", 1);
    build_good(a);
    char *path = tar_close(a, "code.tar.gz");
    int rc = shx_source_prepare(path, g_code, g_err, sizeof g_err);
    if (rc) fail_msg("%s", g_err);
    check_good();
    free(path);
}

static void test_good_plain_tar(void **state) {
    (void)state;
    struct archive *a = tar_open("code.tar", 0);
    build_good(a);
    char *path = tar_close(a, "code.tar");
    assert_int_equal(shx_mkdirs(g_code, 0755), 0); /* existing but empty: still unpacked */
    int rc = shx_source_prepare(path, g_code, g_err, sizeof g_err);
    if (rc) fail_msg("%s", g_err);
    check_good();
    free(path);
}

static void test_directory_source(void **state) {
    (void)state;
    char *src = shx_path_join(g_dir, "src");
    char *cmd = shx_xasprintf("set -e; mkdir -p '%s'; cd '%s'; mkdir -p a/b/c; echo nested > a/b/c/n.txt; "
                        "printf '#!/bin/sh\\n' > run.sh; chmod 755 run.sh; echo shared > '%s/shared.py'; "
                        "ln -s '%s/shared.py' shared.py; ln -s a/b inner; mkdir empty",
                        src, src, g_outside, g_outside);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    int rc = shx_source_prepare(src, g_code, g_err, sizeof g_err);
    if (rc) fail_msg("%s", g_err);
    char *s = slurp(g_code, "a/b/c/n.txt");
    assert_string_equal(s, "nested\n");
    free(s);
    assert_int_equal(mode_of(g_code, "run.sh"), 0755);
    /* Symlinks are followed, as the toolkit's shutil.copytree does: the copy holds the files themselves. */
    s = slurp(g_code, "shared.py");
    assert_string_equal(s, "shared\n");
    free(s);
    struct stat st;
    char *p = shx_path_join(g_code, "inner");
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    free(p);
    p = shx_path_join(g_code, "empty");
    assert_true(shx_is_dir(p));
    free(p);
    assert_false(exists_anywhere(".smhost-unpack"));
    /* The source is untouched. */
    s = slurp(src, "a/b/c/n.txt");
    assert_string_equal(s, "nested\n");
    free(s);
    free(src);
}

static void test_directory_source_with_dangling_link(void **state) {
    (void)state;
    char *src = shx_path_join(g_dir, "src");
    char *cmd = shx_xasprintf("set -e; mkdir -p '%s'; cd '%s'; echo ok > ok.py; ln -s /nonexistent/x gone",
                              src, src);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    int rc = shx_source_prepare(src, g_code, g_err, sizeof g_err);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(g_err, "gone"));
    assert_code_empty();
    free(src);
}

static void test_directory_source_with_fifo(void **state) {
    (void)state;
    char *src = shx_path_join(g_dir, "src");
    assert_int_equal(shx_mkdirs(src, 0755), 0);
    char *fifo = shx_path_join(src, "pipe");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    int rc = shx_source_prepare(src, g_code, g_err, sizeof g_err);
    assert_int_equal(rc, SHX_EXIT_DATAERR);
    assert_non_null(strstr(g_err, "FIFO"));
    assert_code_empty();
    free(fifo);
    free(src);
}

static void test_directory_containing_code_dir(void **state) {
    (void)state;
    char *ml = shx_path_join(g_dir, "ml");
    assert_int_equal(shx_mkdirs(g_code, 0755), 0);
    assert_int_equal(shx_source_prepare(ml, g_code, g_err, sizeof g_err), SHX_EXIT_NOINPUT);
    assert_non_null(strstr(g_err, "contains the code directory"));
    /* The code directory itself: nothing to do. */
    assert_int_equal(shx_source_prepare(g_code, g_code, g_err, sizeof g_err), 0);
    free(ml);
}

/* ---- hostile archives ------------------------------------------------------------------------------------ */

static void test_dotdot(void **state) {
    (void)state;
    static const char *names[] = {"../evil", "../../evil", "a/../../../evil", "a/.."};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct archive *a = tar_open("dotdot.tar.gz", 1);
        tar_file(a, "good.txt", "fine", 0644);
        tar_dir(a, "a/");
        tar_file(a, names[i], "evil", 0644);
        char *path = tar_close(a, "dotdot.tar.gz");
        expect_refused(path, "'..'");
        assert_false(exists_anywhere("evil"));
        free(path);
    }
}

static void test_absolute_path(void **state) {
    (void)state;
    char *abs = shx_xasprintf("%s/abs/evil", g_outside);
    struct archive *a = tar_open("abs.tar.gz", 1);
    tar_file(a, "good.txt", "fine", 0644);
    tar_file(a, abs, "evil", 0644);
    char *path = tar_close(a, "abs.tar.gz");
    expect_refused(path, "absolute path");
    assert_false(exists_anywhere("evil"));
    assert_int_equal(access(abs, F_OK), -1);
    free(path);
    free(abs);
}

static void test_symlink_to_etc_then_file_through_it(void **state) {
    (void)state;
    unlink("/etc/smhost-test-evil");
    struct archive *a = tar_open("sym.tar.gz", 1);
    tar_symlink(a, "etc", "/etc");
    tar_file(a, "etc/smhost-test-evil", "evil", 0644);
    char *path = tar_close(a, "sym.tar.gz");
    expect_refused(path, "symlink to an absolute path");
    assert_int_equal(access("/etc/smhost-test-evil", F_OK), -1);
    free(path);

    /* The same with a relative link that climbs out, and one that climbs out through another link. */
    static const char *targets[] = {"../../outside", "../../../outside", "sub/../../../outside", "s/../../outside"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        a = tar_open("sym2.tar.gz", 1);
        tar_dir(a, "sub/");
        tar_symlink(a, "s", ".");
        tar_symlink(a, "out", targets[i]);
        tar_file(a, "out/evil", "evil", 0644);
        path = tar_close(a, "sym2.tar.gz");
        expect_refused(path, "\"out\"");
        assert_false(exists_anywhere("evil"));
        free(path);
    }
}

static void test_file_through_inner_symlink(void **state) {
    (void)state;
    /* A link that stays inside is fine, but libarchive's SECURE_SYMLINKS still refuses to write through it. */
    struct archive *a = tar_open("inner.tar.gz", 1);
    tar_dir(a, "sub/");
    tar_symlink(a, "lnk", "sub");
    tar_file(a, "lnk/file", "x", 0644);
    char *path = tar_close(a, "inner.tar.gz");
    expect_refused(path, "lnk/file");
    free(path);
}

static void test_hardlinks_out(void **state) {
    (void)state;
    struct archive *a = tar_open("hard.tar.gz", 1);
    tar_file(a, "good.txt", "fine", 0644);
    tar_hardlink(a, "passwd", "/etc/passwd");
    char *path = tar_close(a, "hard.tar.gz");
    expect_refused(path, "/etc/passwd");
    free(path);

    char *victim = shx_path_join(g_outside, "victim");
    assert_int_equal(shx_write_file(victim, "v", 1, 0), 0);
    a = tar_open("hard2.tar.gz", 1);
    tar_hardlink(a, "v", "../../outside/victim");
    path = tar_close(a, "hard2.tar.gz");
    expect_refused(path, "'..'");
    struct stat st;
    assert_int_equal(stat(victim, &st), 0);
    assert_int_equal(st.st_nlink, 1);
    free(path);

    /* A hard link reached through an inner symlink to a directory outside. */
    a = tar_open("hard3.tar.gz", 1);
    tar_symlink(a, "d", "sub");
    tar_dir(a, "sub/");
    tar_file(a, "sub/f", "f", 0644);
    tar_hardlink(a, "h", "d/f");
    path = tar_close(a, "hard3.tar.gz");
    expect_refused(path, "through a symlink");
    free(path);
    free(victim);
}

static void test_device_nodes_and_fifos(void **state) {
    (void)state;
    struct archive *a = tar_open("dev.tar.gz", 1);
    tar_file(a, "good.txt", "fine", 0644);
    tar_add(a, "null", AE_IFCHR, 0666, NULL, NULL, 0);
    char *path = tar_close(a, "dev.tar.gz");
    expect_refused(path, "device node");
    free(path);
    a = tar_open("fifo.tar.gz", 1);
    tar_add(a, "pipe", AE_IFIFO, 0644, NULL, NULL, 0);
    path = tar_close(a, "fifo.tar.gz");
    expect_refused(path, "FIFO");
    free(path);
}

/* ---- broken inputs --------------------------------------------------------------------------------------- */

static void test_corrupt_archives(void **state) {
    (void)state;
    /* Not an archive at all. */
    char *junk = shx_path_join(g_dir, "junk.tar.gz");
    assert_int_equal(shx_write_file(junk, "this is not a tar file, not even close.\n", 40, 0), 0);
    assert_int_equal(shx_source_prepare(junk, g_code, g_err, sizeof g_err), SHX_EXIT_DATAERR);
    assert_non_null(strstr(g_err, junk));
    assert_non_null(strstr(g_err, "(libarchive)"));
    assert_code_empty();

    /* A good archive cut short: the first entries were readable, the rest is gone. */
    struct archive *a = tar_open("big.tar.gz", 1);
    char *data = shx_xmalloc(200001);
    unsigned x = 12345;
    for (size_t i = 0; i < 200000; i++) data[i] = (char)('a' + ((x = x * 1103515245u + 12345u) >> 16) % 26);
    data[200000] = 0;
    tar_file(a, "one.txt", "first", 0644);
    tar_file(a, "two.bin", data, 0644);
    tar_file(a, "three.bin", data, 0644);
    char *path = tar_close(a, "big.tar.gz");
    free(data);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size * 6 / 10), 0);
    assert_int_equal(shx_source_prepare(path, g_code, g_err, sizeof g_err), SHX_EXIT_DATAERR);
    assert_non_null(strstr(g_err, "(libarchive)"));
    assert_code_empty();
    assert_false(exists_anywhere("one.txt"));
    free(path);
    free(junk);
}

static void test_s3_missing_and_urls(void **state) {
    (void)state;
    assert_int_equal(shx_source_prepare("s3://bucket/job/source/sourcedir.tar.gz", g_code, g_err, sizeof g_err),
                     SHX_EXIT_NOINPUT);
    assert_non_null(strstr(g_err, "s3:// sources are downloaded"));
    assert_non_null(strstr(g_err, g_code));
    assert_non_null(strstr(g_err, "s3://bucket/job/source/sourcedir.tar.gz"));

    assert_int_equal(shx_source_prepare("https://example.com/x.tar.gz", g_code, g_err, sizeof g_err),
                     SHX_EXIT_NOINPUT);
    assert_non_null(strstr(g_err, "only local paths"));

    char *missing = shx_path_join(g_dir, "no-such-dir");
    assert_int_equal(shx_source_prepare(missing, g_code, g_err, sizeof g_err), SHX_EXIT_NOINPUT);
    assert_non_null(strstr(g_err, missing));
    assert_non_null(strstr(g_err, "no such file or directory"));
    free(missing);

    assert_int_equal(shx_source_prepare("/dev/null", g_code, g_err, sizeof g_err), SHX_EXIT_NOINPUT);
    assert_non_null(strstr(g_err, "neither a directory nor a file"));
    assert_code_empty();
}

static void test_nothing_to_do(void **state) {
    (void)state;
    assert_int_equal(shx_source_prepare(NULL, g_code, g_err, sizeof g_err), 0);
    assert_int_equal(shx_source_prepare("", g_code, g_err, sizeof g_err), 0);
    /* A code directory with files in it is used as is, whatever the source says. */
    assert_int_equal(shx_mkdirs(g_code, 0755), 0);
    char *keep = shx_path_join(g_code, "keep.py");
    assert_int_equal(shx_write_file(keep, "k", 1, 0), 0);
    assert_int_equal(shx_source_prepare("s3://bucket/x.tar.gz", g_code, g_err, sizeof g_err), 0);
    assert_int_equal(shx_source_prepare("/no/such/path", g_code, g_err, sizeof g_err), 0);
    struct archive *a = tar_open("code.tar.gz", 1);
    tar_file(a, "other.py", "o", 0644);
    char *path = tar_close(a, "code.tar.gz");
    assert_int_equal(shx_source_prepare(path, g_code, g_err, sizeof g_err), 0);
    char *other = shx_path_join(g_code, "other.py");
    assert_int_equal(access(other, F_OK), -1);
    assert_int_equal(access(keep, F_OK), 0);
    free(other);
    free(path);
    free(keep);
}

static void test_cwd_restored(void **state) {
    (void)state;
    char before[4096], after[4096];
    assert_non_null(getcwd(before, sizeof before));
    struct archive *a = tar_open("c.tar.gz", 1);
    tar_file(a, "x", "x", 0644);
    tar_file(a, "../bad", "x", 0644);
    char *path = tar_close(a, "c.tar.gz");
    assert_int_equal(shx_source_prepare(path, g_code, g_err, sizeof g_err), SHX_EXIT_DATAERR);
    assert_non_null(getcwd(after, sizeof after));
    assert_string_equal(before, after);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_tar_gz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_good_plain_tar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_source_with_dangling_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_source_with_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_containing_code_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotdot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absolute_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_to_etc_then_file_through_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_through_inner_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hardlinks_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_nodes_and_fifos, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_archives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s3_missing_and_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_to_do, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cwd_restored, setup, teardown),
    };
    return cmocka_run_group_tests_name("source", tests, NULL, NULL);
}
