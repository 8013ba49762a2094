/*
 * smhost plugin SDK -- the one header a plugin author needs.
 *
 * ABI CONTRACT (read this first)
 * ------------------------------
 * Versioning.  The ABI has a major and a minor number (SMH_ABI_MAJOR, SMH_ABI_MINOR).  A host loads a
 * plugin when the majors are equal and the plugin's minor is not newer than the host's.  Everything else is
 * refused, and the refusal names both versions.  A minor release only ever *appends*: new members at the end
 * of a struct, new functions at the end of smh_host_api, new enum values.  Nothing is removed, reordered or
 * changes meaning within a major.
 *
 * Sizes.  Every struct that crosses the boundary starts with `uint32_t struct_size`, set to sizeof() of the
 * struct as the side that owns it was compiled.  The host refuses a plugin descriptor (or ops table) larger
 * than the one it knows (the plugin was built against a newer header); a smaller one is read up to its size
 * and the rest counts as zero.  A plugin must check SMH_HOST_HAS(host, member) before calling a host function
 * added after v1.0.
 *
 * Entry.  A plugin is a shared object exporting one function, smh_plugin_entry (SMH_ENTRY_SYMBOL), that returns
 * a pointer to a static, immutable smh_plugin descriptor.  Use SMH_PLUGIN_DEFINE(...) to write it: it fills
 * struct_size and the ABI numbers so they cannot be wrong.  The entry function must do nothing else: it is
 * called when the host lists plugins, long before anything runs.  `smhost plugins` also calls init() and fini()
 * once, in a throwaway child process, to report plugins whose init fails or crashes.
 *
 * Processes.  smhost's supervisor (often PID 1) never runs plugin code for a job.  It forks a *job process*
 * and loads the chosen plugin there; init(), the runner's run() and everything a native trainer does happen
 * in that process, so a crash becomes a failure report instead of a dead container.  A runner normally ends
 * in host->exec(), which replaces the job process with the user's program.
 *
 * Serving processes.  `smhost serve` has three kinds of process, and plugin code runs in two of them:
 *   front   one thread, one event loop: HTTP, /ping, the queue, signals.  It never loads or runs plugin code --
 *           except a handler declaring SMH_HANDLER_THREAD_SAFE (below), which it loads and calls itself, with no
 *           zygote and no workers (SMHOST_SERVE_INLINE=never keeps that handler in workers too).
 *   zygote  forked by the front first thing, while the front has one thread (for a Python handler it then exec()s
 *           /usr/bin/python3 with smhost's pyboot.so preloaded, and goes on there). It installs the Python handler's
 *           requirements.txt, loads the handler plugin (dlopen, ABI checks) and calls init() once; then, unless
 *           SMHOST_SERVE_PRELOAD=false or the endpoint is multi-model, it calls load(<root>/model) once. After that it
 *           only forks workers: one per worker slot (SAGEMAKER_MODEL_SERVER_WORKERS) at start-up, and a new one
 *           whenever a worker dies or is killed.
 *   worker  a fork of the zygote: it starts with a copy-on-write copy of the zygote's memory, i.e. the state
 *           init() made and the model load() returned, without calling either again.  With
 *           SMHOST_SERVE_PRELOAD=false each worker calls load() itself after the fork; on a multi-model endpoint
 *           each worker calls load() and unload() for the models its own requests need.  A worker runs invoke()
 *           on its one thread, one request at a time, strictly in order.
 * fork() copies only the thread that calls it.  Threads started in init() or in a preloaded load() -- your own,
 * or a library's (OpenMP and BLAS pools, CUDA, gRPC, a Python thread) -- keep running in the zygote only: they
 * do not exist in any worker, and a lock one of them held at the fork stays locked there forever.  Start such
 * threads in the worker (lazily, on the first invoke()), or serve with SMHOST_SERVE_PRELOAD=false so that load()
 * runs after the fork.  The zygote and the workers start as a training program does: an empty signal mask and
 * default dispositions (which processes a handler starts inherit), in a process group of their own, so that
 * signals meant for smhost reach the front only: shutdown is the front's business.  A worker is ended by the
 * front closing its socket (shutdown), by SIGKILL (its request overran SAGEMAKER_MODEL_SERVER_TIMEOUT) or with
 * the zygote (PR_SET_PDEATHSIG).  Processes a handler leaves running (a daemon it started) are terminated, then
 * killed, when serve exits.
 * Neither a worker nor the zygote calls unload() or fini() when it ends, so put nothing there that must happen.
 * A crash in invoke() costs one worker: its request is answered 500 and a fresh fork of the zygote takes its
 * place.  A failing or crashing init() or preloaded load() stops serve (docs/serving.md lists the exit codes).
 *
 * Ownership.  Strings and arrays returned by the host are owned by the host and live as long as the job
 * (the job process).  Strings a plugin passes in are copied by the host before the call returns; the
 * plugin keeps ownership of its own memory, also when a call fails.  Error messages travel through
 * caller-owned buffers (char *err, size_t errlen): the callee writes a NUL-terminated message that fits,
 * naming the thing that failed and, where it can, the next step.
 *
 * Errors.  Functions return SMH_OK (0) or a negative smh_status below.  The values are stable forever.
 *
 * Threads.  Host functions may be called from any thread of the job process, except exec() and spawn_wait(),
 * which belong to the thread that called run(), and the resp_* functions, which belong to the thread running
 * invoke() for that response.
 */
