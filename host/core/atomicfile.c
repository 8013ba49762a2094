/* See atomicfile.h. */
#include "core/atomicfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

int shx_write_file_atomic_excl(const char *path, const void *data, size_t len) {
    const char *slash = strrchr(path, '/');
    char *tmp = slash ? shx_xasprintf("%.*s/.%s.XXXXXX", (int)(slash - path), path, slash + 1)
                      : shx_xasprintf(".%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return -e;
    }
    int rc = 0;
    const char *p = data;
    while (len && !rc) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = w < 0 ? -errno : -ENOSPC;
        else p += w, len -= (size_t)w;
    }
    if (fchmod(fd, 0644) < 0 && !rc) rc = -errno;
    if (close(fd) < 0 && !rc) rc = -errno;
    if (!rc && link(tmp, path) < 0) rc = -errno;
    unlink(tmp);
    free(tmp);
    return rc;
}
