/* Loading one plugin file: dlopen, the entry symbol, and the ABI checks (see sdk/include/smhost/plugin.h). */
#ifndef SHX_LOADER_H
#define SHX_LOADER_H
#include <smhost/device.h>
#include <smhost/launcher.h>

typedef enum shx_load_status {
    SHX_LOAD_OK = 0,
    SHX_LOAD_DLOPEN,       /* dlopen failed */
    SHX_LOAD_NO_ENTRY,     /* no smh_plugin_entry */
    SHX_LOAD_NULL,         /* the entry returned NULL */
    SHX_LOAD_WRONG_MAJOR,  /* another ABI major */
    SHX_LOAD_NEWER_MINOR,  /* built against a newer minor than this host */
    SHX_LOAD_OVERSIZED,    /* a struct larger than this host knows */
    SHX_LOAD_UNDERSIZED,   /* too small to hold the v1.0 essentials */
    SHX_LOAD_INVALID       /* bad name, kind without ops ... */
} shx_load_status;

typedef struct shx_plugin {
    char *path;
    void *handle;
    shx_load_status status;
    char reason[600];            /* why it was refused: names the file, the problem and both versions */
    smh_plugin desc;             /* copy, zero-filled past the plugin's struct_size */
    smh_runner_ops runner;       /* copies, zero-filled likewise */
    smh_handler_ops handler;
    smh_backend_ops backend;     /* v1.1 */
    smh_launcher_ops launcher;   /* v1.1 */
    int has_runner, has_handler, has_backend, has_launcher;
} shx_plugin;

/* One word for a status ("wrong ABI major"). */
/* Load path into *p.  Returns 0, or -1 with p->status / p->reason set.  Call shx_plugin_unload either way. */
int shx_plugin_load(const char *path, shx_plugin *p);
void shx_plugin_unload(shx_plugin *p);
const char *shx_kind_str(uint32_t kind);
#endif
