/* The kernel's OOM killer as seen from smhost's memory cgroup (see oom.h). */
#include "supervisor/oom.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* The directory of smhost's memory cgroup: v1 (a "memory" controller line) wins over v2 ("0::"). Caller frees;
 * NULL when none.  *v2 tells which. */
static char *memcg_dir(int *v2) {
    char *txt;
    size_t len;
    if (shx_read_file("/proc/self/cgroup", &txt, &len) < 0) return NULL;
    char *v2path = NULL, *dir = NULL;
    char *lsave = NULL;
    for (char *line = strtok_r(txt, "\n", &lsave); line && !dir; line = strtok_r(NULL, "\n", &lsave)) {
        /* hierarchy-ID:controller-list:path */
        char *c1 = strchr(line, ':');
        if (!c1) continue;
        char *c2 = strchr(c1 + 1, ':');
        if (!c2) continue;
        *c2 = 0;
        const char *ctrls = c1 + 1, *path = c2 + 1;
        if (c1 - line == 1 && line[0] == '0' && !*ctrls) { /* "0::path": the v2 hierarchy */
            free(v2path);
            v2path = shx_xstrdup(path);
            continue;
        }
        char *list = shx_xstrdup(ctrls);
        /* controller list is comma separated */
        char *save = NULL;
        for (char *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
            if (!strcmp(c, "memory")) {
                char *cand = shx_path_join("/sys/fs/cgroup/memory", path);
                if (shx_is_dir(cand)) dir = cand;
                else {
                    /* Inside a container with a cgroup namespace the mount already is our cgroup. */
                    free(cand);
                    if (shx_is_file("/sys/fs/cgroup/memory/memory.oom_control"))
                        dir = shx_xstrdup("/sys/fs/cgroup/memory");
                }
                *v2 = 0;
                break;
            }
        }
        free(list);
    }
    free(txt);
    if (!dir && v2path) {
        char *cand = shx_path_join("/sys/fs/cgroup", v2path);
        char *ev = shx_path_join(cand, "memory.events");
        if (shx_is_file(ev)) {
            dir = cand;
            *v2 = 1;
        } else {
            free(cand);
        }
        free(ev);
    }
    free(v2path);
    return dir;
}

/* The number after `key ` in a "key value" lines file, or -1. */
static int64_t keyed_value(const char *path, const char *key) {
    char *txt;
    size_t len;
    if (shx_read_file(path, &txt, &len) < 0) return -1;
    int64_t v = -1;
    size_t kl = strlen(key);
    for (char *line = txt; line && *line;) {
        if (!strncmp(line, key, kl) && line[kl] == ' ') {
            v = strtoll(line + kl + 1, NULL, 10);
            break;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    free(txt);
    return v;
}

int64_t shx_oom_kill_count(void) {
    int v2 = 0;
    char *dir = memcg_dir(&v2);
    if (!dir) return -1;
    char *f = shx_path_join(dir, v2 ? "memory.events" : "memory.oom_control");
    int64_t n = keyed_value(f, "oom_kill");
    free(f);
    free(dir);
    return n;
}

uint64_t shx_memory_limit(void) {
    int v2 = 0;
    char *dir = memcg_dir(&v2);
    if (!dir) return 0;
    char *f = shx_path_join(dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    char *txt;
    size_t len;
    uint64_t lim = 0;
    if (shx_read_file(f, &txt, &len) == 0) {
        if (strncmp(txt, "max", 3)) {
            unsigned long long v = strtoull(txt, NULL, 10);
            /* v1 reports "unlimited" as PAGE_COUNTER_MAX pages: anything near 2^63. */
            if (v < (1ULL << 62)) lim = v;
        }
        free(txt);
    }
    free(f);
    free(dir);
    return lim;
}
