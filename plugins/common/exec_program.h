/* Shared by the shell and exec runners: replace the job process with PREFIX... PROGRAM ARGS... (no shell string).
 * Header-only so each plugin stays one self-contained .so. */
#ifndef SMHOST_PLUGINS_EXEC_PROGRAM_H
#define SMHOST_PLUGINS_EXEC_PROGRAM_H
#include <smhost/plugin.h>
#include <stdlib.h>

/* prefix may be NULL.  Returns only on failure (host->exec's status). */
static inline int smh_exec_program(const smh_host_api *host, const smh_job *job, const char *prefix, char *err,
                                   size_t errlen) {
    const char *const *args = host->job_args(job);
    size_t n = 0;
    while (args[n]) n++;
    const char **argv = calloc(n + 3, sizeof *argv);
    if (!argv) return SMH_E_NOMEM;
    size_t k = 0;
    if (prefix) argv[k++] = prefix;
    argv[k++] = host->job_program(job);
    for (size_t i = 0; i < n; i++) argv[k++] = args[i];
    smh_status s = host->exec(job, argv, NULL, err, errlen);
    free(argv);
    return s;
}
#endif
