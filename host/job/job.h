/* The job model: everything read from the ML root and computed from it (contract sections 1-4). */
#ifndef SHX_JOB_H
#define SHX_JOB_H
#include "core/config.h"
#include "job/devview.h"
#include "core/pyjson.h"
#include "core/util.h"

typedef struct shx_job {
    /* What the job was read from: the process environment (copied once, by shx_job_load) and smhost.ini.  Nothing
     * else in the host reads the process environment for a job. */
    shx_strvec inherited;           /* "K=V", as smhost was started */
    const shx_config *cfg;          /* not owned */
    char *training_module;          /* SAGEMAKER_TRAINING_MODULE ("pkg.mod:func"), NULL when unset or empty */

    /* paths (no trailing slash) */
    char *root, *input_dir, *input_config_dir, *input_data_dir, *code_dir, *model_dir, *output_dir,
        *output_data_dir, *intermediate_dir, *checkpoints_dir;
    char *module_dir;               /* SM_MODULE_DIR: sagemaker_submit_directory as given, else code_dir */
    char *submit_dir;               /* sagemaker_submit_directory or NULL */

    pyj_value *hyperparameters;     /* decoded, all keys, file order */
    pyj_value *user_hps;            /* user hyperparameters (dict) */
    pyj_value *framework_params;    /* additional framework parameters (dict) */
    pyj_value *input_data_config;   /* dict */
    pyj_value *resource_config;     /* dict (synthesized when the file is missing) */

    shx_strvec channels;            /* sorted */
    char *current_host;
    shx_strvec hosts;               /* resourceconfig order */
    char *instance_type, *group_name, *network_interface_name;
    shx_strvec group_names;         /* file order */
    pyj_value *groups_dict;         /* name -> group object */
    shx_strvec current_group_hosts;
    pyj_value *distribution_groups; /* list (may come from a framework parameter, any JSON) */
    shx_strvec distribution_hosts;
    char *master;
    int is_master, is_hetero;
    int num_cpus, num_gpus, num_neurons;
    shx_devview devices;            /* what the device backends reported (job/devview.h) */
    pyj_value *log_level;           /* sagemaker_container_log_level, default 20 */
    int log_level_int;

    char *program;                  /* user_entry_point: SAGEMAKER_PROGRAM, else sagemaker_program; NULL if none */
    char *program_path;             /* absolute path (code_dir/program unless absolute); NULL if none */
    char *module_name;              /* program without ".py" */
    shx_strvec user_args;           /* contract section 2 */

    pyj_value *training_env;        /* the 37 keys of SM_TRAINING_ENV */
    shx_strvec sm_env;              /* the variables smhost sets, "K=V", in a stable order */
    shx_strvec env;                 /* the program's whole environment: inherited + sm_env */
} shx_job;

/* Read the ML root and compute the job.  Returns 0, or an SHX_EXIT_* code with err filled (which file, where,
 * what to do).  job must be zeroed. */
int shx_job_load(shx_job *job, const shx_config *cfg, char *err, size_t errlen);
void shx_job_free(shx_job *job);
/* Processes per host for a launcher (contract section 6): sagemaker_mpi_num_of_processes_per_host, else the GPU
 * count if > 0, else the NeuronCore count if > 0, else 1. */
int shx_job_procs_per_host(const shx_job *job);
/* A variable of the environment smhost was started with (job->inherited); NULL when unset. */
const char *shx_job_inherited(const shx_job *job, const char *name);
/* The ML root named by a SAGEMAKER_BASE_DIR value: "/opt/ml" when NULL or empty, trailing slashes dropped.
 * `smhost train` and `smhost serve` both use this.  Caller frees. */
char *shx_ml_root(const char *base_dir);

/* environment.c: fill job->training_env, job->sm_env and job->env from the rest of the job. */
void shx_env_build(shx_job *job);
/* Python truthiness of a decoded value. */
int shx_truthy(const pyj_value *v);
#endif
