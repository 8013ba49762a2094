/* The job model: read the ML root's three config files and compute everything the program will see. */
#include "job/job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/devices.h"
#include "plugin/backends.h"
#include "core/exitcodes.h"
#include "job/hyperparameters.h"
#include "core/log.h"

/* Read <dir>/<name> as JSON.  A missing file gives *out = NULL and 0.  Anything else wrong is a data error. */
static int read_json_file(const char *dir, const char *name, pyj_value **out, char *err, size_t errlen) {
    *out = NULL;
    char *path = shx_path_join(dir, name);
    char *text = NULL;
    size_t len = 0;
    int rc = shx_read_file(path, &text, &len);
    if (rc == -ENOENT) {
        free(path);
        return 0;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s. Check the file's permissions.", path, strerror(-rc));
        free(path);
        return SHX_EXIT_DATAERR;
    }
    pyj_error perr;
    pyj_value *v = pyj_parse(text, len, &perr);
    free(text);
    if (!v) {
        snprintf(err, errlen, "%s is not valid JSON: %s. Fix the file: it must be one JSON object.", path, perr.msg);
        free(path);
        return SHX_EXIT_DATAERR;
    }
    if (v->type != PYJ_DICT) {
        snprintf(err, errlen, "%s must hold a JSON object ({...}), not %s. Fix the file.", path,
                 v->type == PYJ_LIST ? "a list" : "a single value");
        pyj_free(v);
        free(path);
        return SHX_EXIT_DATAERR;
    }
    free(path);
    *out = v;
    return 0;
}

static int strvec_contains(const shx_strvec *sv, const char *s) {
    for (size_t i = 0; i < sv->n; i++)
        if (!strcmp(sv->v[i], s)) return 1;
    return 0;
}

/* Copy a JSON list of strings into sv.  Returns 0, or -1 (with err) when it is not a list of strings. */
static int string_list(const pyj_value *v, shx_strvec *sv, const char *what, char *err, size_t errlen) {
    if (!v || v->type != PYJ_LIST) {
        snprintf(err, errlen, "%s must be a list of host names", what);
        return -1;
    }
    for (size_t i = 0; i < v->u.list.n; i++) {
        const char *s = pyj_as_string(v->u.list.items[i]);
        if (!s) {
            snprintf(err, errlen, "%s must be a list of host names (item %zu is not a string)", what, i);
            return -1;
        }
        shx_strvec_push(sv, s);
    }
    return 0;
}

static const char *dict_str(const pyj_value *d, const char *key, const char *dflt) {
    const pyj_value *v = pyj_dict_get(d, key);
    const char *s = v ? pyj_as_string(v) : NULL;
    return s ? s : dflt;
}

