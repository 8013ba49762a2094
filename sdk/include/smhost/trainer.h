/*
 * smhost native trainer SDK -- train in C (or anything with a C ABI) without writing a plugin.
 *
 * WHAT A NATIVE TRAINER IS
 * ------------------------
 * A shared object (lib<name>.so) that exports one training function.  When the job's program is a shared object
 * (a ".so" name, or any file whose ELF header says it is a shared library), the `native` runner plugin loads it
 * into the job process and calls that function with the host API table and the job.  Nothing is exec'd: the
 * trainer runs in the job process that smhost's supervisor forked, so a crash ends only the job process, and the
 * supervisor reports it like any crashed program (exit 128+N, output/failure written).
 *
 *     #include <smhost/trainer.h>
 *
 *     SMH_TRAINER(smh_train) {
 *         double lr = 0.1;
 *         host->hp_double(job, "learning_rate", &lr);      // SMH_E_NOTFOUND leaves lr alone
 *         const char *train = host->channel_dir(job, "train");
 *         if (train == NULL)
 *             return smh_trainer_fail(err, errlen, SMH_E_NOTFOUND, "no 'train' channel");
 *         ...
 *         return 0;
 *     }
 *
 *     cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags smhost) -o libmytrainer.so mytrainer.c
 *
 * THE ENTRY POINT: which symbol is called (like SQLite's loadable extensions)
 * --------------------------------------------------------------------------
 *   1. An explicit name, when one is given: the SMHOST_NATIVE_ENTRY environment variable, else the
 *      `sagemaker_native_entry` hyperparameter.  When it is given and missing, the job fails: there is no
 *      fall-back, so a typo is never silently replaced by another trainer.
 *   2. The name derived from the file name: "smh_train_" + the file's base name without a leading "lib" and
 *      without everything from the first '.', lower-cased, every character that is not [a-z0-9] replaced by
 *      '_'.  libword-count.so.2 -> smh_train_word_count.
 *   3. The default name, smh_train.
 * smhost tries the derived name before the default (SQLite does the opposite): the more specific name wins, so
 * one library can hold several trainers and a symlink per trainer picks one by its file name, with smh_train
 * left as the fall-back.
 *
 * VERSIONING
 * ----------
 * A trainer uses the same ABI as plugins (SMH_ABI_MAJOR.SMH_ABI_MINOR in <smhost/plugin.h>, whose contract
 * applies here too: the host table only grows at its end, new functions need SMH_HOST_HAS()).  SMH_TRAINER(fn)
 * exports, next to the function, a data symbol smh_abi_<fn> (an smh_trainer_abi) recording the version the
 * trainer was built against.  (A prefix, not a suffix: no file name can derive a name starting "smh_abi_".)
 * Before calling the trainer the host checks that the entry symbol is a function, resolves "smh_abi_<entry>"
 * and refuses the trainer when the record is missing, when the major differs from the host table's, when its minor is newer, or when its
 * struct_size is larger than the host's sizeof(smh_trainer_abi).  The refusal names the file, the symbol and
 * both versions.  Trainers written in another language must export both symbols by hand.
 *
 * WHAT THE TRAINER GETS, AND WHO OWNS IT
 * --------------------------------------
 * host: the host API table (see plugin.h): paths, typed hyperparameters, framework parameters, channels,
 *       hosts, devices, logging, set_failure, cancellation.  Owned by the host; valid for the job process.
 * job:  the job, opaque, owned by the host.  Every string the host returns lives as long as the job process.
 * err, errlen: a buffer owned by the host (errlen >= 1024, zeroed before the call).  Write a NUL-terminated
 *       message there to say why the trainer failed; smh_trainer_fail() does it for you.
 * The working directory is the code directory (SMH_PATH_CODE); stdin is /dev/null; stdout and stderr go where
 * the user program's would (the host flushes stdio after the trainer returns).
 *
 * RETURN VALUE
 *   0..255           the job's exit code; 0 is success.  A nonzero code with a message in err makes that
 *                    message the failure reason in output/failure (else the tail of stderr is used).
 *   SMH_E_CANCELLED  the trainer stopped because cancellation was requested (see below): the job ends like
 *                    a program that SIGTERM ended, exit code 143.
 *   other negative   an smh_status: the job fails with exit code 1 and err (or the status name) as the reason.
 *   above 255        a bug: the job fails with exit code 1 and a message saying so.
 *
 * CANCELLATION
 * ------------
 * The host calls host->watch_cancel(job) before the trainer starts: from then on the SIGTERM that StopTrainingJob
 * and spot interruption send (forwarded by the supervisor) no longer kills the job process; instead
 * host->cancel_requested(job) becomes nonzero.  Poll it between steps, write a checkpoint (SMH_PATH_CHECKPOINTS),
 * and return -- within the grace period (about 110 s for training) before SIGKILL.
 *
 * THREADS, SIGNALS, MEMORY
 * ------------------------
 * The trainer may start threads; they must be finished when it returns (the job process exits right after).
 * Leave SIGTERM's disposition alone.  Memory the trainer allocates is its own; the job process ends soon after
 * it returns, so freeing is good manners, not a requirement.  The library is never dlclose()d.
 */
