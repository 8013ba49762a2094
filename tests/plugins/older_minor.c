/* Test plugin: a descriptor shorter than the host's smh_plugin, as one built against an older minor header is.
 * struct_size ends after `runner`; the host must read only that much and treat the rest as zero.  The members
 * past struct_size hold junk on purpose, so a host that reads them anyway may misbehave visibly.
 * Claims ".olderminor" and writes <model>/older_minor.txt. */
#include "marker.h"

static int old_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    return marker_run("older_minor", job, err, errlen);
}
static const smh_runner_ops old_ops = {.struct_size = sizeof(smh_runner_ops), .run = old_run};
static const char *const old_ext[] = {".olderminor", NULL};
static const smh_handler_ops junk_handler = {.struct_size = 0xdeadbeefu};

SMH_EXPORT const smh_plugin *smh_plugin_entry(void);
SMH_EXPORT const smh_plugin *smh_plugin_entry(void) {
    static const smh_plugin d = {.struct_size = (uint32_t)offsetof(smh_plugin, handler),
                                 .abi_major = SMH_ABI_MAJOR,
                                 .abi_minor = SMH_ABI_MINOR > 0 ? SMH_ABI_MINOR - 1 : 0,
                                 .name = "older_minor",
                                 .version = "0.1-test",
                                 .description = "test: a short descriptor (older minor)",
                                 .kind = SMH_KIND_RUNNER,
                                 .extensions = old_ext,
                                 .init = marker_init,
                                 .runner = &old_ops,
                                 .handler = &junk_handler,
                                 .backend = (const smh_backend_ops *)(const void *)&junk_handler,
                                 .reserved = {(void *)&junk_handler}};
    return &d;
}
