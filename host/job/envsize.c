/* See envsize.h. */
#include "job/envsize.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t name_len(const char *kv) {
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

static const shx_strvec *sort_env;
static int by_name_then_position(const void *a, const void *b) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const char *x = sort_env->v[i], *y = sort_env->v[j];
    size_t nx = name_len(x), ny = name_len(y);
    int c = memcmp(x, y, nx < ny ? nx : ny);
    if (!c) c = nx < ny ? -1 : nx > ny;
    if (!c) c = i < j ? -1 : i > j;
    return c;
}

void shx_env_dedupe(shx_strvec *env) {
    if (env->n < 2) return;
    size_t *order = shx_xcalloc(env->n, sizeof *order);
    for (size_t i = 0; i < env->n; i++) order[i] = i;
    sort_env = env;
    qsort(order, env->n, sizeof *order, by_name_then_position);
    sort_env = NULL;
    /* each run of one name: the first position gets the last value, the others go */
    for (size_t k = 0; k < env->n;) {
        size_t end = k + 1, n = name_len(env->v[order[k]]);
        while (end < env->n && name_len(env->v[order[end]]) == n && !memcmp(env->v[order[end]], env->v[order[k]], n))
            end++;
        if (end - k > 1) {
            free(env->v[order[k]]);
            env->v[order[k]] = env->v[order[end - 1]];
            env->v[order[end - 1]] = NULL;
            for (size_t m = k + 1; m + 1 < end; m++) {
                free(env->v[order[m]]);
                env->v[order[m]] = NULL;
            }
        }
        k = end;
    }
    free(order);
    size_t out = 0;
    for (size_t i = 0; i < env->n; i++)
        if (env->v[i]) env->v[out++] = env->v[i];
    env->n = out;
    env->v[out] = NULL;
}

int shx_exec_size_check(const char *const argv[], const char *const envp[], char *err, size_t errlen) {
    long page = sysconf(_SC_PAGESIZE), argmax = sysconf(_SC_ARG_MAX);
    size_t max_str = (size_t)(page > 0 ? page : 4096) * 32; /* MAX_ARG_STRLEN */
    size_t total = 0, biggest = 0;
    const char *big = NULL;
    int big_is_env = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *const *v = pass ? envp : argv;
        for (size_t i = 0; v && v[i]; i++) {
            size_t n = strlen(v[i]) + 1;
            total += n + sizeof(char *);
            if (n > biggest) biggest = n, big = v[i], big_is_env = pass;
        }
    }
    total += 2 * sizeof(char *);
    char what[80] = "";
    if (big) {
        size_t shown = big_is_env ? name_len(big) : strlen(big);
        snprintf(what, sizeof what, "%s %.*s%s", big_is_env ? "variable" : "argument", (int)(shown > 40 ? 40 : shown),
                 big, shown > 40 ? "..." : "");
    }
    if (biggest > max_str) {
        snprintf(err, errlen, "the program cannot be started: its %s is %zu bytes, more than the kernel allows for "
                 "one argument or environment variable (MAX_ARG_STRLEN, %zu bytes; execve would fail with E2BIG). "
                 "Pass fewer or smaller hyperparameters, or put large values in a file under the input channels",
                 what, biggest, max_str);
        return -1;
    }
    if (argmax > 0 && total > (size_t)argmax) {
        snprintf(err, errlen, "the program cannot be started: its arguments and environment take %zu bytes, more "
                 "than the kernel's limit of %ld bytes (ARG_MAX, a quarter of the stack limit `ulimit -s`; execve "
                 "would fail with E2BIG); the largest is the %s (%zu bytes). Pass fewer or smaller hyperparameters",
                 total, argmax, what, biggest);
        return -1;
    }
    return 0;
}
