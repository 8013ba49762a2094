/* gethostname.so: inside every process of a distributed job, gethostname() returns the SageMaker host name
 * (resourceconfig.json's current_host), because every SageMaker container has the same hostname and MPI and NCCL
 * would take all ranks for local ones.  The toolkit ships the same kind of library.  smhost puts it first in
 * LD_PRELOAD and keeps the user's own LD_PRELOAD after it.  The ML root is $SAGEMAKER_BASE_DIR, else /opt/ml; when
 * the file or the key is missing the real gethostname() answers. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_name[256];
static int g_state; /* after load(): 1 have a name, else none */
static pthread_once_t g_once = PTHREAD_ONCE_INIT; /* threads calling gethostname() at once: one load() */

static void load(void) {
    const char *base = getenv("SAGEMAKER_BASE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/input/config/resourceconfig.json", base && *base ? base : "/opt/ml");
    FILE *f = fopen(path, "re");
    if (!f) return;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *k = strstr(buf, "\"current_host\"");
    if (!k) return;
    k = strchr(k + 14, ':');
    if (!k) return;
    k++;
    while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r') k++;
    if (*k != '"') return;
    k++;
    size_t i = 0;
    while (*k && *k != '"' && *k != '\\' && i < sizeof g_name - 1) g_name[i++] = *k++;
    if (*k != '"' || !i) return;
    g_name[i] = 0;
    g_state = 1;
}

__attribute__((visibility("default"))) int gethostname(char *name, size_t len) {
    pthread_once(&g_once, load);
    if (g_state != 1) {
        int (*real)(char *, size_t) = (int (*)(char *, size_t))dlsym(RTLD_NEXT, "gethostname");
        if (real) return real(name, len);
        errno = ENOSYS;
        return -1;
    }
    size_t n = strlen(g_name);
    if (n + 1 > len) {
        if (len) memcpy(name, g_name, len);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(name, g_name, n + 1);
    return 0;
}
