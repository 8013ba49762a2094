/* pyboot.so: the library smhost preloads into /usr/bin/python3 (handoff.h, docs/python.md).  Internal interfaces
 * shared by its files; nothing here is part of the SDK.
 *
 * It is linked without libpython: python3 exports the interpreter's C API (-export-dynamic), and pyboot.so only
 * ever runs inside python3.  It exports one symbol, __libc_start_main, through which it gets control before
 * python3's main(). */
#ifndef SMHPY_SMHPY_H
#define SMHPY_SMHPY_H
#include <stddef.h>

#include "python/handoff.h"

#define SMHPY_FAILURE_BUDGET 1024 /* bytes of FailureReason SageMaker shows */

/* pyboot.c: reporting to the supervisor through the job's status page (a no-op without one). */
void smhpy_set_failure(const char *kind, const char *reason);
void smhpy_program_starting(void);
/* pyboot.c: a hand-off python3 cannot go on with: says so on stderr and in the status page, exits 70. */
void smhpy_handoff_failed(const char *what) __attribute__((noreturn));

/* interp.c: python3's own main (Py_BytesMain) with one difference: stdout and stderr are unbuffered unless
 * PYTHONUNBUFFERED is set to the empty string.  Returns the exit code, or does not return (sys.exit, a signal). */
int smhpy_run_main(int argc, char **argv);
/* interp.c: SAGEMAKER_TRAINING_MODULE: `import module; module.function()` with sys.argv ["train"] and the working
 * directory as sys.path[0], exceptions handled as python3 handles them.  program is python3's path. */
int smhpy_run_entry(const char *program, const char *module, const char *function);

/* excinfo.c: "Type: message\n" then the last traceback frames that fit in budget bytes.  Leaves the
 * exception state as it found it.  Caller frees; NULL only when out of memory. */
char *smhpy_failure_text(void *type, void *value, void *tb, size_t budget);

/* smhostmod.c: register the built-in `smhost` module (before the interpreter starts) with the job's JSON
 * (handoff.h), or NULL when there is no job: then `import smhost` raises ImportError. */
int smhpy_module_register(const char *job_json, size_t len);
#endif
