/* The hand-off from smhost to pyboot.so (python/pyboot.c), the small library smhost preloads into /usr/bin/python3
 * so that Python jobs and the zygote of Python handlers run in python3 itself (docs/python.md).
 *
 * The python runner plugin (plugins/python, in the job process) and the serve zygote (host/serve/pyzygote.c)
 * exec() SMHPY_PYTHON3 with
 *
 *   LD_PRELOAD=<libdir>/smhost/internal/pyboot.so[:<what LD_PRELOAD was>]
 *   SMHOST_PYBOOT=1,job,STRIP,KEEP,STATUS_FD,JOB_FD[,MODULE:FUNCTION]     a training job
 *   SMHOST_PYBOOT=1,zygote,STRIP,KEEP                                       smhost serve's Python zygote
 *
 * and python3's argv: for a job the toolkit's own command line (`python3 /opt/ml/code/train.py ARGS`,
 * `python3 -m pkg.mod ARGS`; for MODULE:FUNCTION, SAGEMAKER_TRAINING_MODULE, `python3 -c 'from MODULE import
 * FUNCTION; FUNCTION()'`, which pyboot runs itself, with sys.argv ["train"]), for the zygote `python3
 * --serve-zygote ...` (pyzygote.c's options).
 *
 * STRIP  how many bytes at the start of LD_PRELOAD smhost added (pyboot.so, and in sanitizer builds the ASan runtime
 *        before it, with the separating colon when KEEP is 1)
 * KEEP   1 when LD_PRELOAD was set before (it is put back to the rest), 0 when it was not (it is removed)
 * STATUS_FD  the job's status page (smh_host_api.status_fd, no FD_CLOEXEC), or -1: phase and failure reason
 * JOB_FD     a sealed memfd holding the job as one JSON object whose members are the `smhost` module's attributes
 *            (model_dir ..., hyperparameters, channels, hosts, current_host, master_host, is_master, num_cpus,
 *            num_gpus, num_neurons, devices); parsed only when user code imports smhost
 *
 * pyboot removes both variables (and its own entry from LD_PRELOAD) and closes both descriptors before any Python
 * code runs, so neither the program's os.environ nor its child processes see them.  Both sides are built from this
 * tree, so the format may change with smhost's version (the leading 1); it is no public interface. */
#ifndef SMHPY_HANDOFF_H
#define SMHPY_HANDOFF_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The python3 that runs Python jobs and handlers: sys.executable, and the interpreter that runs pip. */
#ifndef SMHPY_PYTHON3
#define SMHPY_PYTHON3 "/usr/bin/python3"
#endif
#define SMHPY_PYBOOT_NAME "pyboot.so" /* in <dir of smhost>/../lib/smhost/internal/ */
#define SMHPY_PYBOOT_DIR "/../lib/smhost/internal/"
#define SMHPY_HANDOFF_ENV "SMHOST_PYBOOT"
#define SMHPY_HANDOFF_VERSION "1"

/* The two variables above, set for the exec() of python3: LD_PRELOAD becomes `first` (NULL or the ASan runtime of a
 * sanitizer build), pyboot, then what LD_PRELOAD held; SMHOST_PYBOOT becomes "1,MODE,STRIP,KEEP" followed by `rest`
 * ("" or ",STATUS_FD,JOB_FD[,MODULE:FUNCTION]").  Returns 0, or -1 with errno set (nothing changed then). */
static inline int smhpy_handoff_setenv(const char *first, const char *pyboot, const char *mode, const char *rest) {
    const char *old = getenv("LD_PRELOAD");
    size_t strip = (first ? strlen(first) + 1 : 0) + strlen(pyboot) + (old ? 1 : 0); /* what pyboot takes off */
    size_t plen = strip + (old ? strlen(old) : 0) + 1, hlen = strlen(mode) + strlen(rest) + 64;
    char *preload = malloc(plen), *handoff = malloc(hlen);
    int rc = -1;
    if (preload && handoff) {
        snprintf(preload, plen, "%s%s%s%s%s", first ? first : "", first ? ":" : "", pyboot, old ? ":" : "",
                 old ? old : "");
        snprintf(handoff, hlen, SMHPY_HANDOFF_VERSION ",%s,%zu,%d%s", mode, strip, old != NULL, rest);
        rc = setenv("LD_PRELOAD", preload, 1) == 0 && setenv(SMHPY_HANDOFF_ENV, handoff, 1) == 0 ? 0 : -1;
    } else {
        errno = ENOMEM;
    }
    free(preload);
    free(handoff);
    return rc;
}

typedef enum smhpy_kind {
    SMHPY_SCRIPT = 1, /* python3 script.py args */
    SMHPY_MODULE = 2, /* python3 -m module args (a module name given as the program, or an installed package) */
    SMHPY_ENTRY = 3   /* SAGEMAKER_TRAINING_MODULE=module:function: import module, call function() */
} smhpy_kind;
#endif