#ifndef SMHOST_PLUGIN_H
#define SMHOST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SMH_ABI_MAJOR 1
#define SMH_ABI_MINOR 1

/* The one symbol every plugin exports (see SMH_PLUGIN_DEFINE). */
#define SMH_ENTRY_SYMBOL "smh_plugin_entry"

#if defined(__GNUC__)
#define SMH_EXPORT __attribute__((visibility("default")))
#define SMH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SMH_EXPORT
#define SMH_PRINTF(f, a)
#endif

/* ---- status codes (stable) ---------------------------------------------------------------------------- */
typedef int smh_status;
#define SMH_OK 0
#define SMH_E_FAIL (-1)        /* generic failure; the message says why */
#define SMH_E_NOMEM (-2)       /* out of memory */
#define SMH_E_INVAL (-3)       /* a bad argument */
#define SMH_E_NOTFOUND (-4)    /* no such hyperparameter, channel, file, symbol ... */
#define SMH_E_UNSUPPORTED (-5) /* the host or plugin cannot do this */
#define SMH_E_TYPE (-6)        /* the value exists but has another type */
#define SMH_E_RANGE (-7)       /* the value does not fit the requested C type */
#define SMH_E_EXEC (-8)        /* a program could not be executed */
#define SMH_E_CANCELLED (-9)   /* the job was asked to stop (SIGTERM) */

/* ---- plugin kinds and claims --------------------------------------------------------------------------- */
typedef enum smh_plugin_kind {
    SMH_KIND_RUNNER = 1,  /* runs a training program: shell, exec, python, native ... */
    SMH_KIND_HANDLER = 2, /* answers inference requests for smhost serve */
    SMH_KIND_BACKEND = 3, /* provides devices (GPUs, Neuron): <smhost/device.h>, ABI 1.1; no program of its own */
    SMH_KIND_LAUNCHER = 4 /* starts the processes of a distributed job: <smhost/launcher.h>, ABI 1.1 */
} smh_plugin_kind;

/* How a runner claims programs, besides its extension list.  The host checks these itself: no plugin code
 * runs to pick a runner. */
#define SMH_CLAIM_ELF_SHARED (1u << 0) /* an ELF shared object (ET_DYN without a program interpreter) */
#define SMH_CLAIM_EXECUTABLE (1u << 1) /* any regular file with an execute bit: the last resort */

/* Log levels: the numbers Python's logging module uses, so SM_LOG_LEVEL / sagemaker_container_log_level
 * mean the same thing. */
#define SMH_LOG_DEBUG 10
#define SMH_LOG_INFO 20
#define SMH_LOG_WARNING 30
#define SMH_LOG_ERROR 40

