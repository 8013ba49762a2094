/* The sagemaker_submit_directory unpacker on arbitrary archives, in a temporary directory: whatever the input,
 * nothing lands outside the code directory, and a failure leaves it empty. */
#include <dirent.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "fuzz.h"
#include "unpack/source.h"

static char root[64] = "/tmp/smhost-fuzz-unpack-XXXXXX", code[128], archive[128], outside[128];

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    remove(path);
    return 0;
}

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    if (!code[0]) {
        if (!mkdtemp(root)) abort();
        snprintf(code, sizeof code, "%s/ml/code", root);
        snprintf(archive, sizeof archive, "%s/src.tar.gz", root);
        snprintf(outside, sizeof outside, "%s/ml", root);
        setenv("SMHOST_UNPACK_MAX_MB", "16", 1); /* bombs stop early */
        setenv("SMHOST_UNPACK_MAX_FILES", "256", 1);
    }
    nftw(outside, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    FILE *f = fopen(archive, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
    char err[4096] = "";
    int rc = shx_source_prepare(archive, code, err, sizeof err);
    FUZZ_CHECK(rc == 0 || err[0], "exit code %d without a message", rc);
    if (rc) FUZZ_CHECK(entries(code) == 0, "a failed unpack (%d: %s) left files in the code directory", rc, err);
    FUZZ_CHECK(entries(outside) <= 1, "something was written next to the code directory");
    FUZZ_CHECK(entries(root) == 2, "something was written outside the ML root");
    return 0;
}
