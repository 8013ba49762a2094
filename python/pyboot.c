/* pyboot.so: smhost's hooks in /usr/bin/python3 (handoff.h; docs/python.md says why).
 *
 * smhost exec()s python3 with this library in LD_PRELOAD.  It defines __libc_start_main, so the C runtime of
 * python3 calls it with python3's main(); it calls the real one (the next definition, glibc's) with its own main
 * instead.  Without the hand-off variable that main is python3's, untouched.  With it, before any Python code runs:
 * LD_PRELOAD and the hand-off variable are put back as they were, the status page is mapped and the job read from
 * their descriptors, which are closed; the built-in `smhost` module and an audit hook are registered; then python3's
 * own main runs the program (smhpy_run_main), or the training module's entry, or smhost serve's zygote.
 *
 * The library never links libpython: python3 exports the C API (-export-dynamic), as it does for C extensions.  It
 * is never built with sanitizers, which would need their runtime loaded before python3's libraries. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "plugin/modules.h"
#include "python/smhpy.h"
#include "supervisor/status.h"

static shx_status_page *g_page;

void smhpy_set_failure(const char *kind, const char *reason) {
    shx_status_set_reason(g_page, kind, reason);
}

void smhpy_program_starting(void) {
    if (g_page) g_page->phase = SHX_PHASE_PROGRAM;
}

void smhpy_handoff_failed(const char *what) {
    fprintf(stderr, "smhost: pyboot.so: %s; python3 was not started as smhost starts it (smhost and its "
                    "lib/smhost/internal/pyboot.so must come from the same build: reinstall smhost)\n", what);
    shx_status_set_reason(g_page, "PluginError", what);
    _exit(SHX_EXIT_SOFTWARE);
}

/* The whole job JSON from the memfd (read from offset 0: the plugin's writes moved the shared offset). */
static char *read_job(int fd, size_t *len) {
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > (64 << 20)) return NULL;
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) return NULL;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return NULL;
        }
        got += (size_t)r;
    }
    buf[got] = 0;
    *len = got;
    return buf;
}

/* One comma-separated field of the hand-off as a number in [lo, hi], or -2. */
static long field_num(char **p, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(*p, &end, 10);
    if (errno || end == *p || (*end != ',' && *end != '\0') || v < lo || v > hi) return -2;
    *p = *end ? end + 1 : end;
    return v;
}

/* LD_PRELOAD as it was before smhost added its first `strip` bytes. */
static void restore_preload(long strip, long keep) {
    const char *cur = getenv("LD_PRELOAD");
    if (keep && cur && strlen(cur) >= (size_t)strip) {
        char *rest = strdup(cur + strip);
        if (rest) setenv("LD_PRELOAD", rest, 1);
        free(rest);
    } else {
        unsetenv("LD_PRELOAD");
    }
}

/* smhost serve's zygote for a Python handler (host/serve/pyzygote.h): serve.so, beside this library, runs the zygote
 * in python3, whose exported interpreter the handler plugin binds to. */
static int serve_zygote(int argc, char **argv) {
    Dl_info self;
    char path[PATH_MAX];
    if (!dladdr((void *)serve_zygote, &self) || !self.dli_fname || !strrchr(self.dli_fname, '/'))
        smhpy_handoff_failed("cannot find the directory of pyboot.so");
    int n = (int)(strrchr(self.dli_fname, '/') - self.dli_fname);
    snprintf(path, sizeof path, "%.*s/serve.so", n, self.dli_fname);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    void *sym = h ? dlsym(h, "shx_module_serve_zygote") : NULL;
    if (!sym) {
        fprintf(stderr, "smhost: smhost's serve module %s cannot be used (%s): reinstall smhost\n", path, dlerror());
        return SHX_EXIT_SOFTWARE;
    }
    shx_module_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    shx_module_args a = {.log_level = SHX_INFO, .argc = argc, .argv = argv};
    return fn(&a);
}