/* Directories of the ML root (contract section 1). */
typedef enum smh_path {
    SMH_PATH_ROOT = 0,            /* $SAGEMAKER_BASE_DIR or /opt/ml */
    SMH_PATH_INPUT = 1,           /* <root>/input */
    SMH_PATH_INPUT_CONFIG = 2,    /* <root>/input/config */
    SMH_PATH_INPUT_DATA = 3,      /* <root>/input/data */
    SMH_PATH_CODE = 4,            /* the module dir: where the program lives, the job's working directory */
    SMH_PATH_MODEL = 5,           /* <root>/model */
    SMH_PATH_OUTPUT = 6,          /* <root>/output */
    SMH_PATH_OUTPUT_DATA = 7,     /* <root>/output/data */
    SMH_PATH_INTERMEDIATE = 8,    /* <root>/output/intermediate */
    SMH_PATH_CHECKPOINTS = 9      /* <root>/checkpoints */
} smh_path;

/* Types of decoded hyperparameter values (the JSON types, ints kept apart from floats). */
typedef enum smh_type {
    SMH_TYPE_NONE = 0, /* not present */
    SMH_TYPE_NULL = 1,
    SMH_TYPE_BOOL = 2,
    SMH_TYPE_INT = 3, /* any size: read it with hp_int64 or as text with hp_str */
    SMH_TYPE_FLOAT = 4,
    SMH_TYPE_STRING = 5,
    SMH_TYPE_LIST = 6,
    SMH_TYPE_DICT = 7
} smh_type;

typedef struct smh_job smh_job;           /* opaque: the training job, owned by the host */
/* v1.1, defined in <smhost/device.h>: */
typedef struct smh_device smh_device;           /* one accelerator as a backend reports it */
typedef struct smh_device_sink smh_device_sink; /* opaque: where a backend reports its devices (host-owned) */
typedef struct smh_backend_ops smh_backend_ops; /* what a SMH_KIND_BACKEND plugin provides */
typedef struct smh_response smh_response; /* opaque: an inference response being built */
/* v1.1, defined in <smhost/launcher.h>: */
typedef struct smh_launch smh_launch;             /* opaque: the launch plan being built (host-owned) */
typedef struct smh_launch_info smh_launch_info;   /* this host's place in a distributed job */
typedef struct smh_launcher_ops smh_launcher_ops; /* what a SMH_KIND_LAUNCHER plugin provides */

/* One inference request, owned by the host for the duration of invoke(). */
typedef struct smh_request {
    uint32_t struct_size;
    const void *body;              /* raw payload, never decoded by the host */
    size_t body_len;
    const char *content_type;      /* "" when absent */
    const char *accept;            /* the Accept header as sent, "" when absent; wildcards and lists are the
                                    * handler's to resolve */
    const char *custom_attributes; /* X-Amzn-SageMaker-Custom-Attributes, or "" */
    const char *model_name;        /* multi-model endpoints; "" otherwise */
} smh_request;

