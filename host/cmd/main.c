/* smhost entry point: `smhost train|serve|env|plugins`, or installed as `train` / `serve` (argv[0]). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smhost/plugin.h>

#include "core/config.h"
#include "core/exitcodes.h"
#include "cmd/inspect.h"
#include "core/log.h"
#include "plugin/modules.h"
#include "supervisor/supervisor.h"
#include "cmd/train.h"
#include "cmd/devices.h"
#include "local/local.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: smhost COMMAND [--json]\n"
            "\n"
            "The entry point of SageMaker-style ML containers (docker run IMAGE train|serve).\n"
            "\n"
            "commands:\n"
            "  train          run the training job described under $SAGEMAKER_BASE_DIR (default /opt/ml)\n"
            "  serve          serve the model over HTTP on port 8080 (or $SAGEMAKER_BIND_TO_PORT)\n"
            "  env [--json]   print the SM_* environment and command a training job would get\n"
            "  plugins [--json]  list the plugins found, their ABI versions, and why any was refused\n"
            "  devices [--json]  list the GPUs and accelerators the device backends see, with their health\n"
            "  local COMMAND  SageMaker Local Mode without Docker: train on N simulated hosts, serve, invoke,\n"
            "                 transform (smhost local --help)\n"
            "  rank           run the job's program as one rank of a distributed job (what mpirun starts)\n"
            "  --help, --version\n"
            "\n"
            "Installed as `train` or `serve`, smhost runs that command.\n"
            "Configuration: /etc/smhost/smhost.ini (SMHOST_CONFIG overrides); plugins: SMHOST_PLUGIN_PATH.\n"
            "Exit codes: the program's own, 128+N for signal N, 64-78 and 126/127 for smhost's own errors\n"
            "(see README.md).\n");
}

/* smhost.ini (or SMHOST_CONFIG), and its log level.  -1 with the reason on stderr. */
static int load_config(shx_config *cfg) {
    char err[2048];
    if (shx_config_load(cfg, err, sizeof err) < 0) {
        fprintf(stderr, "smhost: %s\n", err);
        return -1;
    }
    if (cfg->log_level >= 0) shx_log_set_level(cfg->log_level);
    return 0;
}

int main(int argc, char **argv) {
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    const char *cmd = NULL;
    int argi = 1;
    if (!strcmp(base, "train") || !strcmp(base, "serve")) cmd = base;
    else if (argc > 1) cmd = argv[argi++];
    if (!cmd) {
        usage(stderr);
        return SHX_EXIT_USAGE;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("smhost %s (plugin ABI %d.%d)\n", SMHOST_VERSION, SMH_ABI_MAJOR, SMH_ABI_MINOR);
        return 0;
    }
    if (!strcmp(cmd, "local")) {
        shx_config lcfg;
        if (load_config(&lcfg) < 0) return SHX_EXIT_CONFIG;
        int lrc = shx_local_main(&lcfg, argc - argi + 1, argv + argi - 1); /* argv[0] is "local" */
        shx_config_free(&lcfg);
        return lrc;
    }
    int is_train = !strcmp(cmd, "train"), is_serve = !strcmp(cmd, "serve");
    int is_env = !strcmp(cmd, "env"), is_plugins = !strcmp(cmd, "plugins"), is_devices = !strcmp(cmd, "devices");
    int is_rank = !strcmp(cmd, "rank");
    if (!is_train && !is_serve && !is_env && !is_plugins && !is_devices && !is_rank) {
        fprintf(stderr, "smhost: unknown command '%s'\n\n", cmd);
        usage(stderr);
        return SHX_EXIT_USAGE;
    }
    /* Signals first: a SIGTERM during startup must wait for the job, not kill PID 1. */
    if (is_train || is_serve) shx_sup_early_init();
    int json = 0;
    for (int i = argi; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && (is_env || is_plugins || is_devices)) json = 1;
        else if (!is_serve) {
            fprintf(stderr, "smhost %s: unexpected argument '%s'\n", cmd, argv[i]);
            return SHX_EXIT_USAGE;
        }
    }

    shx_config cfg;
    if (load_config(&cfg) < 0) return SHX_EXIT_CONFIG;
    int rc;
    if (is_train) rc = shx_train_main(&cfg);
    else if (is_rank) rc = shx_rank_main(&cfg);
    else if (is_serve) {
        /* the device health check comes first: a server on a failed GPU never reports ready */
        rc = shx_devices_serve_gate(&cfg);
        if (!rc) rc = shx_modules_serve(&cfg, argc - argi + 1, argv + argi - 1); /* argv[0] is "serve" */
    }
    else if (is_env) rc = shx_env_main(&cfg, json);
    else if (is_devices) rc = shx_devices_main(&cfg, json);
    else rc = shx_plugins_main(&cfg, json);
    shx_config_free(&cfg);
    return rc;
}
