/* The training-runner policy: which runner plugin runs the job's program (runner.h). */
#include "plugin/runner.h"

#include <ctype.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/exitcodes.h"

/* An ELF shared object: ET_DYN without a program interpreter (a PIE executable has one). */
static int is_elf_shared(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    Elf64_Ehdr eh;
    int shared = 0;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_type == ET_DYN && eh.e_phentsize == sizeof(Elf64_Phdr)) {
        shared = 1;
        for (unsigned i = 0; i < eh.e_phnum && i < 256; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) != (ssize_t)sizeof ph) break;
            if (ph.p_type == PT_INTERP) {
                shared = 0;
                break;
            }
        }
    }
    close(fd);
    return shared;
}

static int looks_like_module(const char *prog) {
    if (!strncmp(prog, "module:", 7)) return 1;
    int dots = 0, start = 1;
    for (const char *c = prog; *c; c++) {
        if (*c == '.') {
            if (start) return 0;
            dots++;
            start = 1;
        } else if (isalpha((unsigned char)*c) || *c == '_' || (!start && isdigit((unsigned char)*c))) {
            start = 0;
        } else {
            return 0;
        }
    }
    return dots > 0 && !start;
}

static const char *extension(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    return dot && dot != base ? dot : NULL;
}

static int claims_executable(const shx_plugin *p) {
    return p && p->status == SHX_LOAD_OK && p->has_runner && (p->desc.claims & SMH_CLAIM_EXECUTABLE);
}

/* Any other file goes to the runner claiming SMH_CLAIM_EXECUTABLE: the 'exec' plugin (found by name, so a job loads
 * one plugin), else the first in the search path that claims it. */
static char *last_resort(shx_registry *r, const char *path, char *why, size_t whylen, int *exit_code) {
    const shx_plugin *p = shx_registry_find(r, "exec", NULL, 0);
    if (claims_executable(p)) return shx_xstrdup(p->desc.name);
    shx_registry_scan(r);
    for (size_t i = 0; i < r->n; i++)
        if (claims_executable(&r->items[i])) return shx_xstrdup(r->items[i].desc.name);
    snprintf(why, whylen,
             "the program %s is neither a .sh nor a .py file, and no runner plugin claims executables (the 'exec' "
             "plugin does). Install it, or add its directory to SMHOST_PLUGIN_PATH.",
             path);
    *exit_code = SHX_EXIT_CONFIG;
    return NULL;
}

char *shx_runner_for(shx_registry *r, const shx_job *job, char *why, size_t whylen,
                              int *exit_code) {
    /* A framework image's training module (SAGEMAKER_TRAINING_MODULE=pkg.mod:func) runs whatever the program is,
     * as the toolkit's `train` entry does. */
    if (job->training_module) return shx_xstrdup("python");
    const char *prog = job->program, *path = job->program_path;
    const char *ext = extension(prog);
    const char *over = ext && job->cfg ? shx_config_runner_for(job->cfg, ext) : NULL;
    if (over) return shx_xstrdup(over);
    if (ext && !strcmp(ext, ".sh")) return shx_xstrdup("shell");
    char *setup = shx_path_join(job->code_dir, "setup.py"), *pyproject = shx_path_join(job->code_dir, "pyproject.toml");
    int package = shx_is_file(setup) || shx_is_file(pyproject);
    free(setup);
    free(pyproject);
    if (package || (ext && !strcmp(ext, ".py"))) return shx_xstrdup("python");

    struct stat st;
    if (stat(path, &st) < 0) {
        if (looks_like_module(prog)) return shx_xstrdup("python");
        snprintf(why, whylen,
                 "the program %s was not found (%s). Put it under %s, or fix SAGEMAKER_PROGRAM / the "
                 "sagemaker_program hyperparameter.",
                 prog, path, job->code_dir);
        *exit_code = SHX_EXIT_NOTFOUND;
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "the program %s is not a regular file. Point SAGEMAKER_PROGRAM at a file.", path);
        *exit_code = SHX_EXIT_NOEXEC;
        return NULL;
    }
    int elf_shared = is_elf_shared(path);
    if (ext || elf_shared) {
        /* A plugin claiming this extension, else one claiming ELF shared objects. */
        shx_registry_scan(r);
        for (size_t i = 0; i < r->n && ext; i++) {
            const shx_plugin *p = &r->items[i];
            if (p->status != SHX_LOAD_OK || !p->has_runner || !p->desc.extensions) continue;
            for (const char *const *e = p->desc.extensions; *e; e++)
                if (!strcmp(*e, ext)) return shx_xstrdup(p->desc.name);
        }
        for (size_t i = 0; i < r->n && elf_shared; i++) {
            const shx_plugin *p = &r->items[i];
            if (p->status == SHX_LOAD_OK && p->has_runner && (p->desc.claims & SMH_CLAIM_ELF_SHARED))
                return shx_xstrdup(p->desc.name);
        }
        if (elf_shared) {
            snprintf(why, whylen,
                     "the program %s is a shared library, and no runner plugin claims shared libraries (the "
                     "'native' plugin does). Install it, or point SAGEMAKER_PROGRAM at an executable.",
                     path);
            *exit_code = SHX_EXIT_CONFIG;
            return NULL;
        }
    }
    return last_resort(r, path, why, whylen, exit_code);
}
