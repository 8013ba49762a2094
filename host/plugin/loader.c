/* Loading one plugin file and checking its ABI (the GStreamer version rule, the OBS size rule). */
#include "plugin/loader.h"

#include <ctype.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

const char *shx_kind_str(uint32_t kind) {
    switch (kind) {
    case SMH_KIND_RUNNER: return "runner";
    case SMH_KIND_HANDLER: return "handler";
    case SMH_KIND_BACKEND: return "backend";
    case SMH_KIND_LAUNCHER: return "launcher";
    }
    return "unknown";
}

static int refuse(shx_plugin *p, shx_load_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(shx_plugin *p, shx_load_status st, const char *fmt, ...) {
    p->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->reason, sizeof p->reason, fmt, ap);
    va_end(ap);
    return -1; /* the handle stays open until shx_plugin_unload, so the listing can still name the plugin */
}

/* Copy a size-prefixed struct: refuse larger than known, zero-fill smaller. */
static int copy_sized(void *dst, size_t known, const void *src, size_t minimum, uint32_t *size_out) {
    uint32_t size;
    memcpy(&size, src, sizeof size);
    *size_out = size;
    if (size > known) return 1;
    if (size < minimum) return -1;
    memset(dst, 0, known);
    memcpy(dst, src, size);
    return 0;
}

static int valid_name(const char *n) {
    if (!n || !*n || strlen(n) > 63) return 0;
    for (const char *c = n; *c; c++)
        if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_' || *c == '-')) return 0;
    return 1;
}