#ifndef SMHOST_TRAINER_H
#define SMHOST_TRAINER_H

#include <stdarg.h>
#include <stdio.h>

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The trainer's signature.  `host` and `job` are never NULL; err/errlen is a caller-owned message buffer. */
typedef int (*smh_train_fn)(const smh_host_api *host, const smh_job *job, char *err, size_t errlen);

/* The version record exported as "smh_abi_<entry>" next to every trainer (SMH_TRAINER writes it).  Append-only. */
typedef struct smh_trainer_abi {
    uint32_t struct_size;          /* sizeof(smh_trainer_abi) as the trainer was built */
    uint16_t abi_major, abi_minor; /* SMH_ABI_MAJOR / SMH_ABI_MINOR the trainer was built with */
    uint32_t reserved[4];          /* zero */
} smh_trainer_abi;

#define SMH_TRAINER_DEFAULT_ENTRY "smh_train"             /* step 3 */
#define SMH_TRAINER_ENTRY_PREFIX "smh_train_"             /* step 2: prefix of the derived name */
#define SMH_TRAINER_ABI_PREFIX "smh_abi_"                 /* "smh_abi_<entry>" holds the smh_trainer_abi */
#define SMH_TRAINER_ENTRY_ENV "SMHOST_NATIVE_ENTRY"       /* step 1, first */
#define SMH_TRAINER_ENTRY_PARAM "sagemaker_native_entry"  /* step 1, second (a framework parameter) */

#if defined(__GNUC__)
#define SMH_TRAINER_UNUSED __attribute__((unused)) /* a trainer need not use every parameter */
#else
#define SMH_TRAINER_UNUSED
#endif

/* Define a trainer named `fn`; the function body follows:  SMH_TRAINER(smh_train) { ...; return 0; }
 * Inside the body the parameters are `host`, `job`, `err` and `errlen`. */
#ifdef __cplusplus
#define SMH_TRAINER(fn)                                                                                  \
    extern "C" SMH_EXPORT const smh_trainer_abi smh_abi_##fn = {(uint32_t)sizeof(smh_trainer_abi),           \
                                                           SMH_ABI_MAJOR, SMH_ABI_MINOR, {0, 0, 0, 0}};  \
    extern "C" SMH_EXPORT int fn(const smh_host_api *host, const smh_job *job, char *err, size_t errlen); \
    extern "C" SMH_EXPORT int fn(const smh_host_api *host SMH_TRAINER_UNUSED,                              \
                                 const smh_job *job SMH_TRAINER_UNUSED, char *err SMH_TRAINER_UNUSED,      \
                                 size_t errlen SMH_TRAINER_UNUSED)
#else
#define SMH_TRAINER(fn)                                                                                  \
    SMH_EXPORT extern const smh_trainer_abi smh_abi_##fn;                                                  \
    SMH_EXPORT const smh_trainer_abi smh_abi_##fn = {(uint32_t)sizeof(smh_trainer_abi), SMH_ABI_MAJOR,        \
                                                 SMH_ABI_MINOR, {0, 0, 0, 0}};                            \
    SMH_EXPORT int fn(const smh_host_api *host, const smh_job *job, char *err, size_t errlen);            \
    SMH_EXPORT int fn(const smh_host_api *host SMH_TRAINER_UNUSED, const smh_job *job SMH_TRAINER_UNUSED,  \
                      char *err SMH_TRAINER_UNUSED, size_t errlen SMH_TRAINER_UNUSED)
#endif

/* Write a formatted message into err (when err is not NULL and errlen > 0; truncated to fit, always
 * NUL-terminated) and return `status`:   return smh_trainer_fail(err, errlen, SMH_E_INVAL, "bad %s", x); */
static inline int smh_trainer_fail(char *err, size_t errlen, int status, const char *fmt, ...) SMH_PRINTF(4, 5);
static inline int smh_trainer_fail(char *err, size_t errlen, int status, const char *fmt, ...) {
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

#ifdef __cplusplus
}
#endif
#endif /* SMHOST_TRAINER_H */
