/*
 * The `native` runner: a program that is a shared object is loaded into the job process and its training function
 * (sdk/include/smhost/trainer.h) is called with the host table and the job.  See docs/native.md.
 *
 * Errors that make the file unusable as a trainer (it does not load, it exports no entry point, its ABI does not
 * match) are the user's program failing to start: the job ends with exit code 126, like an exec() of a file that
 * cannot be executed, and the message names the file, the symbol and the versions.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smhost/plugin.h>
#include <smhost/trainer.h>

#define NATIVE "native"
#define NATIVE_EXIT_NOEXEC 126 /* the file exists but cannot be run as a trainer */
#define NATIVE_EXIT_CANCELLED 143 /* 128 + SIGTERM */
#define NATIVE_ERRLEN 4096

typedef struct native_state {
    const smh_host_api *host;
} native_state;

static smh_status native_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    native_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        snprintf(err, errlen, "native: out of memory");
        return SMH_E_NOMEM;
    }
    st->host = host;
    *state = st;
    return SMH_OK;
}

static void native_fini(void *state) { free(state); }

static const char *status_name(int st) {
    switch (st) {
    case SMH_E_FAIL: return "SMH_E_FAIL";
    case SMH_E_NOMEM: return "SMH_E_NOMEM";
    case SMH_E_INVAL: return "SMH_E_INVAL";
    case SMH_E_NOTFOUND: return "SMH_E_NOTFOUND";
    case SMH_E_UNSUPPORTED: return "SMH_E_UNSUPPORTED";
    case SMH_E_TYPE: return "SMH_E_TYPE";
    case SMH_E_RANGE: return "SMH_E_RANGE";
    case SMH_E_EXEC: return "SMH_E_EXEC";
    case SMH_E_CANCELLED: return "SMH_E_CANCELLED";
    default: return "an unknown status";
    }
}

/* "smh_train_" + base name without "lib" and from the first '.', lower-cased, [^a-z0-9] -> '_'.  Returns 0, or -1
 * when the base name yields nothing (".so", "lib.so"). */
static int derived_entry(const char *path, char *out, size_t outlen) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "lib", 3) == 0)
        base += 3;
    size_t n = strcspn(base, ".");
    size_t plen = strlen(SMH_TRAINER_ENTRY_PREFIX);
    if (n == 0 || plen + n + 1 > outlen)
        return -1;
    memcpy(out, SMH_TRAINER_ENTRY_PREFIX, plen);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)tolower((unsigned char)base[i]);
        out[plen + i] = (char)(((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ? c : '_');
    }
    out[plen + n] = '\0';
    return 0;
}

/* dlsym(name) when it names a function; NULL otherwise (*is_data set when it exists but is not code). */
static smh_train_fn find_function(void *lib, const char *name, int *is_data) {
    *is_data = 0;
    dlerror();
    void *addr = dlsym(lib, name);
    if (addr == NULL)
        return NULL;
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (dladdr1(addr, &info, (void **)&sym, RTLD_DL_SYMENT) != 0 && sym != NULL) {
        int type = ELF64_ST_TYPE(sym->st_info);
        if (type != STT_FUNC && type != STT_GNU_IFUNC) {
            *is_data = 1;
            return NULL;
        }
    }
    smh_train_fn fn;
    *(void **)&fn = addr;
    return fn;
}

/* The explicit entry name and where it came from, or NULL. */
static const char *explicit_entry(const smh_host_api *host, const smh_job *job, const char **origin) {
    const char *v = host->job_getenv(job, SMH_TRAINER_ENTRY_ENV);
    if (v == NULL)
        v = getenv(SMH_TRAINER_ENTRY_ENV);
    if (v != NULL && *v != '\0') {
        *origin = "the " SMH_TRAINER_ENTRY_ENV " environment variable";
        return v;
    }
    const char *hp = NULL;
    if (host->framework_param(job, SMH_TRAINER_ENTRY_PARAM, &hp) == SMH_OK && hp != NULL && *hp != '\0') {
        *origin = "the " SMH_TRAINER_ENTRY_PARAM " hyperparameter";
        return hp;
    }
    return NULL;
}

