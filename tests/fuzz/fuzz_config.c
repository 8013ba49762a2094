/* The smhost.ini reader, on arbitrary file contents. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    static int fd = -1;
    if (fd < 0) fd = memfd_create("smhost.ini", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    char path[64], err[2048];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    shx_config cfg;
    int rc = shx_config_load_file(&cfg, path, 1, err, sizeof err);
    FUZZ_CHECK(rc == 0 || (rc == -1 && err[0]), "an error without a message");
    shx_strvec backends = {0};
    shx_config_device_backends(&cfg, &backends);
    shx_config_runner_for(&cfg, ".py");
    shx_strvec_free(&backends);
    shx_config_free(&cfg);
    return 0;
}
