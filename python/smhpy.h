/* smhost-python: the embedding executable the python runner exec()s (docs/python.md).  Internal interfaces
 * shared by its files; nothing here is part of the SDK.
 *
 * It is linked like Debian's /usr/bin/python3 itself -- non-PIE, with the static libpython3.11.a and
 * -export-dynamic so C extension modules resolve the interpreter's symbols from the executable -- because the
 * position-independent libpython3.11.so runs Python code about 10% slower.  The `smhost` module is built in. */
#ifndef SMHPY_SMHPY_H
#define SMHPY_SMHPY_H
#include <stddef.h>

#include "python/handoff.h"

#define SMHPY_NAME "python"
#define SMHPY_FAILURE_BUDGET 1024 /* bytes of FailureReason SageMaker shows */

typedef struct smhpy_target {
    smhpy_kind kind;
    const char *script;   /* SMHPY_SCRIPT: absolute path */
    const char *module;   /* SMHPY_MODULE / SMHPY_ENTRY */
    const char *function; /* SMHPY_ENTRY */
    char **args;          /* the user's arguments, NULL-terminated */
    int nargs;
} smhpy_target;

/* main.c: reporting to the supervisor through the job's status page (a no-op without one). */
void smhpy_set_failure(const char *reason);
void smhpy_program_starting(void);

/* interp.c: configure and start the interpreter, run the target, finalize.  Returns the program's exit code
 * (0..255), or -1 with err filled when Python itself could not start. */
int smhpy_interp_run(const smhpy_target *t, char *err, size_t errlen);

/* excinfo.c: with a Python exception set, report it the way python3 does (SystemExit, KeyboardInterrupt,
 * traceback on stderr), give the supervisor its failure reason, clear it and return the exit code. */
int smhpy_exception_exit(void);
/* excinfo.c: "Type: message\n" then the last traceback frames that fit in budget bytes.  Leaves the
 * exception state as it found it.  Caller frees; NULL only when out of memory. */
char *smhpy_failure_text(void *type, void *value, void *tb, size_t budget);

/* smhostmod.c: register the built-in `smhost` module (before the interpreter starts) with the job's JSON
 * (handoff.h), or NULL when there is no job: then `import smhost` raises ImportError. */
int smhpy_module_register(const char *job_json, size_t len);
#endif
