/* The hand-off from the python runner plugin (plugins/python, in the job process) to smhost-python, which it
 * exec()s so that the job process becomes the interpreter with no process in between:
 *
 *   smhost-python --status-fd N --job-fd M (--script PATH | --module NAME | --entry MODULE:FUNCTION) -- ARGS...
 *
 * --status-fd  the job's status page (smh_host_api.status_fd, without FD_CLOEXEC): phase and failure reason.
 * --job-fd     a sealed memfd holding the job as one JSON object whose members are the `smhost` module's
 *              attributes (model_dir ..., hyperparameters, channels, hosts, current_host, master_host, is_master,
 *              num_cpus, num_gpus, num_neurons, devices).  It is parsed only when user code imports smhost.
 * ARGS         the user's arguments: sys.argv[1:] (for --entry there are none: the toolkit calls train()).
 *
 * Both descriptors are closed before user code runs.  Both sides are built from this tree, so the format may
 * change with smhost's version; it is no public interface. */
#ifndef SMHPY_HANDOFF_H
#define SMHPY_HANDOFF_H

/* The python3 whose installation smhost-python embeds: sys.executable (subprocess and multiprocessing start
 * it), the prefix the standard library is found under, and the interpreter that runs pip. */
#ifndef SMHPY_PYTHON3
#define SMHPY_PYTHON3 "/usr/bin/python3"
#endif
#define SMHPY_EXE_NAME "smhost-python" /* installed beside the smhost binary */

typedef enum smhpy_kind {
    SMHPY_SCRIPT = 1, /* python3 script.py args */
    SMHPY_MODULE = 2, /* python3 -m module args (a module name given as the program, or an installed package) */
    SMHPY_ENTRY = 3   /* SAGEMAKER_TRAINING_MODULE=module:function: import module, call function() */
} smhpy_kind;
#endif
