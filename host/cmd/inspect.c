/* `smhost env` prints what a job would get; `smhost plugins` lists every plugin found and why any was refused. */
#include "cmd/inspect.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "plugin/hostapi.h"
#include "job/job.h"
#include "core/log.h"
#include "plugin/registry.h"
#include "dist/launch.h"

/* The launch plan as JSON (`smhost env --json`): what each process of a distributed job would get. */
static cJSON *launch_json(const shx_launch *l, const shx_job *job) {
    cJSON *o = cJSON_CreateObject(), *procs = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "launcher", l->launcher);
    cJSON_AddStringToObject(o, "flag", l->flag);
    cJSON_AddNumberToObject(o, "node_rank", l->info.node_rank);
    cJSON_AddNumberToObject(o, "num_nodes", l->info.num_nodes);
    cJSON_AddNumberToObject(o, "procs_per_host", l->info.procs_per_host);
    cJSON *nodes = cJSON_CreateArray();
    for (size_t i = 0; i < l->nodes.n; i++) cJSON_AddItemToArray(nodes, cJSON_CreateString(l->nodes.v[i]));
    cJSON_AddItemToObject(o, "nodes", nodes);
    if (l->wait_port) cJSON_AddNumberToObject(o, "wait_port", l->wait_port);
    for (size_t i = 0; i < l->n; i++) {
        const shx_lproc *p = &l->procs[i];
        cJSON *po = cJSON_CreateObject(), *env = cJSON_CreateObject();
        cJSON_AddStringToObject(po, "kind", (p->kind & 0xffu) == SMH_PROC_PROGRAM ? "program" : "command");
        cJSON_AddBoolToObject(po, "service", (p->kind & SMH_PROC_SERVICE) != 0);
        cJSON_AddNumberToObject(po, "rank", p->rank);
        cJSON_AddNumberToObject(po, "local_rank", p->local_rank);
        if (p->argv.n) {
            cJSON *argv = cJSON_CreateArray();
            for (size_t k = 0; k < p->argv.n; k++) cJSON_AddItemToArray(argv, cJSON_CreateString(p->argv.v[k]));
            cJSON_AddItemToObject(po, "argv", argv);
        }
        /* what the process really gets: the job's own values win (LD_PRELOAD was composed with the user's) */
        for (size_t k = 0; k < p->env.n; k++) {
            const char *eq = strchr(p->env.v[k], '=');
            char *name = shx_xstrndup(p->env.v[k], (size_t)(eq - p->env.v[k]));
            if (!shx_env_lookup(job->env.v, name) || !strcmp(name, "LD_PRELOAD"))
                cJSON_AddStringToObject(env, name, eq + 1);
            free(name);
        }
        cJSON_AddItemToObject(po, "env", env);
        if (p->error_file) cJSON_AddStringToObject(po, "error_file", p->error_file);
        cJSON_AddItemToArray(procs, po);
    }
    cJSON_AddItemToObject(o, "processes", procs);
    return o;
}

int shx_env_main(const shx_config *cfg, int json) {
    shx_job job = {0};
    char err[4096];
    int rc = shx_job_load(&job, cfg, err, sizeof err);
    if (rc) {
        fprintf(stderr, "smhost env: %s\n", err);
        shx_job_free(&job);
        return rc;
    }
    /* A distribution host: the launcher's plan, made without starting anything. */
    shx_launch l;
    char lerr[4096] = "";
    int have_launch = 0, launch_rc = 0;
    if (shx_dist_flag(&job)) {
        launch_rc = shx_dist_plan(&l, &job, cfg, 0, lerr, sizeof lerr);
        have_launch = 1;
    }
    shx_strvec argv = {0};
    if (job.program) shx_strvec_push(&argv, job.program);
    for (size_t i = 0; i < job.user_args.n; i++) shx_strvec_push(&argv, job.user_args.v[i]);
    if (json) {
        cJSON *o = cJSON_CreateObject(), *env = cJSON_CreateObject(), *args = cJSON_CreateArray();
        for (size_t i = 0; i < job.sm_env.n; i++) {
            const char *eq = strchr(job.sm_env.v[i], '=');
            char *name = shx_xstrndup(job.sm_env.v[i], (size_t)(eq - job.sm_env.v[i]));
            cJSON_AddStringToObject(env, name, eq + 1);
            free(name);
        }
        for (size_t i = 0; i < argv.n; i++) cJSON_AddItemToArray(args, cJSON_CreateString(argv.v[i]));
        cJSON_AddItemToObject(o, "env", env);
        cJSON_AddItemToObject(o, "argv", args);
        if (job.program) cJSON_AddStringToObject(o, "program", job.program_path);
        else cJSON_AddNullToObject(o, "program");
        if (have_launch && !launch_rc) cJSON_AddItemToObject(o, "launch", launch_json(&l, &job));
        else if (have_launch) cJSON_AddStringToObject(o, "launch_error", lerr);
        else cJSON_AddNullToObject(o, "launch");
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        for (size_t i = 0; i < job.sm_env.n; i++) puts(job.sm_env.v[i]);
        char *line = shx_command_line((const char *const *)argv.v);
        printf("# command: %s\n", job.program ? line : "(no program: set SAGEMAKER_PROGRAM or sagemaker_program)");
        free(line);
        if (have_launch && !launch_rc) {
            char *d = shx_dist_describe(&l);
            for (char *ln = strtok(d, "\n"); ln; ln = strtok(NULL, "\n")) printf("# launch: %s\n", ln);
            free(d);
        } else if (have_launch) {
            printf("# launch: cannot start: %s\n", lerr);
        }
    }
    shx_strvec_free(&argv);
    if (have_launch) shx_dist_launch_free(&l);
    shx_job_free(&job);
    return 0;
}