static int job(char *p, int argc, char **argv) {
    long sfd = field_num(&p, -1, INT_MAX), jfd = field_num(&p, 0, INT_MAX);
    if (sfd < -1 || jfd < 0) smhpy_handoff_failed("the job's descriptors in " SMHPY_HANDOFF_ENV " are malformed");
    char *entry = *p ? p : NULL, *colon = entry ? strchr(entry, ':') : NULL;
    if (entry && (!colon || colon == entry || !colon[1]))
        smhpy_handoff_failed("the training module is not MODULE:FUNCTION");
    if (sfd >= 0) {
        g_page = shx_status_page_attach((int)sfd);
        close((int)sfd);
        if (!g_page) fprintf(stderr, "smhost: descriptor %ld is no status page; failures are reported from the "
                                     "stderr tail\n", sfd);
    }
    size_t len = 0;
    char *json = read_job((int)jfd, &len);
    close((int)jfd);
    if (!json) smhpy_handoff_failed("cannot read the job the python runner handed over");
    if (smhpy_module_register(json, len) != 0) smhpy_handoff_failed("cannot register the built-in smhost module");
    /* json stays: the smhost module decodes it when user code first imports it */
    if (entry) {
        *colon = 0;
        return smhpy_run_entry(argv[0], entry, colon + 1);
    }
    return smhpy_run_main(argc, argv);
}

static int (*python_main)(int, char **, char **);

static int boot_main(int argc, char **argv, char **envp) {
    const char *h = getenv(SMHPY_HANDOFF_ENV);
    if (!h) return python_main(argc, argv, envp); /* python3 as it is: nothing else done */
    char *copy = strdup(h);
    if (!copy) smhpy_handoff_failed("out of memory");
    unsetenv(SMHPY_HANDOFF_ENV);
    char *p = copy, *mode;
    if (strncmp(p, SMHPY_HANDOFF_VERSION ",", sizeof SMHPY_HANDOFF_VERSION) != 0)
        smhpy_handoff_failed(SMHPY_HANDOFF_ENV " is from another version of smhost");
    p += sizeof SMHPY_HANDOFF_VERSION;
    mode = p;
    p = strchr(p, ',');
    if (!p) smhpy_handoff_failed(SMHPY_HANDOFF_ENV " is malformed");
    *p++ = 0;
    long strip = field_num(&p, 0, 1 << 20), keep = field_num(&p, 0, 1);
    if (strip < 0 || keep < 0) smhpy_handoff_failed("the LD_PRELOAD fields of " SMHPY_HANDOFF_ENV " are malformed");
    restore_preload(strip, keep);
    if (!strcmp(mode, "job")) return job(p, argc, argv);
    if (!strcmp(mode, "zygote")) return serve_zygote(argc, argv);
    smhpy_handoff_failed(SMHPY_HANDOFF_ENV " names an unknown mode");
}

/* glibc's, with boot_main in the place of python3's main. */
__attribute__((visibility("default"))) int __libc_start_main(int (*main)(int, char **, char **), int argc,
                                                             char **argv, void (*init)(void), void (*fini)(void),
                                                             void (*rtld_fini)(void), void *stack_end);
int __libc_start_main(int (*main)(int, char **, char **), int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end) {
    typedef int (*start_fn)(int (*)(int, char **, char **), int, char **, void (*)(void), void (*)(void),
                            void (*)(void), void *);
    void *sym = dlsym(RTLD_NEXT, "__libc_start_main");
    start_fn real;
    if (!sym) {
        fprintf(stderr, "smhost: pyboot.so: no __libc_start_main after it (%s)\n", dlerror());
        _exit(SHX_EXIT_SOFTWARE);
    }
    memcpy(&real, &sym, sizeof real);
    python_main = main;
    return real(boot_main, argc, argv, init, fini, rtld_fini, stack_end);
}
