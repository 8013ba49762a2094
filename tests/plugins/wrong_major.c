/* Test plugin: a descriptor built for another major ABI (SMH_ABI_MAJOR+1); must be refused.  Claims ".wrongmajor" programs; its run() writes <model>/wrong_major.txt, which
 * must never appear. */
#include "marker.h"

static int bad_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    return marker_run("wrong_major", job, err, errlen);
}
static const smh_runner_ops bad_ops = {.struct_size = sizeof(smh_runner_ops), .run = bad_run};
static const char *const bad_ext[] = {".wrongmajor", NULL};

SMH_EXPORT const smh_plugin *smh_plugin_entry(void);
SMH_EXPORT const smh_plugin *smh_plugin_entry(void) {
    static const smh_plugin d = {.struct_size = (uint32_t)sizeof(smh_plugin),
                                 .abi_major = SMH_ABI_MAJOR + 1,
                                 .abi_minor = SMH_ABI_MINOR,
                                 .name = "wrong_major",
                                 .version = "0.1-test",
                                 .description = "test: built for another major ABI (SMH_ABI_MAJOR+1); must be refused",
                                 .kind = SMH_KIND_RUNNER,
                                 .extensions = bad_ext,
                                 .init = marker_init,
                                 .runner = &bad_ops};
    return &d;
}