/* Run a usable plugin's init() (and fini()) in a child, so a crashing init cannot take the listing down. */
static void probe_init(const shx_plugin *p, char *why, size_t whylen) {
    why[0] = 0;
    if (!p->desc.init) return;
    int fds[2];
    if (pipe(fds) < 0) return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        char err[512] = "";
        void *state = NULL;
        smh_status s = p->desc.init(shx_host_api(), &state, err, sizeof err);
        if (s < 0) {
            char msg[600];
            int n = snprintf(msg, sizeof msg, "init failed (status %d): %s", s, err[0] ? err : "no message");
            if (write(fds[1], msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1)) < 0) _exit(2);
            _exit(1);
        }
        if (p->desc.fini) p->desc.fini(state);
        _exit(0);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return;
    }
    ssize_t n = read(fds[0], why, whylen - 1);
    why[n > 0 ? n : 0] = 0;
    close(fds[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0) {}
    if (WIFSIGNALED(st))
        snprintf(why, whylen, "init crashed with signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
}

int shx_plugins_main(const shx_config *cfg, int json) {
    shx_registry reg;
    shx_registry_init(&reg, cfg);
    /* The listing shows refusals itself; keep the per-plugin warnings out of the way. */
    int level = shx_log_get_level();
    shx_log_set_level(SHX_ERROR);
    shx_registry_scan(&reg);
    shx_log_set_level(level);
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    if (!json) {
        printf("smhost %s, plugin ABI %d.%d. Search path:\n", SMHOST_VERSION, SMH_ABI_MAJOR, SMH_ABI_MINOR);
        for (size_t i = 0; i < reg.dirs.n; i++) printf("  %s\n", reg.dirs.v[i]);
        if (reg.n == 0) printf("No plugins found.\n");
    }
    int usable = 0;
    for (size_t i = 0; i < reg.n; i++) {
        const shx_plugin *p = &reg.items[i];
        char why[700] = "";
        const char *shadow = NULL;
        if (p->status == SHX_LOAD_OK) {
            for (size_t k = 0; k < i; k++)
                if (reg.items[k].status == SHX_LOAD_OK && !strcmp(reg.items[k].desc.name, p->desc.name))
                    shadow = reg.items[k].path;
            probe_init(p, why, sizeof why);
        } else {
            snprintf(why, sizeof why, "%s", p->reason);
        }
        int ok = p->status == SHX_LOAD_OK && !why[0];
        usable += ok && !shadow;
        const char *name = p->status == SHX_LOAD_OK || p->desc.name ? p->desc.name : NULL;
        if (json) {
            cJSON *o = cJSON_CreateObject();
            if (name) cJSON_AddStringToObject(o, "name", name);
            else cJSON_AddNullToObject(o, "name");
            cJSON_AddStringToObject(o, "path", p->path);
            cJSON_AddStringToObject(o, "status", ok ? (shadow ? "shadowed" : "ok") : "refused");
            if (p->status == SHX_LOAD_OK) {
                char abi[32];
                snprintf(abi, sizeof abi, "%u.%u", p->desc.abi_major, p->desc.abi_minor);
                cJSON_AddStringToObject(o, "abi", abi);
                cJSON_AddStringToObject(o, "version", p->desc.version ? p->desc.version : "");
                cJSON_AddStringToObject(o, "kind", shx_kind_str(p->desc.kind));
                cJSON_AddStringToObject(o, "description", p->desc.description ? p->desc.description : "");
            }
            if (!ok) cJSON_AddStringToObject(o, "reason", why);
            if (shadow) cJSON_AddStringToObject(o, "shadowed_by", shadow);
            cJSON_AddItemToArray(arr, o);
            continue;
        }
        if (p->status == SHX_LOAD_OK) {
            printf("%-10s %-8s ABI %u.%u  %-8s %s\n", p->desc.name, p->desc.version ? p->desc.version : "-",
                   p->desc.abi_major, p->desc.abi_minor, shx_kind_str(p->desc.kind), p->path);
            if (p->desc.description && *p->desc.description) printf("           %s\n", p->desc.description);
            if (shadow) printf("           shadowed by %s (the first one found wins)\n", shadow);
        } else {
            printf("%-10s %-8s %-8s %-8s %s\n", "?", "-", "-", "-", p->path);
        }
        if (!ok) printf("           refused: %s\n", why);
    }
    if (json) {
        char *s = cJSON_Print(arr);
        puts(s);
        free(s);
        cJSON_Delete(arr);
    }
    shx_registry_free(&reg);
    return 0;
}
