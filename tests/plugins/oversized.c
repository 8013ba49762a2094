/* Test plugin: a descriptor 64 bytes larger than sizeof(smh_plugin), as a plugin built against a future header
 * with more members would have; the host must refuse it (it cannot know what the extra members mean).
 * Claims ".oversized"; its run() writes <model>/oversized.txt, which must never appear. */
#include "marker.h"

static int bad_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    return marker_run("oversized", job, err, errlen);
}
static const smh_runner_ops bad_ops = {.struct_size = sizeof(smh_runner_ops), .run = bad_run};
static const char *const bad_ext[] = {".oversized", NULL};

typedef struct future_plugin {
    smh_plugin v1;
    char future_members[64];
} future_plugin;

SMH_EXPORT const smh_plugin *smh_plugin_entry(void);
SMH_EXPORT const smh_plugin *smh_plugin_entry(void) {
    static const future_plugin d = {.v1 = {.struct_size = (uint32_t)sizeof(future_plugin),
                                           .abi_major = SMH_ABI_MAJOR,
                                           .abi_minor = SMH_ABI_MINOR,
                                           .name = "oversized",
                                           .version = "0.1-test",
                                           .description = "test: descriptor larger than the host's",
                                           .kind = SMH_KIND_RUNNER,
                                           .extensions = bad_ext,
                                           .init = marker_init,
                                           .runner = &bad_ops}};
    return &d.v1;
}
