/* smhost-python: the python runner's interpreter (handoff.h for the command line, docs/python.md for why it is a
 * separate executable).  It reads the hand-off, closes its descriptors and runs the program as
 * `/usr/bin/python3 script.py args` (or `-m module`, or the training module's entry) would. */
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

void smhpy_set_failure(const char *reason) {
    shx_status_set_reason(g_page, "ExecuteUserScriptError", reason);
}

void smhpy_program_starting(void) {
    if (g_page) g_page->phase = SHX_PHASE_PROGRAM;
}

static int usage(const char *why) {
    fprintf(stderr,
            "smhost-python: %s\n"
            "smhost-python is the interpreter of smhost's python runner and is started by `smhost train`, not by "
            "hand:\n  smhost-python --status-fd N --job-fd M (--script PATH | --module NAME | --entry MODULE:FUNCTION)"
            " -- ARGS...\nRun Python programs with `smhost train` (SAGEMAKER_PROGRAM=train.py) or with python3.\n",
            why);
    return SHX_EXIT_USAGE;
}

static int parse_fd(const char *s) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || errno || *end || v < 0 || v > 1 << 20) return -1;
    return (int)v;
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

/* smhost serve's zygote for a Python handler (host/serve/pyzygote.h): serve.so, loaded from beside smhost as smhost
 * itself loads it, runs the zygote in this process, whose exported interpreter the handler plugin binds to. */
static int serve_zygote(int argc, char **argv) {
    char self[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    char *slash = n > 0 ? (self[n] = 0, strrchr(self, '/')) : NULL;
    if (!slash) {
        fprintf(stderr, "smhost-python: cannot find its own directory: %s\n", strerror(errno));
        return SHX_EXIT_SOFTWARE;
    }
    *slash = 0;
    snprintf(path, sizeof path, "%s/../lib/smhost/internal/serve.so", self);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    void *sym = h ? dlsym(h, "shx_module_serve_zygote") : NULL;
    if (!sym) {
        fprintf(stderr, "smhost-python: smhost's serve module %s cannot be used (%s): reinstall smhost\n", path,
                dlerror());
        return SHX_EXIT_SOFTWARE;
    }
    shx_module_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    shx_module_args a = {.log_level = SHX_INFO, .argc = argc, .argv = argv};
    return fn(&a);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--serve-zygote")) return serve_zygote(argc, argv);
    smhpy_target t = {0};
    int status_fd = -1, job_fd = -1, i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!v) return usage("an option needs a value");
        if (!strcmp(a, "--status-fd")) {
            if ((status_fd = parse_fd(v)) < 0) return usage("--status-fd needs a descriptor number");
        } else if (!strcmp(a, "--job-fd")) {
            if ((job_fd = parse_fd(v)) < 0) return usage("--job-fd needs a descriptor number");
        } else if (!strcmp(a, "--script")) {
            t.kind = SMHPY_SCRIPT;
            t.script = v;
        } else if (!strcmp(a, "--module")) {
            t.kind = SMHPY_MODULE;
            t.module = v;
        } else if (!strcmp(a, "--entry")) {
            char *colon = strchr(v, ':');
            if (!colon || colon == v || !colon[1]) return usage("--entry needs MODULE:FUNCTION");
            *colon = 0;
            t.kind = SMHPY_ENTRY;
            t.module = v;
            t.function = colon + 1;
        } else {
            return usage("unknown option");
        }
        i++;
    }
    if (!t.kind) return usage("no program: give --script, --module or --entry");
    t.args = argv + i;
    t.nargs = argc - i;

    if (status_fd >= 0) {
        g_page = shx_status_page_attach(status_fd);
        close(status_fd);
        if (!g_page) fprintf(stderr, "smhost-python: descriptor %d is no status page; failures are reported from "
                                     "the stderr tail\n", status_fd);
    }
    char *job = NULL;
    size_t job_len = 0;
    if (job_fd >= 0) {
        job = read_job(job_fd, &job_len);
        close(job_fd);
        if (!job) {
            shx_log(SHX_ERROR, "smhost-python: cannot read the job from descriptor %d", job_fd);
            shx_status_set_reason(g_page, "PluginError", "smhost-python could not read the job the python runner "
                                                         "handed over; reinstall smhost (smhost and smhost-python "
                                                         "must come from the same build)");
            return SHX_EXIT_SOFTWARE;
        }
    }
    if (smhpy_module_register(job, job_len) != 0) {
        shx_status_set_reason(g_page, "PluginError", "cannot register the built-in smhost module");
        return SHX_EXIT_SOFTWARE;
    }
    char err[1024] = "";
    int code = smhpy_interp_run(&t, err, sizeof err);
    if (code < 0) { /* Python itself could not start: the runner's failure, as before the exec */
        shx_log(SHX_ERROR, "%s", err);
        if (!g_page || !g_page->reason_set) shx_status_set_reason(g_page, "PluginError", err);
        code = SHX_EXIT_SOFTWARE;
    }
    free(job);
    return code;
}
