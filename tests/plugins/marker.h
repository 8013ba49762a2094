/* Shared by the test plugins: write <model>/<name>.txt saying that a plugin's run() ran, and for which program. */
#ifndef TESTS_PLUGINS_MARKER_H
#define TESTS_PLUGINS_MARKER_H
#include <stdio.h>
#include <smhost/plugin.h>

/* Set by each plugin's init(); the host table outlives the job process. */
static const smh_host_api *marker_host;

static inline smh_status marker_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    (void)err, (void)errlen;
    marker_host = host;
    *state = NULL;
    return SMH_OK;
}

/* Writes the marker and returns the exit code the job asked for (hyperparameter exit_code, default 0). */
static inline int marker_run(const char *name, const smh_job *job, char *err, size_t errlen) {
    const smh_host_api *h = marker_host;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.txt", h->job_path(job, SMH_PATH_MODEL), name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot write %s", name, path);
        return SMH_E_FAIL;
    }
    fprintf(f, "%s ran %s\n", name, h->job_program(job));
    for (const char *const *a = h->job_args(job); a && *a; a++)
        fprintf(f, "arg %s\n", *a);
    fclose(f);
    int64_t code = 0;
    if (h->hp_int64(job, "exit_code", &code) != SMH_OK)
        code = 0;
    h->log(name, SMH_LOG_INFO, "%s ran %s", name, h->job_program(job));
    return (int)code;
}
#endif
