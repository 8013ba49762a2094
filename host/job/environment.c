/* The environment given to the user program (contract section 3): SM_TRAINING_ENV and every SM_* variable. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/hyperparameters.h"
#include "job/job.h"


int shx_truthy(const pyj_value *v) {
    if (!v) return 0;
    switch (v->type) {
    case PYJ_NULL: return 0;
    case PYJ_BOOL: return v->u.b;
    case PYJ_INT: return strcmp(v->u.i, "0") != 0;
    case PYJ_FLOAT: return v->u.f != 0.0;
    case PYJ_STR: return v->u.s.len > 0;
    case PYJ_LIST: return v->u.list.n > 0;
    case PYJ_DICT: return v->u.dict.n > 0;
    }
    return 0;
}

static pyj_value *strvec_list(const shx_strvec *sv) {
    pyj_value *l = pyj_list();
    for (size_t i = 0; i < sv->n; i++) pyj_list_append(l, pyj_string(sv->v[i]));
    return l;
}

static pyj_value *str_or_null(const char *s) {
    return s ? pyj_string(s) : pyj_null();
}

/* Is `prog` an executable on PATH? (the toolkit's shutil.which checks for smddprun / smddpmprun) */
static int on_path(const shx_job *job, const char *prog) {
    const char *path = shx_job_inherited(job, "PATH");
    if (!path) return 0;
    char *copy = shx_xstrdup(path), *save = NULL;
    int found = 0;
    for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        char *p = shx_path_join(*d ? d : ".", prog);
        found = access(p, X_OK) == 0;
        free(p);
    }
    free(copy);
    return found;
}

static pyj_value *build_training_env(const shx_job *job) {
    pyj_value *e = pyj_dict();
    pyj_dict_set(e, "additional_framework_parameters", pyj_copy(job->framework_params));
    pyj_value *cid = pyj_dict();
    for (size_t i = 0; i < job->input_data_config->u.dict.n; i++) {
        const char *name = job->input_data_config->u.dict.keys[i].s;
        char *p = shx_path_join(job->input_data_dir, name);
        pyj_dict_set(cid, name, pyj_string(p));
        free(p);
    }
    pyj_dict_set(e, "channel_input_dirs", cid);
    pyj_dict_set(e, "current_host", pyj_string(job->current_host));
    pyj_dict_set(e, "current_instance_group", pyj_string(job->group_name));
    pyj_dict_set(e, "current_instance_group_hosts", strvec_list(&job->current_group_hosts));
    pyj_dict_set(e, "current_instance_type", pyj_string(job->instance_type));
    pyj_dict_set(e, "distribution_hosts", strvec_list(&job->distribution_hosts));
    pyj_dict_set(e, "distribution_instance_groups", pyj_copy(job->distribution_groups));
    pyj_dict_set(e, "framework_module", str_or_null(shx_job_inherited(job, "SAGEMAKER_TRAINING_MODULE")));
    pyj_dict_set(e, "hosts", pyj_copy(pyj_dict_get(job->resource_config, "hosts")));
    pyj_dict_set(e, "hyperparameters", pyj_copy(job->user_hps));
    pyj_dict_set(e, "input_config_dir", pyj_string(job->input_config_dir));
    pyj_dict_set(e, "input_data_config", pyj_copy(job->input_data_config));
    pyj_dict_set(e, "input_dir", pyj_string(job->input_dir));
    pyj_dict_set(e, "instance_groups", strvec_list(&job->group_names));
    pyj_dict_set(e, "instance_groups_dict", pyj_copy(job->groups_dict));
    pyj_dict_set(e, "is_hetero", pyj_bool(job->is_hetero));
    pyj_dict_set(e, "is_master", pyj_bool(job->is_master));
    /* mp_parameters and mp_parameters != "{}": None when unset, "" when empty, else a bool. */
    const char *mp = shx_job_inherited(job, "SM_HP_MP_PARAMETERS");
    pyj_dict_set(e, "is_modelparallel_enabled", !mp ? pyj_null() : !*mp ? pyj_string("") : pyj_bool(strcmp(mp, "{}") != 0));
    pyj_dict_set(e, "is_smddpmprun_installed", pyj_bool(on_path(job, "smddpmprun")));
    pyj_dict_set(e, "is_smddprun_installed", pyj_bool(on_path(job, "smddprun")));
    pyj_dict_set(e, "job_name", str_or_null(shx_job_inherited(job, "TRAINING_JOB_NAME")));
    pyj_dict_set(e, "log_level", pyj_copy(job->log_level));
    pyj_dict_set(e, "master_hostname", pyj_string(job->master));
    pyj_dict_set(e, "model_dir", pyj_string(job->model_dir));
    pyj_dict_set(e, "module_dir", pyj_string(job->module_dir));
    /* The toolkit takes str(None) when no program is given. */
    pyj_dict_set(e, "module_name", pyj_string(job->module_name ? job->module_name : "None"));
    pyj_dict_set(e, "network_interface_name", pyj_string(job->network_interface_name));
    pyj_dict_set(e, "num_cpus", pyj_int_ll(job->num_cpus));
    pyj_dict_set(e, "num_gpus", pyj_int_ll(job->num_gpus));
    pyj_dict_set(e, "num_neurons", pyj_int_ll(job->num_neurons));
    pyj_dict_set(e, "output_data_dir", pyj_string(job->output_data_dir));
    pyj_dict_set(e, "output_dir", pyj_string(job->output_dir));
    pyj_dict_set(e, "output_intermediate_dir", pyj_string(job->intermediate_dir));
    pyj_dict_set(e, "resource_config", pyj_copy(job->resource_config));
    const pyj_value *topo = pyj_dict_get(job->resource_config, "topology");
    pyj_dict_set(e, "topology", topo ? pyj_copy(topo) : pyj_list());
    pyj_dict_set(e, "user_entry_point", str_or_null(job->program));
    return e;
}