/* ---- the host API table ------------------------------------------------------------------------------- */
/* Handed to init().  Append-only: new members go at the end, under a comment naming the version. */
typedef struct smh_host_api {
    uint32_t struct_size;
    uint16_t abi_major, abi_minor;

    /* ---- v1.0 ---- */
    /* Logging, in the host's format and at the job's log level.  `plugin` names the caller. */
    void (*log)(const char *plugin, int level, const char *fmt, ...) SMH_PRINTF(3, 4);

    /* The job.  Strings are owned by the host. */
    const char *(*job_path)(const smh_job *job, smh_path which);
    const char *(*job_program)(const smh_job *job);      /* absolute path of the user program, or its module name */
    const char *const *(*job_args)(const smh_job *job);  /* user argv of contract section 2, NULL-terminated */
    const char *const *(*job_environ)(const smh_job *job); /* the program's environment, "K=V", NULL-terminated */
    const char *(*job_getenv)(const smh_job *job, const char *name); /* from job_environ; NULL when unset */

    /* Hyperparameters (user hyperparameters, decoded per contract section 2).  Names are sorted.  On success
     * *out is set (strings owned by the host, valid for the job); on any error *out is left untouched, so a
     * default stored there beforehand survives SMH_E_NOTFOUND.  Errors: SMH_E_NOTFOUND (no such name),
     * SMH_E_TYPE (hp_int64: not an int -- a bool or float is not; hp_double: not an int or float; hp_bool: not
     * true/false), SMH_E_RANGE (hp_int64: does not fit int64_t).  hp_str and hp_json never fail on a present
     * name.  hp_name returns NULL past the end. */
    size_t (*hp_count)(const smh_job *job);
    const char *(*hp_name)(const smh_job *job, size_t i);
    smh_type (*hp_type)(const smh_job *job, const char *name);
    smh_status (*hp_str)(const smh_job *job, const char *name, const char **out);   /* Python str(), as on argv */
    smh_status (*hp_json)(const smh_job *job, const char *name, const char **out);  /* compact sorted JSON */
    smh_status (*hp_int64)(const smh_job *job, const char *name, int64_t *out);
    smh_status (*hp_double)(const smh_job *job, const char *name, double *out);  /* ints and floats */
    smh_status (*hp_bool)(const smh_job *job, const char *name, int *out);
    /* Framework parameters: any sagemaker_* hyperparameter (the additional framework parameters and the toolkit's
     * fixed list, e.g. sagemaker_program), as Python str().  Never a user hyperparameter.  SMH_E_NOTFOUND
     * when absent; the string is owned by the host. */
    smh_status (*framework_param)(const smh_job *job, const char *name, const char **out);

    /* Channels (sorted) and their directories.  channel_name returns NULL past the end. */
    size_t (*channel_count)(const smh_job *job);
    const char *(*channel_name)(const smh_job *job, size_t i);
    const char *(*channel_dir)(const smh_job *job, const char *name); /* NULL when unknown */

    /* Cluster and devices. */
    size_t (*host_count)(const smh_job *job);
    const char *(*host_name)(const smh_job *job, size_t i); /* resourceconfig order */
    const char *(*current_host)(const smh_job *job);
    const char *(*master_host)(const smh_job *job);
    int (*is_master)(const smh_job *job);
    int (*num_cpus)(const smh_job *job);
    int (*num_gpus)(const smh_job *job);
    int (*num_neurons)(const smh_job *job);

    /* Processes.  exec() replaces the job process with argv[0] (searched on PATH when it has no '/'),
     * with `envp` or, when NULL, the job's environment, after restoring a clean signal mask and default
     * dispositions.  It returns only on failure: SMH_E_EXEC with err filled; the host then exits 127 (not
     * found) or 126 (not executable).  spawn_wait() runs argv as a child in the job's process group, waits
     * for it and stores its exit code (0..255, or 128+N for signal N) in *exit_code. */
    smh_status (*exec)(const smh_job *job, const char *const argv[], const char *const envp[], char *err,
                       size_t errlen);
    smh_status (*spawn_wait)(const smh_job *job, const char *const argv[], const char *const envp[],
                             const char *cwd, int *exit_code, char *err, size_t errlen);

    /* Reporting.  program_starting() marks that user code begins (exec() calls it for you): a crash from now
     * on is the program's, not the plugin's.  set_failure() gives the failure reason that output/failure
     * will carry if the job fails (an exception, a trainer's message), instead of the stderr tail. */
    void (*program_starting)(const smh_job *job);
    void (*set_failure)(const smh_job *job, const char *reason);

    /* Cancellation.  The supervisor forwards SIGTERM to the job.  After watch_cancel() the host catches it
     * in the job process and cancel_requested() returns nonzero from then on, so in-process trainers can
     * checkpoint and return. */
    void (*watch_cancel)(const smh_job *job);
    int (*cancel_requested)(const smh_job *job);

    /* Serving responses (smhost serve).  Data is copied.  Outside a handler's invoke() (a training job, `smhost
     * plugins`) no response exists and every resp_* function returns SMH_E_UNSUPPORTED. */
    smh_status (*resp_write)(smh_response *resp, const void *data, size_t len);
    smh_status (*resp_set_status)(smh_response *resp, int http_status);
    smh_status (*resp_set_content_type)(smh_response *resp, const char *content_type);
    smh_status (*resp_set_custom_attributes)(smh_response *resp, const char *value);

    /* The command line output/failure shows ("Command ..."), for runners that run the program in-process
     * (exec() records its own argv).  Copied. */
    void (*set_command)(const smh_job *job, const char *const argv[]);

    /* ---- v1.1 (check with SMH_HOST_HAS) ---- */
    /* The environment for running pip unattended: the job's environment plus PIP_DISABLE_PIP_VERSION_CHECK=1 and,
     * unless smhost.ini says [python] break_system_packages = false, PIP_BREAK_SYSTEM_PACKAGES=1; the job's own
     * values win.  The same environment smhost's requirements.txt install uses.  NULL-terminated, owned by the
     * host, valid for the job. */
    const char *const *(*pip_environ)(const smh_job *job);
    /* The job's devices (<smhost/device.h>), as the device backends reported them before the job started: every
     * device, visible or not, healthy or not, in backend order then index order.  device_get returns NULL past
     * the end; the struct is owned by the host and lives as long as the job.  Read fields added after v1.1 only
     * when dev->struct_size covers them. */
    size_t (*device_count)(const smh_job *job);
    const smh_device *(*device_get)(const smh_job *job, size_t i);
    /* For backends, inside smh_backend_ops.list(): report one device (copied, up to dev->struct_size); a
     * fact about the backend such as "driver_version" or "cuda_version" (copied); and a job environment
     * variable that the host sets only when neither the user nor the platform set it (copied). */
    smh_status (*device_add)(smh_device_sink *sink, const smh_device *dev);
    smh_status (*device_set_info)(smh_device_sink *sink, const char *key, const char *value);
    smh_status (*device_set_env)(smh_device_sink *sink, const char *name, const char *value);
    /* For launchers, inside smh_launcher_ops.plan() (<smhost/launcher.h> says what each does).  Copied. */
    int (*launch_add)(smh_launch *launch, uint32_t kind, int rank, const char *const argv[]);
    smh_status (*launch_setenv)(smh_launch *launch, int proc, const char *name, const char *value);
    smh_status (*launch_error_file)(smh_launch *launch, int proc, const char *path);
    smh_status (*launch_wait_port)(smh_launch *launch, int port);
    smh_status (*launch_rank_host)(smh_launch *launch, int rank, const char *host);
    /* The job's status page (the phase, the command and the failure reason the supervisor reports) as a file
     * descriptor with FD_CLOEXEC set, for smhost's own programs that a runner exec()s and that keep reporting
     * after exec: the python runner passes it to pyboot.so in python3.  The page's layout is private to smhost, so
     * other plugins have no use for it.  -1 when there is none (outside a supervised job). */
    int (*status_fd)(const smh_job *job);
} smh_host_api;