static int load_resources(shx_job *job, char *err, size_t errlen) {
    char msg[512] = "";
    const char *file = "input/config/resourceconfig.json";
    pyj_value *rc = job->resource_config;
    const pyj_value *cur = pyj_dict_get(rc, "current_host");
    if (!cur || !pyj_as_string(cur)) {
        snprintf(err, errlen, "%s/%s: \"current_host\" is %s; it must name this host, e.g. \"algo-1\". Fix the file.",
                 job->root, file, cur ? "not a string" : "missing");
        return SHX_EXIT_DATAERR;
    }
    job->current_host = shx_xstrdup(pyj_as_string(cur));
    if (string_list(pyj_dict_get(rc, "hosts"), &job->hosts, "\"hosts\"", msg, sizeof msg) < 0 || job->hosts.n == 0) {
        snprintf(err, errlen, "%s/%s: %s. Fix the file.", job->root, file,
                 job->hosts.n == 0 && !msg[0] ? "\"hosts\" must list at least one host" : msg);
        return SHX_EXIT_DATAERR;
    }
    job->instance_type = shx_xstrdup(dict_str(rc, "current_instance_type", "local"));
    job->group_name = shx_xstrdup(dict_str(rc, "current_group_name", "homogeneousCluster"));
    job->network_interface_name = shx_xstrdup(dict_str(rc, "network_interface_name", "eth0"));

    job->groups_dict = pyj_dict();
    const pyj_value *groups = pyj_dict_get(rc, "instance_groups");
    if (groups && groups->type != PYJ_LIST) {
        snprintf(err, errlen, "%s/%s: \"instance_groups\" must be a list of group objects. Fix the file.", job->root,
                 file);
        return SHX_EXIT_DATAERR;
    }
    size_t ngroups = groups ? groups->u.list.n : 0;
    for (size_t i = 0; i < ngroups; i++) {
        const pyj_value *g = groups->u.list.items[i];
        const char *name = g->type == PYJ_DICT ? dict_str(g, "instance_group_name", NULL) : NULL;
        if (!name) {
            snprintf(err, errlen,
                     "%s/%s: instance_groups[%zu] has no \"instance_group_name\" string. Fix the file.", job->root,
                     file, i);
            return SHX_EXIT_DATAERR;
        }
        shx_strvec_push(&job->group_names, name);
        pyj_dict_set(job->groups_dict, name, pyj_copy(g));
        if (!strcmp(name, job->group_name) && job->current_group_hosts.n == 0) {
            char what[160];
            snprintf(what, sizeof what, "instance_groups[%zu].hosts", i);
            if (string_list(pyj_dict_get(g, "hosts"), &job->current_group_hosts, what, msg, sizeof msg) < 0) {
                snprintf(err, errlen, "%s/%s: %s. Fix the file.", job->root, file, msg);
                return SHX_EXIT_DATAERR;
            }
        }
    }
    job->is_hetero = job->group_names.n > 1;

    /* Distribution groups: the framework parameter as given, else [current group] when a distribution flag is
     * on, else [] (the toolkit's get_distribution_instance_groups_from_resource_config). */
    const pyj_value *dg = pyj_dict_get(job->framework_params, "sagemaker_distribution_instance_groups");
    if (dg) {
        job->distribution_groups = pyj_copy(dg);
    } else {
        static const char *flags[] = {"sagemaker_mpi_enabled", "sagemaker_parameter_server_enabled",
                                      "sagemaker_distributed_dataparallel_enabled", "sagemaker_pytorch_ddp_enabled",
                                      "sagemaker_pytorch_xla_multi_worker_enabled",
                                      "sagemaker_multi_worker_mirrored_strategy_enabled",
                                      "sagemaker_torch_distributed_enabled"};
        job->distribution_groups = pyj_list();
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
            if (shx_truthy(pyj_dict_get(job->framework_params, flags[i]))) {
                pyj_list_append(job->distribution_groups, pyj_string(job->group_name));
                break;
            }
        }
    }
    /* Distribution hosts: the distribution groups' hosts in file order, or all hosts without instance_groups. */
    if (ngroups) {
        for (size_t i = 0; i < ngroups; i++) {
            const pyj_value *g = groups->u.list.items[i];
            const char *name = dict_str(g, "instance_group_name", "");
            int in = 0;
            if (job->distribution_groups->type == PYJ_LIST)
                for (size_t k = 0; k < job->distribution_groups->u.list.n; k++) {
                    const char *s = pyj_as_string(job->distribution_groups->u.list.items[k]);
                    if (s && !strcmp(s, name)) in = 1;
                }
            const pyj_value *gh = pyj_dict_get(g, "hosts");
            if (in && gh && gh->type == PYJ_LIST)
                for (size_t k = 0; k < gh->u.list.n; k++) {
                    const char *s = pyj_as_string(gh->u.list.items[k]);
                    if (s) shx_strvec_push(&job->distribution_hosts, s);
                }
        }
    } else {
        for (size_t i = 0; i < job->hosts.n; i++) shx_strvec_push(&job->distribution_hosts, job->hosts.v[i]);
    }
    /* smhost differs: the master is the first of the sorted hosts that is a distribution host, so every host
     * agrees whatever order its resourceconfig lists the groups' hosts in. */
    shx_strvec sorted = {0};
    for (size_t i = 0; i < job->hosts.n; i++) shx_strvec_push(&sorted, job->hosts.v[i]);
    shx_strvec_sort(&sorted);
    for (size_t i = 0; i < sorted.n && !job->master; i++)
        if (job->distribution_hosts.n == 0 || strvec_contains(&job->distribution_hosts, sorted.v[i]))
            job->master = shx_xstrdup(sorted.v[i]);
    if (!job->master) job->master = shx_xstrdup(sorted.v[0]);
    shx_strvec_free(&sorted);
    job->is_master = !strcmp(job->master, job->current_host);
    return 0;
}

