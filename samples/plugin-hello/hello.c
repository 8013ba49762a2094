/*
 * hello: the smallest useful smhost runner plugin, written the way a third party would -- it includes only
 * <smhost/plugin.h> from the installed SDK and is built with `pkg-config --cflags smhost`.
 *
 * It claims programs named *.hello.  Such a program is a text file; each non-empty line is a greeting.  The runner
 * writes <model>/hello.txt: one line per greeting, addressed to the job's current host, then a summary of what the
 * host told it about the job (program, hyperparameters, channels, hosts).  The hyperparameter `shout` (a bool)
 * upper-cases the greetings; `fail_with` (a string) makes the job fail with that message, to show how a runner
 * reports an error.
 *
 * A real runner usually ends in host->exec() instead; see sdk/README.md.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smhost/plugin.h>

/* The plugin's state: init() allocates it, run() and fini() get it back. */
typedef struct hello {
    const smh_host_api *host;
    int greetings;
} hello;

static smh_status hello_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    hello *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, errlen, "hello: out of memory");
        return SMH_E_NOMEM;
    }
    h->host = host;
    *state = h;
    return SMH_OK;
}

static void hello_fini(void *state) { free(state); }

static int hello_run(void *state, const smh_job *job, char *err, size_t errlen) {
    hello *h = state;
    const smh_host_api *host = h->host;

    const char *fail_with = NULL;
    if (host->hp_str(job, "fail_with", &fail_with) == SMH_OK) {
        host->set_failure(job, fail_with); /* becomes the ErrorMessage in output/failure */
        return 2;                          /* the job's exit code */
    }
    int shout = 0;
    smh_status st = host->hp_bool(job, "shout", &shout);
    if (st != SMH_OK && st != SMH_E_NOTFOUND) {
        snprintf(err, errlen, "hello: hyperparameter shout must be true or false");
        return SMH_E_TYPE; /* negative: the runner failed; err says why */
    }

    const char *program = host->job_program(job);
    FILE *in = fopen(program, "r");
    if (in == NULL) {
        snprintf(err, errlen, "hello: cannot read the program %s", program);
        return SMH_E_NOTFOUND;
    }
    char out_path[4096];
    snprintf(out_path, sizeof out_path, "%s/hello.txt", host->job_path(job, SMH_PATH_MODEL));
    FILE *out = fopen(out_path, "w");
    if (out == NULL) {
        fclose(in);
        snprintf(err, errlen, "hello: cannot write %s", out_path);
        return SMH_E_FAIL;
    }

    char line[1024];
    while (fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (shout)
            for (char *c = line; *c; c++)
                *c = (char)toupper((unsigned char)*c);
        fprintf(out, "%s, %s!\n", line, host->current_host(job));
        host->log("hello", SMH_LOG_INFO, "%s, %s!", line, host->current_host(job));
        h->greetings++;
    }
    fclose(in);

    fprintf(out, "program: %s\n", program);
    for (size_t i = 0; i < host->hp_count(job); i++) {
        const char *name = host->hp_name(job, i), *value = "";
        host->hp_str(job, name, &value);
        fprintf(out, "hyperparameter: %s=%s\n", name, value);
    }
    for (size_t i = 0; i < host->channel_count(job); i++)
        fprintf(out, "channel: %s\n", host->channel_name(job, i));
    fprintf(out, "hosts: %zu (master %s)\n", host->host_count(job), host->master_host(job));
    fprintf(out, "greetings: %d\n", h->greetings);
    if (fclose(out) != 0) {
        snprintf(err, errlen, "hello: cannot write %s", out_path);
        return SMH_E_FAIL;
    }
    return 0;
}

static const smh_runner_ops hello_runner = {.struct_size = sizeof(smh_runner_ops), .run = hello_run};
static const char *const hello_extensions[] = {".hello", NULL};

SMH_PLUGIN_DEFINE(.name = "hello", .version = "1.0.0", .description = "greets from *.hello programs (SDK sample)",
                  .kind = SMH_KIND_RUNNER, .extensions = hello_extensions, .init = hello_init,
                  .fini = hello_fini, .runner = &hello_runner)