/* True when the host's table is large enough to hold `member` (use for functions added after v1.0). */
#define SMH_HOST_HAS(host, member) \
    ((host) != NULL && (host)->struct_size >= offsetof(smh_host_api, member) + sizeof((host)->member) && \
     (host)->member != NULL)

/* ---- what a plugin provides ----------------------------------------------------------------------------- */
typedef struct smh_runner_ops {
    uint32_t struct_size;
    /* Run the job's program.  Called once, in the job process, after init(), with the job's environment
     * (job_environ) as the process environment, the code dir as working directory, an empty signal mask and
     * default signal dispositions: in-process programs see what an exec'd one would.  Either ends in host->exec()
     * (which does not return on success), or runs the program in-process and returns its exit code
     * (0..255).  A negative smh_status means the runner itself failed; `err` says why. */
    int (*run)(void *state, const smh_job *job, char *err, size_t errlen);
} smh_runner_ops;

/* smh_handler_ops.flags (v1.1; a v1.0 host ignores them). */
/* invoke() is thread-safe, short and never blocks for long (no network waits, no sleeps: microseconds to a few
 * milliseconds), and its plugin gives up crash isolation for speed: `smhost serve` may then call load() and invoke()
 * in its front process, on the thread that reads the HTTP request, without the hop to a worker process.  The
 * price: a crash in the handler stops the server, and SMHOST_SERVE_TIMEOUT cannot stop a stuck invoke().
 * SMHOST_SERVE_INLINE=never keeps such a handler in worker processes (docs/serving.md). */
