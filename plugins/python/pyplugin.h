/* The embedded Python runner: internal interfaces shared by its files (nothing here is exported). */
#ifndef SMHPY_PYPLUGIN_H
#define SMHPY_PYPLUGIN_H
#include <stddef.h>
#include <smhost/plugin.h>

/* The python3 of the installation whose libpython the plugin embeds (plugin.mk passes the Makefile's
 * PYTHON3): it becomes sys.executable and runs pip. */
#ifndef SMHPY_PYTHON3
#define SMHPY_PYTHON3 "/usr/bin/python3"
#endif
#define SMHPY_NAME "python"
#define SMHPY_FAILURE_BUDGET 1024 /* bytes of FailureReason SageMaker shows */

typedef enum smhpy_kind {
    SMHPY_SCRIPT = 1,  /* python3 script.py args */
    SMHPY_MODULE = 2,  /* python3 -m module args (a module name given as the program, or an installed package) */
    SMHPY_ENTRY = 3    /* SAGEMAKER_TRAINING_MODULE=module:function: import module, call function() */
} smhpy_kind;

typedef struct smhpy_target {
    smhpy_kind kind;
    const char *script;   /* SMHPY_SCRIPT: absolute path */
    char module[256];     /* SMHPY_MODULE / SMHPY_ENTRY */
    char function[128];   /* SMHPY_ENTRY */
    const char *sys_path0; /* directory put first on sys.path (the code dir), or NULL */
} smhpy_target;

/* interp.c: make libpython's symbols global so C extension modules resolve against it. */
int smhpy_promote_libpython(char *err, size_t errlen);
/* interp.c: configure and start the interpreter, run the target, finalize.  Returns the program's exit code
 * (0..255), or a negative smh_status with err filled when Python itself could not start. */
int smhpy_interp_run(const smh_host_api *host, const smh_job *job, const smhpy_target *t, char *err,
                     size_t errlen);

/* excinfo.c: with a Python exception set, report it the way python3 does (SystemExit, KeyboardInterrupt,
 * traceback on stderr), give the host its failure reason, clear it and return the exit code. */
int smhpy_exception_exit(const smh_host_api *host, const smh_job *job);
/* excinfo.c: "Type: message\n" then the last traceback frames that fit in budget bytes.  Leaves the
 * exception state as it found it.  Caller frees; NULL only when out of memory. */
char *smhpy_failure_text(void *type, void *value, void *tb, size_t budget);

/* smhostmod.c: register the built-in `smhost` module (before the interpreter starts). */
int smhpy_module_register(const smh_host_api *host, const smh_job *job);
#endif