/* Set NAME=VALUE in env, replacing an existing entry in place. */
static void env_set(shx_strvec *env, const char *name, const char *value) {
    size_t n = strlen(name);
    char *kv = shx_xasprintf("%s=%s", name, value);
    for (size_t i = 0; i < env->n; i++) {
        if (!strncmp(env->v[i], name, n) && env->v[i][n] == '=') {
            free(env->v[i]);
            env->v[i] = kv;
            return;
        }
    }
    shx_strvec_take(env, kv);
}

static void sm_set(shx_job *job, const char *name, const pyj_value *v) {
    char *val = shx_env_value(v);
    env_set(&job->sm_env, name, val);
    free(val);
}

void shx_env_build(shx_job *job) {
    job->training_env = build_training_env(job);
    const pyj_value *te = job->training_env;
    pyj_value *tmp;
    /* The toolkit's to_env_vars() order. */
    sm_set(job, "SM_HOSTS", pyj_dict_get(te, "hosts"));
    sm_set(job, "SM_NETWORK_INTERFACE_NAME", pyj_dict_get(te, "network_interface_name"));
    sm_set(job, "SM_HPS", job->user_hps);
    sm_set(job, "SM_USER_ENTRY_POINT", pyj_dict_get(te, "user_entry_point"));
    sm_set(job, "SM_FRAMEWORK_PARAMS", job->framework_params);
    sm_set(job, "SM_RESOURCE_CONFIG", job->resource_config);
    sm_set(job, "SM_INPUT_DATA_CONFIG", job->input_data_config);
    sm_set(job, "SM_OUTPUT_DATA_DIR", pyj_dict_get(te, "output_data_dir"));
    sm_set(job, "SM_CHANNELS", tmp = strvec_list(&job->channels));
    pyj_free(tmp);
    sm_set(job, "SM_CURRENT_HOST", pyj_dict_get(te, "current_host"));
    sm_set(job, "SM_CURRENT_INSTANCE_TYPE", pyj_dict_get(te, "current_instance_type"));
    sm_set(job, "SM_CURRENT_INSTANCE_GROUP", pyj_dict_get(te, "current_instance_group"));
    sm_set(job, "SM_CURRENT_INSTANCE_GROUP_HOSTS", pyj_dict_get(te, "current_instance_group_hosts"));
    sm_set(job, "SM_INSTANCE_GROUPS", pyj_dict_get(te, "instance_groups"));
    sm_set(job, "SM_INSTANCE_GROUPS_DICT", pyj_dict_get(te, "instance_groups_dict"));
    sm_set(job, "SM_DISTRIBUTION_INSTANCE_GROUPS", pyj_dict_get(te, "distribution_instance_groups"));
    sm_set(job, "SM_IS_HETERO", pyj_dict_get(te, "is_hetero"));
    sm_set(job, "SM_MODULE_NAME", pyj_dict_get(te, "module_name"));
    sm_set(job, "SM_LOG_LEVEL", pyj_dict_get(te, "log_level"));
    sm_set(job, "SM_FRAMEWORK_MODULE", pyj_dict_get(te, "framework_module"));
    sm_set(job, "SM_INPUT_DIR", pyj_dict_get(te, "input_dir"));
    sm_set(job, "SM_INPUT_CONFIG_DIR", pyj_dict_get(te, "input_config_dir"));
    sm_set(job, "SM_OUTPUT_DIR", pyj_dict_get(te, "output_dir"));
    sm_set(job, "SM_NUM_CPUS", pyj_dict_get(te, "num_cpus"));
    sm_set(job, "SM_NUM_GPUS", pyj_dict_get(te, "num_gpus"));
    sm_set(job, "SM_NUM_NEURONS", pyj_dict_get(te, "num_neurons"));
    sm_set(job, "SM_MODEL_DIR", pyj_dict_get(te, "model_dir"));
    sm_set(job, "SM_MODULE_DIR", pyj_dict_get(te, "module_dir"));
    sm_set(job, "SM_TRAINING_ENV", te);
    sm_set(job, "SM_USER_ARGS", tmp = strvec_list(&job->user_args));
    pyj_free(tmp);
    sm_set(job, "SM_OUTPUT_INTERMEDIATE_DIR", pyj_dict_get(te, "output_intermediate_dir"));
    const pyj_value *cid = pyj_dict_get(te, "channel_input_dirs");
    for (size_t i = 0; i < cid->u.dict.n; i++) {
        char *name = shx_env_name("SM_CHANNEL_", cid->u.dict.keys[i].s);
        sm_set(job, name, cid->u.dict.vals[i]);
        free(name);
    }
    for (size_t i = 0; i < job->user_hps->u.dict.n; i++) {
        char *name = shx_env_name("SM_HP_", job->user_hps->u.dict.keys[i].s);
        sm_set(job, name, job->user_hps->u.dict.vals[i]);
        free(name);
    }
    const pyj_value *topo = pyj_dict_get(job->resource_config, "topology");
    if (topo && topo->type == PYJ_LIST && topo->u.list.n > 0) sm_set(job, "SM_TOPOLOGY", topo);

    /* The toolkit's os.environ updates. */
    env_set(&job->sm_env, "CURRENT_HOST", job->current_host);
    const pyj_value *jn = pyj_dict_get(job->hyperparameters, "sagemaker_job_name");
    char *s = jn && jn->type != PYJ_NULL ? pyj_str_of(jn) : shx_xstrdup("");
    env_set(&job->sm_env, "SAGEMAKER_JOB_NAME", s);
    free(s);
    const pyj_value *rg = pyj_dict_get(job->hyperparameters, "sagemaker_region");
    const char *aws_region = shx_job_inherited(job, "AWS_REGION");
    s = rg && rg->type != PYJ_NULL ? pyj_str_of(rg) : shx_xstrdup(aws_region ? aws_region : "");
    env_set(&job->sm_env, "SAGEMAKER_REGION", s);
    free(s);
    const char *pp = shx_job_inherited(job, "PYTHONPATH");
    s = pp && *pp ? shx_xasprintf("%s:%s", job->code_dir, pp) : shx_xstrdup(job->code_dir);
    env_set(&job->sm_env, "PYTHONPATH", s);
    free(s);

    /* Defaults the device backends asked for (CUDA_DEVICE_ORDER ...), only where the user and the platform set
     * nothing: they go to sm_env so that `smhost env` shows them. */
    for (size_t i = 0; i < job->devices.env_defaults.n; i++) {
        const char *kv = job->devices.env_defaults.v[i], *eq = strchr(kv, '=');
        char *name = shx_xstrndup(kv, (size_t)(eq - kv));
        if (!shx_job_inherited(job, name)) env_set(&job->sm_env, name, eq + 1);
        free(name);
    }

    /* The program's environment: what smhost inherited, with smhost's variables on top. */
    for (size_t i = 0; i < job->inherited.n; i++) shx_strvec_push(&job->env, job->inherited.v[i]);
    for (size_t i = 0; i < job->sm_env.n; i++) {
        char *eq = strchr(job->sm_env.v[i], '=');
        char *name = shx_xstrndup(job->sm_env.v[i], (size_t)(eq - job->sm_env.v[i]));
        env_set(&job->env, name, eq + 1);
        free(name);
    }
}
