/* Finding plugins: the search path, lookup by name, the full scan (registry.h). */
#include "plugin/registry.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

static void add_path_list(shx_strvec *dirs, const char *list) {
    if (!list) return;
    char *copy = shx_xstrdup(list), *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
        if (*d) shx_strvec_push(dirs, d);
    free(copy);
}

void shx_registry_init(shx_registry *r, const shx_config *cfg) {
    memset(r, 0, sizeof *r);
    add_path_list(&r->dirs, getenv("SMHOST_PLUGIN_PATH"));
    if (cfg)
        for (size_t i = 0; i < cfg->plugin_path.n; i++) shx_strvec_push(&r->dirs, cfg->plugin_path.v[i]);
    char *self = shx_self_dir();
    shx_strvec_take(&r->dirs, shx_path_join(self, "../lib/smhost/plugins"));
    free(self);
}

void shx_registry_free(shx_registry *r) {
    for (size_t i = 0; i < r->n; i++) shx_plugin_unload(&r->items[i]); /* leaves each entry zeroed */
    shx_registry_release(r);
}

void shx_registry_release(shx_registry *r) {
    for (size_t i = 0; i < r->n; i++) free(r->items[i].path);
    free(r->items);
    shx_strvec_free(&r->dirs);
    memset(r, 0, sizeof *r);
}

/* Load a file once; returns its entry. */
static shx_plugin *load_once(shx_registry *r, const char *path) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->items[i].path, path)) return &r->items[i];
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->items = shx_xrealloc(r->items, r->cap * sizeof *r->items);
    }
    shx_plugin *p = &r->items[r->n++];
    if (shx_plugin_load(path, p) < 0) shx_log(SHX_WARNING, "skipping plugin %s", p->reason);
    else shx_log(SHX_DEBUG, "loaded plugin '%s' %s (ABI %u.%u) from %s", p->desc.name,
                 p->desc.version ? p->desc.version : "", p->desc.abi_major, p->desc.abi_minor, path);
    return p;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void shx_registry_scan(shx_registry *r) {
    if (r->scanned) return;
    r->scanned = 1;
    for (size_t i = 0; i < r->dirs.n; i++) {
        DIR *d = opendir(r->dirs.v[i]);
        if (!d) continue;
        shx_strvec names = {0};
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t l = strlen(e->d_name);
            if (l > 3 && !strcmp(e->d_name + l - 3, ".so")) shx_strvec_push(&names, e->d_name);
        }
        closedir(d);
        if (names.n > 1) qsort(names.v, names.n, sizeof *names.v, cmp_names);
        for (size_t k = 0; k < names.n; k++) {
            char *path = shx_path_join(r->dirs.v[i], names.v[k]);
            load_once(r, path);
            free(path);
        }
        shx_strvec_free(&names);
    }
}

static void append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...) {
    size_t used = strlen(buf);
    if (used + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

const shx_plugin *shx_registry_find(shx_registry *r, const char *name, char *why, size_t whylen) {
    if (why && whylen) why[0] = 0;
    /* Fast path: the file named after the plugin, so a job loads one plugin, not all of them. */
    for (size_t i = 0; i < r->dirs.n; i++) {
        char *file = shx_xasprintf("%s.so", name);
        char *path = shx_path_join(r->dirs.v[i], file);
        free(file);
        struct stat st;
        if (stat(path, &st) == 0) {
            shx_plugin *p = load_once(r, path);
            if (p->status == SHX_LOAD_OK && !strcmp(p->desc.name, name)) {
                free(path);
                return p;
            }
        }
        free(path);
    }
    shx_registry_scan(r);
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].status == SHX_LOAD_OK && !strcmp(r->items[i].desc.name, name)) return &r->items[i];
    if (why && whylen) {
        int any = 0;
        for (size_t i = 0; i < r->n; i++) {
            const char *base = strrchr(r->items[i].path, '/');
            base = base ? base + 1 : r->items[i].path;
            size_t nl = strlen(name);
            if (r->items[i].status != SHX_LOAD_OK && !strncmp(base, name, nl) && !strcmp(base + nl, ".so")) {
                append(why, whylen, "%sit was refused: %s", any++ ? "; " : "", r->items[i].reason);
            }
        }
        if (!any) {
            append(why, whylen, "no plugin named '%s' was found in", name);
            for (size_t i = 0; i < r->dirs.n; i++) append(why, whylen, "%s %s", i ? "," : "", r->dirs.v[i]);
            append(why, whylen, ". Install it there, or add its directory to SMHOST_PLUGIN_PATH");
        }
    }
    return NULL;
}
