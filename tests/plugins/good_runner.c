/* A well-formed runner built with SMH_PLUGIN_DEFINE: claims ".good" programs and writes <model>/good_runner.txt. */
#include "marker.h"

static int good_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    return marker_run("good_runner", job, err, errlen);
}
static const smh_runner_ops good_ops = {.struct_size = sizeof(smh_runner_ops), .run = good_run};
static const char *const good_ext[] = {".good", NULL};

SMH_PLUGIN_DEFINE(.name = "good_runner", .version = "0.1-test", .description = "test: a good runner for .good files",
                  .kind = SMH_KIND_RUNNER, .extensions = good_ext, .init = marker_init, .runner = &good_ops)
