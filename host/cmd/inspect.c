/* `smhost env` prints what a job would get; `smhost plugins` lists every plugin found and why any was refused. */
#include "cmd/inspect.h"

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
#include "core/pyjson.h"
#include "plugin/registry.h"
#include "dist/launch.h"

/* The launch plan as JSON (`smhost env --json`): what each process of a distributed job would get. */
static pyj_value *launch_json(const shx_launch *l, const shx_job *job) {
    pyj_value *o = pyj_dict(), *procs = pyj_list();
    pyj_dict_set(o, "launcher", pyj_string(l->launcher));
    pyj_dict_set(o, "flag", pyj_string(l->flag));
    pyj_dict_set(o, "node_rank", pyj_int_ll(l->info.node_rank));
    pyj_dict_set(o, "num_nodes", pyj_int_ll(l->info.num_nodes));
    pyj_dict_set(o, "procs_per_host", pyj_int_ll(l->info.procs_per_host));
    pyj_value *nodes = pyj_list();
    for (size_t i = 0; i < l->nodes.n; i++) pyj_list_append(nodes, pyj_string(l->nodes.v[i]));
    pyj_dict_set(o, "nodes", nodes);
    if (l->wait_port) pyj_dict_set(o, "wait_port", pyj_int_ll(l->wait_port));
    for (size_t i = 0; i < l->n; i++) {
        const shx_lproc *p = &l->procs[i];
        pyj_value *po = pyj_dict(), *env = pyj_dict();
        pyj_dict_set(po, "kind", pyj_string((p->kind & 0xffu) == SMH_PROC_PROGRAM ? "program" : "command"));
        pyj_dict_set(po, "service", pyj_bool((p->kind & SMH_PROC_SERVICE) != 0));
        pyj_dict_set(po, "rank", pyj_int_ll(p->rank));
        pyj_dict_set(po, "local_rank", pyj_int_ll(p->local_rank));
        if (p->argv.n) {
            pyj_value *argv = pyj_list();
            for (size_t k = 0; k < p->argv.n; k++) pyj_list_append(argv, pyj_string(p->argv.v[k]));
            pyj_dict_set(po, "argv", argv);
        }
        /* what the process really gets: the job's own values win (except what the plan composed with them) */
        for (size_t k = 0; k < p->env.n; k++) {
            const char *eq = strchr(p->env.v[k], '=');
            char *name = shx_xstrndup(p->env.v[k], (size_t)(eq - p->env.v[k]));
            if (!shx_env_lookup(job->env.v, name) || shx_dist_env_composed(name))
                pyj_dict_set(env, name, pyj_string(eq + 1));
            free(name);
        }
        pyj_dict_set(po, "env", env);
        if (p->error_file) pyj_dict_set(po, "error_file", pyj_string(p->error_file));
        pyj_list_append(procs, po);
    }
    pyj_dict_set(o, "processes", procs);
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
        pyj_value *o = pyj_dict(), *env = pyj_dict(), *args = pyj_list();
        for (size_t i = 0; i < job.sm_env.n; i++) {
            const char *eq = strchr(job.sm_env.v[i], '=');
            pyj_dict_setn(env, job.sm_env.v[i], (size_t)(eq - job.sm_env.v[i]), pyj_string(eq + 1));
        }
        for (size_t i = 0; i < argv.n; i++) pyj_list_append(args, pyj_string(argv.v[i]));
        pyj_dict_set(o, "env", env);
        pyj_dict_set(o, "argv", args);
        pyj_dict_set(o, "program", job.program ? pyj_string(job.program_path) : pyj_null());
        if (have_launch && !launch_rc) pyj_dict_set(o, "launch", launch_json(&l, &job));
        else if (have_launch) pyj_dict_set(o, "launch_error", pyj_string(lerr));
        else pyj_dict_set(o, "launch", pyj_null());
        char *s = pyj_dumps(o, 0);
        puts(s);
        free(s);
        pyj_free(o);
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
    shx_buf arr = {0}; /* --json: one object per line */
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
            pyj_value *o = pyj_dict();
            pyj_dict_set(o, "name", name ? pyj_string(name) : pyj_null());
            pyj_dict_set(o, "path", pyj_string(p->path));
            pyj_dict_set(o, "status", pyj_string(ok ? (shadow ? "shadowed" : "ok") : "refused"));
            if (p->status == SHX_LOAD_OK) {
                char abi[32];
                snprintf(abi, sizeof abi, "%u.%u", p->desc.abi_major, p->desc.abi_minor);
                pyj_dict_set(o, "abi", pyj_string(abi));
                pyj_dict_set(o, "version", pyj_string(p->desc.version ? p->desc.version : ""));
                pyj_dict_set(o, "kind", pyj_string(shx_kind_str(p->desc.kind)));
                pyj_dict_set(o, "description", pyj_string(p->desc.description ? p->desc.description : ""));
            }
            if (!ok) pyj_dict_set(o, "reason", pyj_string(why));
            if (shadow) pyj_dict_set(o, "shadowed_by", pyj_string(shadow));
            char *js = pyj_dumps_default(o);
            shx_buf_printf(&arr, "%s  %s", arr.len ? ",\n" : "", js);
            free(js);
            pyj_free(o);
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
        printf("[%s%s%s]\n", arr.len ? "\n" : "", arr.len ? arr.p : "", arr.len ? "\n" : "");
        shx_buf_free(&arr);
    }
    shx_registry_free(&reg);
    return 0;
}