static pyj_value *default_resource_config(void) {
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) < 0) strcpy(host, "localhost");
    host[sizeof host - 1] = 0;
    pyj_value *rc = pyj_dict();
    pyj_dict_set(rc, "current_host", pyj_string(host));
    pyj_value *hosts = pyj_list();
    pyj_list_append(hosts, pyj_string(host));
    pyj_dict_set(rc, "hosts", hosts);
    return rc;
}

char *shx_ml_root(const char *base) {
    if (!base || !*base) base = "/opt/ml";
    size_t bl = strlen(base);
    while (bl > 1 && base[bl - 1] == '/') bl--;
    return shx_xstrndup(base, bl);
}

const char *shx_job_inherited(const shx_job *job, const char *name) {
    return shx_env_lookup(job->inherited.v, name);
}

/* sagemaker_mpi_num_of_processes_per_host as a positive int, else 0. */
static int hp_procs_per_host(const shx_job *job) {
    const pyj_value *v = pyj_dict_get(job->hyperparameters, "sagemaker_mpi_num_of_processes_per_host");
    if (!v) return 0;
    char *s = pyj_str_of(v);
    long n;
    int ok = shx_parse_long(s, 1, 99999, &n) == 0;
    free(s);
    return ok ? (int)n : 0;
}

int shx_job_procs_per_host(const shx_job *job) {
    int n = hp_procs_per_host(job);
    if (n > 0) return n;
    if (job->num_gpus > 0) return job->num_gpus;
    if (job->num_neurons > 0) return job->num_neurons;
    return 1;
}