int shx_plugin_load(const char *path, shx_plugin *p) {
    memset(p, 0, sizeof *p);
    p->path = shx_xstrdup(path);
    dlerror();
    p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->handle) {
        const char *e = dlerror();
        return refuse(p, SHX_LOAD_DLOPEN, "%s cannot be loaded: %s. Check its dependencies with `ldd %s`.", path,
                      e ? e : "unknown error", path);
    }
    dlerror();
    void *sym = dlsym(p->handle, SMH_ENTRY_SYMBOL);
    if (!sym)
        return refuse(p, SHX_LOAD_NO_ENTRY,
                      "%s exports no %s(): it is not an smhost plugin, or it was built without SMH_PLUGIN_DEFINE.",
                      path, SMH_ENTRY_SYMBOL);
    smh_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const smh_plugin *d = entry();
    if (!d) return refuse(p, SHX_LOAD_NULL, "%s: %s() returned no descriptor.", path, SMH_ENTRY_SYMBOL);

    /* The version rule first: a struct of another major may have any layout after the first 8 bytes. */
    uint16_t major = d->abi_major, minor = d->abi_minor;
    if (major != SMH_ABI_MAJOR)
        return refuse(p, SHX_LOAD_WRONG_MAJOR,
                      "%s was built for plugin ABI %u.%u, but this smhost speaks ABI %d.%d (majors must match). "
                      "Rebuild the plugin against smhost's plugin.h.",
                      path, major, minor, SMH_ABI_MAJOR, SMH_ABI_MINOR);
    if (minor > SMH_ABI_MINOR)
        return refuse(p, SHX_LOAD_NEWER_MINOR,
                      "%s was built for plugin ABI %u.%u, newer than this smhost's ABI %d.%d. Upgrade smhost, or "
                      "rebuild the plugin against ABI %d.%d.",
                      path, major, minor, SMH_ABI_MAJOR, SMH_ABI_MINOR, SMH_ABI_MAJOR, SMH_ABI_MINOR);
    uint32_t size;
    int c = copy_sized(&p->desc, sizeof p->desc, d, offsetof(smh_plugin, kind) + sizeof(uint32_t), &size);
    if (c > 0)
        return refuse(p, SHX_LOAD_OVERSIZED,
                      "%s has a %u-byte descriptor, larger than the %zu bytes of ABI %d.%d although it claims ABI "
                      "%u.%u: it was built against a different plugin.h. Rebuild it.",
                      path, size, sizeof(smh_plugin), SMH_ABI_MAJOR, SMH_ABI_MINOR, major, minor);
    if (c < 0)
        return refuse(p, SHX_LOAD_UNDERSIZED, "%s has a %u-byte descriptor, too small for ABI %u.%u. Rebuild it.",
                      path, size, major, minor);
    if (!valid_name(p->desc.name))
        return refuse(p, SHX_LOAD_INVALID,
                      "%s: plugin name %s%s%s is not valid (use 1-63 of a-z, 0-9, '_' and '-').", path,
                      p->desc.name ? "\"" : "", p->desc.name ? p->desc.name : "(none)", p->desc.name ? "\"" : "");
    if (p->desc.runner) {
        if (copy_sized(&p->runner, sizeof p->runner, p->desc.runner, sizeof(uint32_t), &size))
            return refuse(p, SHX_LOAD_OVERSIZED, "%s: its runner ops table is %u bytes, larger than ABI %d.%d's %zu.",
                          path, size, SMH_ABI_MAJOR, SMH_ABI_MINOR, sizeof(smh_runner_ops));
        p->has_runner = p->runner.run != NULL;
    }
    if (p->desc.handler) {
        if (copy_sized(&p->handler, sizeof p->handler, p->desc.handler, sizeof(uint32_t), &size))
            return refuse(p, SHX_LOAD_OVERSIZED, "%s: its handler ops table is %u bytes, larger than ABI %d.%d's %zu.",
                          path, size, SMH_ABI_MAJOR, SMH_ABI_MINOR, sizeof(smh_handler_ops));
        p->has_handler = p->handler.invoke != NULL;
    }
    if (p->desc.backend) { /* v1.1: a 1.0 descriptor has zero in this slot (it was reserved[0]) */
        if (copy_sized(&p->backend, sizeof p->backend, p->desc.backend, sizeof(uint32_t), &size))
            return refuse(p, SHX_LOAD_OVERSIZED, "%s: its backend ops table is %u bytes, larger than ABI %d.%d's %zu.",
                          path, size, SMH_ABI_MAJOR, SMH_ABI_MINOR, sizeof(smh_backend_ops));
        p->has_backend = p->backend.probe != NULL && p->backend.list != NULL;
    }
    if (p->desc.launcher) { /* v1.1: reserved[1] in 1.0, zero there */
        if (copy_sized(&p->launcher, sizeof p->launcher, p->desc.launcher, sizeof(uint32_t), &size))
            return refuse(p, SHX_LOAD_OVERSIZED, "%s: its launcher ops table is %u bytes, larger than ABI %d.%d's %zu.",
                          path, size, SMH_ABI_MAJOR, SMH_ABI_MINOR, sizeof(smh_launcher_ops));
        p->has_launcher = p->launcher.plan != NULL && p->launcher.flags != NULL;
    }
    if (p->desc.kind == SMH_KIND_RUNNER && !p->has_runner)
        return refuse(p, SHX_LOAD_INVALID, "%s: plugin '%s' is a runner but has no runner->run().", path, p->desc.name);
    if (p->desc.kind == SMH_KIND_HANDLER && !p->has_handler)
        return refuse(p, SHX_LOAD_INVALID, "%s: plugin '%s' is a handler but has no handler->invoke().", path,
                      p->desc.name);
    if (p->desc.kind == SMH_KIND_BACKEND && !p->has_backend)
        return refuse(p, SHX_LOAD_INVALID,
                      "%s: plugin '%s' is a backend but has no backend->probe() and backend->list() (they need "
                      "plugin ABI 1.1: <smhost/device.h>).", path, p->desc.name);
    if (p->desc.kind == SMH_KIND_LAUNCHER && !p->has_launcher)
        return refuse(p, SHX_LOAD_INVALID,
                      "%s: plugin '%s' is a launcher but has no launcher->plan() and launcher->flags (they need "
                      "plugin ABI 1.1: <smhost/launcher.h>).", path, p->desc.name);
    p->status = SHX_LOAD_OK;
    return 0;
}

void shx_plugin_unload(shx_plugin *p) {
    if (p->handle) dlclose(p->handle);
    free(p->path);
    memset(p, 0, sizeof *p);
}