/* The job cannot start the trainer: log, record the reason, exit 126. */
static int cannot_run(const smh_host_api *host, const smh_job *job, const char *fmt, ...) SMH_PRINTF(3, 4);
static int cannot_run(const smh_host_api *host, const smh_job *job, const char *fmt, ...) {
    char msg[NATIVE_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    host->log(NATIVE, SMH_LOG_ERROR, "%s", msg);
    host->set_failure(job, msg);
    return NATIVE_EXIT_NOEXEC;
}

/* Check the trainer's "smh_abi_<entry>" record against the host table.  Returns 0 when it may be called. */
static int check_abi(const smh_host_api *host, const smh_job *job, void *lib, const char *path, const char *entry) {
    char sym[512];
    int n = snprintf(sym, sizeof sym, SMH_TRAINER_ABI_PREFIX "%s", entry);
    if (n < 0 || (size_t)n >= sizeof sym)
        return cannot_run(host, job, "native trainer %s: entry point name %.64s... is longer than %zu bytes", path,
                          entry, sizeof sym - sizeof SMH_TRAINER_ABI_PREFIX);
    dlerror();
    const smh_trainer_abi *abi = dlsym(lib, sym);
    if (abi == NULL)
        return cannot_run(host, job,
                          "native trainer %s: entry point %s has no ABI record %s (this host speaks smhost ABI %u.%u); "
                          "define the trainer with SMH_TRAINER(%s) from <smhost/trainer.h>, or export %s by hand",
                          path, entry, sym, host->abi_major, host->abi_minor, entry, sym);
    if (abi->abi_major != host->abi_major || abi->abi_minor > host->abi_minor)
        return cannot_run(host, job,
                          "native trainer %s: entry point %s was built for smhost ABI %u.%u, but this host speaks "
                          "ABI %u.%u (the majors must be equal and the trainer's minor not newer); rebuild it "
                          "against this smhost's <smhost/trainer.h>",
                          path, entry, abi->abi_major, abi->abi_minor, host->abi_major, host->abi_minor);
    if (abi->struct_size > sizeof(smh_trainer_abi))
        return cannot_run(host, job,
                          "native trainer %s: ABI record %s is %u bytes, larger than the %zu bytes this host knows "
                          "(built against a newer header than smhost ABI %u.%u); rebuild it against this smhost's "
                          "<smhost/trainer.h>",
                          path, sym, abi->struct_size, sizeof(smh_trainer_abi), host->abi_major, host->abi_minor);
    return 0;
}

static int native_run(void *state, const smh_job *job, char *err, size_t errlen) {
    const smh_host_api *host = ((native_state *)state)->host;
    const char *path = host->job_program(job);
    if (path == NULL || *path == '\0') {
        snprintf(err, errlen, "native: the job has no program");
        return SMH_E_INVAL;
    }

    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        const char *why = dlerror();
        return cannot_run(host, job,
                          "native trainer %s cannot be loaded: %s; check that it is a shared object for this "
                          "machine (file %s) and that the libraries it needs are found (ldd %s)",
                          path, why ? why : "unknown error", path, path);
    }

    /* Find the entry point: explicit, else derived, else default. */
    const char *origin = NULL;
    const char *entry = explicit_entry(host, job, &origin);
    char derived[256];
    int have_derived = derived_entry(path, derived, sizeof derived) == 0;
    smh_train_fn fn = NULL;
    int is_data = 0;
    if (entry != NULL) {
        fn = find_function(lib, entry, &is_data);
        if (fn == NULL)
            return cannot_run(host, job,
                              "native trainer %s has no entry point %s (named by %s)%s; check the name with "
                              "nm -D --defined-only %s",
                              path, entry, origin, is_data ? ": the symbol is data, not a function" : "", path);
    } else {
        if (have_derived) {
            fn = find_function(lib, derived, &is_data);
            entry = derived;
        }
        if (fn == NULL) {
            fn = find_function(lib, SMH_TRAINER_DEFAULT_ENTRY, &is_data);
            entry = SMH_TRAINER_DEFAULT_ENTRY;
        }
        if (fn == NULL)
            return cannot_run(host, job,
                              "native trainer %s has no entry point: tried %s%s%s (smhost ABI %u.%u); define one "
                              "with SMH_TRAINER(" SMH_TRAINER_DEFAULT_ENTRY ") from <smhost/trainer.h>, or name it "
                              "with " SMH_TRAINER_ENTRY_ENV " or the " SMH_TRAINER_ENTRY_PARAM " hyperparameter",
                              path, have_derived ? derived : "", have_derived ? " and " : "",
                              SMH_TRAINER_DEFAULT_ENTRY, host->abi_major, host->abi_minor);
    }
    int rc = check_abi(host, job, lib, path, entry);
    if (rc != 0)
        return rc;

    host->log(NATIVE, SMH_LOG_INFO, "calling %s in %s", entry, path);
    host->watch_cancel(job);
    host->program_starting(job);

    char msg[NATIVE_ERRLEN];
    memset(msg, 0, sizeof msg);
    int ret = fn(host, job, msg, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    fflush(NULL);

    if (ret == 0)
        return 0;
    if (ret > 0 && ret <= 255) {
        if (msg[0] != '\0') {
            host->log(NATIVE, SMH_LOG_ERROR, "%s returned %d: %s", entry, ret, msg);
            host->set_failure(job, msg);
        } else {
            host->log(NATIVE, SMH_LOG_ERROR, "%s returned %d", entry, ret);
        }
        return ret;
    }
    char reason[NATIVE_ERRLEN + 1024]; /* bounded below: path 1024 + entry 255 + message 2048 + text */
    if (ret > 255)
        snprintf(reason, sizeof reason, "native trainer %.1024s: %.255s returned %d, outside 0..255%s%.2048s", path,
                 entry, ret, msg[0] ? ": " : "", msg);
    else if (msg[0] != '\0')
        snprintf(reason, sizeof reason, "%s", msg);
    else
        snprintf(reason, sizeof reason, "native trainer %.1024s: %.255s failed with %s (%d) and no message", path,
                 entry, status_name(ret), ret);
    host->log(NATIVE, SMH_LOG_ERROR, "%s", reason);
    host->set_failure(job, reason);
    return ret == SMH_E_CANCELLED ? NATIVE_EXIT_CANCELLED : 1;
}

static const smh_runner_ops native_runner = {
    .struct_size = sizeof(smh_runner_ops),
    .run = native_run,
};

static const char *const native_extensions[] = {".so", NULL};

SMH_PLUGIN_DEFINE(.name = NATIVE, .version = "1.0.0",
                  .description = "native trainers: calls smh_train() in a shared object (smhost/trainer.h)",
                  .kind = SMH_KIND_RUNNER, .claims = SMH_CLAIM_ELF_SHARED, .extensions = native_extensions,
                  .init = native_init, .fini = native_fini, .runner = &native_runner)