#define SMH_HANDLER_THREAD_SAFE (1u << 0)

typedef struct smh_handler_ops {
    uint32_t struct_size;
    uint32_t flags; /* SMH_HANDLER_*; 0: a worker process runs one invoke() at a time */
    /* Load the model found in model_dir.  *model is the plugin's, passed back to invoke() and unload().  Runs
     * once in the zygote before the workers are forked, or in each worker (see "Serving processes" above): do
     * not leave threads running here that invoke() needs.  A failure stops serve (exit 1) with `err`; on a
     * multi-model endpoint the request that needed the model gets it (507 for SMH_E_NOMEM, else 500). */
    smh_status (*load)(void *state, const char *model_dir, void **model, char *err, size_t errlen);
    /* Answer one request, in a worker (in the front with SMH_HANDLER_THREAD_SAFE): write the body with
     * host->resp_write(); the status is 200 unless set.
     * A negative return is a 500 carrying `err` (or the 4xx/5xx status set with resp_set_status()).  `req`
     * and `resp` are valid only until invoke() returns. */
    smh_status (*invoke)(void *state, void *model, const smh_request *req, smh_response *resp, char *err,
                         size_t errlen);
    /* Free a model: called only when a multi-model endpoint drops or replaces it (DELETE /models/<name>), never
     * when a worker ends. */
    void (*unload)(void *state, void *model);
} smh_handler_ops;

typedef struct smh_plugin {
    uint32_t struct_size;           /* sizeof(smh_plugin) the plugin was built with */
    uint16_t abi_major, abi_minor;  /* SMH_ABI_MAJOR / SMH_ABI_MINOR the plugin was built with */
    const char *name;               /* [a-z0-9_-], unique; the file should be <name>.so */
    const char *version;            /* the plugin's own version, free text */
    const char *description;        /* one line for `smhost plugins` */
    uint32_t kind;                  /* smh_plugin_kind */
    uint32_t claims;                /* SMH_CLAIM_* */
    const char *const *extensions;  /* NULL-terminated, with the dot (".sh"); may be NULL */
    /* init() runs in the job process before anything else.  *state is passed to every op and to fini(). */
    smh_status (*init)(const smh_host_api *host, void **state, char *err, size_t errlen);
    void (*fini)(void *state);
    const smh_runner_ops *runner;   /* SMH_KIND_RUNNER */
    const smh_handler_ops *handler; /* SMH_KIND_HANDLER */
    /* v1.1 took the first of the eight reserved pointers of v1.0, so sizeof(smh_plugin) and every v1.0 offset
     * stay the same; a v1.0 descriptor has zero there (SMH_PLUGIN_DEFINE zero-fills), which reads as "no
     * backend".  Later minors take the next slot the same way, in order, and document it here: `launcher` took
     * the second (reserved[1] of v1.0), also in 1.1; a v1.0 descriptor reads as "no launcher". */
    const smh_backend_ops *backend; /* SMH_KIND_BACKEND (v1.1, <smhost/device.h>) */
    const smh_launcher_ops *launcher; /* SMH_KIND_LAUNCHER (v1.1, <smhost/launcher.h>) */
    void *reserved[6];              /* zero; room for v1.x without changing the size rule */
} smh_plugin;

typedef const smh_plugin *(*smh_plugin_entry_fn)(void);

/* ---- layout checks ------------------------------------------------------------------------------------------ */
/* The ABI is the order and size of these members.  Each check says a member directly follows the one before it,
 * so a reordered, removed or resized member breaks the build of smhost and of every plugin, not a plugin at run
 * time.  Appending a member needs one new line here. */