int shx_job_load(shx_job *job, const shx_config *cfg, char *err, size_t errlen) {
    job->cfg = cfg;
    for (char **e = environ; e && *e; e++) shx_strvec_push(&job->inherited, *e);
    const char *tm = shx_job_inherited(job, "SAGEMAKER_TRAINING_MODULE");
    job->training_module = tm && *tm ? shx_xstrdup(tm) : NULL;
    job->root = shx_ml_root(shx_job_inherited(job, "SAGEMAKER_BASE_DIR"));
    job->input_dir = shx_path_join(job->root, "input");
    job->input_config_dir = shx_path_join(job->root, "input/config");
    job->input_data_dir = shx_path_join(job->root, "input/data");
    job->code_dir = shx_path_join(job->root, "code");
    job->model_dir = shx_path_join(job->root, "model");
    job->output_dir = shx_path_join(job->root, "output");
    job->output_data_dir = shx_path_join(job->root, "output/data");
    job->intermediate_dir = shx_path_join(job->root, "output/intermediate");
    job->checkpoints_dir = shx_path_join(job->root, "checkpoints");

    int rc;
    pyj_value *hp_file = NULL;
    if ((rc = read_json_file(job->input_config_dir, "hyperparameters.json", &hp_file, err, errlen))) return rc;
    if ((rc = read_json_file(job->input_config_dir, "inputdataconfig.json", &job->input_data_config, err, errlen)))
        goto fail_hp;
    if ((rc = read_json_file(job->input_config_dir, "resourceconfig.json", &job->resource_config, err, errlen)))
        goto fail_hp;
    if (!hp_file) hp_file = pyj_dict();
    if (!job->input_data_config) job->input_data_config = pyj_dict();
    if (!job->resource_config) job->resource_config = default_resource_config();

    job->hyperparameters = shx_hp_decode(hp_file);
    pyj_free(hp_file);
    hp_file = NULL;
    shx_hp_split(job->hyperparameters, &job->user_hps, &job->framework_params);
    char *bad = NULL;
    if (shx_hp_find_nul(job->user_hps, &bad)) {
        snprintf(err, errlen,
                 "%s/hyperparameters.json: hyperparameter %s contains a NUL character (\\u0000), which cannot be "
                 "passed in argv or the environment. Remove it from the file.",
                 job->input_config_dir, bad);
        free(bad);
        return SHX_EXIT_DATAERR;
    }

    for (size_t i = 0; i < job->input_data_config->u.dict.n; i++)
        shx_strvec_push(&job->channels, job->input_data_config->u.dict.keys[i].s);
    shx_strvec_sort(&job->channels);

    if ((rc = load_resources(job, err, errlen))) return rc;

    /* The program: SAGEMAKER_PROGRAM wins over sagemaker_program. */
    const char *prog = shx_job_inherited(job, "SAGEMAKER_PROGRAM");
    char *prog_hp = NULL;
    if (!prog || !*prog) {
        const pyj_value *p = pyj_dict_get(job->hyperparameters, "sagemaker_program");
        if (p && p->type != PYJ_NULL) prog = prog_hp = pyj_str_of(p);
    }
    if (prog && *prog) {
        job->program = shx_xstrdup(prog);
        job->program_path = prog[0] == '/' ? shx_xstrdup(prog) : shx_path_join(job->code_dir, prog);
        size_t pl = strlen(prog);
        job->module_name = pl > 3 && !strcmp(prog + pl - 3, ".py") ? shx_xstrndup(prog, pl - 3) : shx_xstrdup(prog);
    }
    free(prog_hp);

    const pyj_value *sd = pyj_dict_get(job->hyperparameters, "sagemaker_submit_directory");
    if (sd && sd->type != PYJ_NULL) {
        job->submit_dir = pyj_str_of(sd);
        job->module_dir = shx_xstrdup(job->submit_dir);
    } else {
        job->module_dir = shx_xstrdup(job->code_dir);
    }
    const pyj_value *ll = pyj_dict_get(job->hyperparameters, "sagemaker_container_log_level");
    job->log_level = ll ? pyj_copy(ll) : pyj_int_ll(20);
    job->log_level_int = 20;
    if (job->log_level->type == PYJ_INT) job->log_level_int = atoi(job->log_level->u.i);
    else if (job->log_level->type == PYJ_STR) {
        int l = shx_log_parse_level(job->log_level->u.s.s);
        if (l >= 0) job->log_level_int = l;
    }

    job->num_cpus = shx_num_cpus();
    /* GPUs and Neuron cores from the device backends (plugin/backends.c), which fall back to the /proc and /dev
     * scan of devices.c and then to 0. */
    shx_backends_discover(&job->devices, cfg, job->inherited.v, hp_procs_per_host(job));
    job->num_gpus = job->devices.num_gpus;
    job->num_neurons = job->devices.num_neurons;

    shx_hp_to_argv(job->user_hps, &job->user_args);
    shx_env_build(job);
    return 0;
fail_hp:
    pyj_free(hp_file);
    return rc;
}

void shx_job_free(shx_job *job) {
    shx_strvec_free(&job->inherited);
    shx_devview_free(&job->devices);
    char **strs[] = {&job->root, &job->input_dir, &job->input_config_dir, &job->input_data_dir, &job->code_dir,
                     &job->model_dir, &job->output_dir, &job->output_data_dir, &job->intermediate_dir,
                     &job->checkpoints_dir, &job->module_dir, &job->submit_dir, &job->current_host,
                     &job->instance_type, &job->group_name, &job->network_interface_name, &job->master,
                     &job->program, &job->program_path, &job->module_name, &job->training_module};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
    pyj_value **vals[] = {&job->hyperparameters, &job->user_hps, &job->framework_params, &job->input_data_config,
                          &job->resource_config, &job->groups_dict, &job->distribution_groups, &job->log_level,
                          &job->training_env};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        if (*vals[i]) pyj_free(*vals[i]);
        *vals[i] = NULL;
    }
    shx_strvec *vecs[] = {&job->channels, &job->hosts, &job->group_names, &job->current_group_hosts,
                          &job->distribution_hosts, &job->user_args, &job->sm_env, &job->env};
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) shx_strvec_free(vecs[i]);
}