#if defined(__cplusplus)
#define SMH__ASSERT(c, m) static_assert(c, m)
#else
#define SMH__ASSERT(c, m) _Static_assert(c, m)
#endif
#define SMH__FOLLOWS(T, a, b)                                                                               \
    SMH__ASSERT(offsetof(T, b) == offsetof(T, a) + sizeof(((T *)0)->a), #T "." #b " must follow " #a)
#define SMH__FIRST(T, a) SMH__ASSERT(offsetof(T, a) == 0, #T "." #a " must be first")

SMH__FIRST(smh_request, struct_size);
SMH__ASSERT(offsetof(smh_request, body) >= sizeof(uint32_t), "smh_request.body follows struct_size");
SMH__FOLLOWS(smh_request, body, body_len);
SMH__FOLLOWS(smh_request, body_len, content_type);
SMH__FOLLOWS(smh_request, content_type, accept);
SMH__FOLLOWS(smh_request, accept, custom_attributes);
SMH__FOLLOWS(smh_request, custom_attributes, model_name);

SMH__FIRST(smh_host_api, struct_size);
SMH__FOLLOWS(smh_host_api, struct_size, abi_major);
SMH__FOLLOWS(smh_host_api, abi_major, abi_minor);
SMH__ASSERT(offsetof(smh_host_api, log) >= offsetof(smh_host_api, abi_minor) + sizeof(uint16_t), "smh_host_api.log follows the ABI numbers");
SMH__FOLLOWS(smh_host_api, log, job_path);
SMH__FOLLOWS(smh_host_api, job_path, job_program);
SMH__FOLLOWS(smh_host_api, job_program, job_args);
SMH__FOLLOWS(smh_host_api, job_args, job_environ);
SMH__FOLLOWS(smh_host_api, job_environ, job_getenv);
SMH__FOLLOWS(smh_host_api, job_getenv, hp_count);
SMH__FOLLOWS(smh_host_api, hp_count, hp_name);
SMH__FOLLOWS(smh_host_api, hp_name, hp_type);
SMH__FOLLOWS(smh_host_api, hp_type, hp_str);
SMH__FOLLOWS(smh_host_api, hp_str, hp_json);
SMH__FOLLOWS(smh_host_api, hp_json, hp_int64);
SMH__FOLLOWS(smh_host_api, hp_int64, hp_double);
SMH__FOLLOWS(smh_host_api, hp_double, hp_bool);
SMH__FOLLOWS(smh_host_api, hp_bool, framework_param);
SMH__FOLLOWS(smh_host_api, framework_param, channel_count);
SMH__FOLLOWS(smh_host_api, channel_count, channel_name);
SMH__FOLLOWS(smh_host_api, channel_name, channel_dir);
SMH__FOLLOWS(smh_host_api, channel_dir, host_count);
SMH__FOLLOWS(smh_host_api, host_count, host_name);
SMH__FOLLOWS(smh_host_api, host_name, current_host);
SMH__FOLLOWS(smh_host_api, current_host, master_host);
SMH__FOLLOWS(smh_host_api, master_host, is_master);
SMH__FOLLOWS(smh_host_api, is_master, num_cpus);
SMH__FOLLOWS(smh_host_api, num_cpus, num_gpus);
SMH__FOLLOWS(smh_host_api, num_gpus, num_neurons);
SMH__FOLLOWS(smh_host_api, num_neurons, exec);
SMH__FOLLOWS(smh_host_api, exec, spawn_wait);
SMH__FOLLOWS(smh_host_api, spawn_wait, program_starting);
SMH__FOLLOWS(smh_host_api, program_starting, set_failure);
SMH__FOLLOWS(smh_host_api, set_failure, watch_cancel);
SMH__FOLLOWS(smh_host_api, watch_cancel, cancel_requested);
SMH__FOLLOWS(smh_host_api, cancel_requested, resp_write);
SMH__FOLLOWS(smh_host_api, resp_write, resp_set_status);
SMH__FOLLOWS(smh_host_api, resp_set_status, resp_set_content_type);
SMH__FOLLOWS(smh_host_api, resp_set_content_type, resp_set_custom_attributes);
SMH__FOLLOWS(smh_host_api, resp_set_custom_attributes, set_command);
SMH__FOLLOWS(smh_host_api, set_command, pip_environ); /* v1.1 */
SMH__FOLLOWS(smh_host_api, pip_environ, device_count);
SMH__FOLLOWS(smh_host_api, device_count, device_get);
SMH__FOLLOWS(smh_host_api, device_get, device_add);
SMH__FOLLOWS(smh_host_api, device_add, device_set_info);
SMH__FOLLOWS(smh_host_api, device_set_info, device_set_env);
SMH__FOLLOWS(smh_host_api, device_set_env, launch_add);
SMH__FOLLOWS(smh_host_api, launch_add, launch_setenv);
SMH__FOLLOWS(smh_host_api, launch_setenv, launch_error_file);
SMH__FOLLOWS(smh_host_api, launch_error_file, launch_wait_port);
SMH__FOLLOWS(smh_host_api, launch_wait_port, launch_rank_host);
SMH__FOLLOWS(smh_host_api, launch_rank_host, status_fd);

SMH__FIRST(smh_runner_ops, struct_size);
SMH__ASSERT(offsetof(smh_runner_ops, run) >= sizeof(uint32_t), "smh_runner_ops.run follows struct_size");
SMH__FIRST(smh_handler_ops, struct_size);
SMH__FOLLOWS(smh_handler_ops, struct_size, flags);
SMH__FOLLOWS(smh_handler_ops, flags, load);
SMH__FOLLOWS(smh_handler_ops, load, invoke);
SMH__FOLLOWS(smh_handler_ops, invoke, unload);

SMH__FIRST(smh_plugin, struct_size);
SMH__FOLLOWS(smh_plugin, struct_size, abi_major);
SMH__FOLLOWS(smh_plugin, abi_major, abi_minor);
SMH__ASSERT(offsetof(smh_plugin, name) >= offsetof(smh_plugin, abi_minor) + sizeof(uint16_t), "smh_plugin.name follows the ABI numbers");
SMH__FOLLOWS(smh_plugin, name, version);
SMH__FOLLOWS(smh_plugin, version, description);
SMH__FOLLOWS(smh_plugin, description, kind);
SMH__FOLLOWS(smh_plugin, kind, claims);
SMH__ASSERT(offsetof(smh_plugin, extensions) >= offsetof(smh_plugin, claims) + sizeof(uint32_t), "smh_plugin.extensions follows claims");
SMH__FOLLOWS(smh_plugin, extensions, init);
SMH__FOLLOWS(smh_plugin, init, fini);
SMH__FOLLOWS(smh_plugin, fini, runner);
SMH__FOLLOWS(smh_plugin, runner, handler);
SMH__FOLLOWS(smh_plugin, handler, backend); /* v1.1: was reserved[0] */
SMH__FOLLOWS(smh_plugin, backend, launcher); /* v1.1: was reserved[1] */
SMH__FOLLOWS(smh_plugin, launcher, reserved);
SMH__ASSERT(sizeof(((smh_plugin *)0)->backend) + sizeof(((smh_plugin *)0)->launcher) +
                    sizeof(((smh_plugin *)0)->reserved) == 8 * sizeof(void *),
            "smh_plugin keeps the v1.0 size: each new member takes one of the eight reserved slots");


/* Define the plugin: SMH_PLUGIN_DEFINE(.name = "shell", .version = "1.0", .kind = SMH_KIND_RUNNER, ...) */
#define SMH_PLUGIN_DEFINE(...)                                                                      \
    SMH_EXPORT const smh_plugin *smh_plugin_entry(void);                                          \
    SMH_EXPORT const smh_plugin *smh_plugin_entry(void) {                                         \
        static const smh_plugin smh__descriptor = {.struct_size = (uint32_t)sizeof(smh_plugin),   \
                                                   .abi_major = SMH_ABI_MAJOR,                    \
                                                   .abi_minor = SMH_ABI_MINOR,                    \
                                                   __VA_ARGS__};                                  \
        return &smh__descriptor;                                                                   \
    }

#ifdef __cplusplus
}
#endif
#endif /* SMHOST_PLUGIN_H */
