/* `smhost local COMMAND`: SageMaker Local Mode without Docker (docs/local.md). */
#include "local/local.h"

#include <stdio.h>
#include <string.h>

#include "core/exitcodes.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: smhost local COMMAND [OPTIONS]   (SageMaker Local Mode without Docker; see docs/local.md)\n"
            "\n"
            "commands:\n"
            "  train      run a training job on N simulated hosts; artifacts model.tar.gz, output.tar.gz\n"
            "  serve      serve a model.tar.gz or model directory on 127.0.0.1:8080 until Ctrl-C\n"
            "  invoke     POST a request to /invocations; non-zero exit on a 4xx/5xx answer\n"
            "  transform  a batch transform job: every input file through /invocations into <file>.out\n"
            "  cluster    run a command on N simulated hosts (the machinery of train; for tests)\n"
            "\n"
            "`smhost local COMMAND --help` describes each.\n");
}

int shx_local_main(const shx_config *cfg, int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return SHX_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "train")) return shx_local_train_main(cfg, argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return shx_local_serve_main(cfg, argc - 1, argv + 1);
    if (!strcmp(cmd, "invoke")) return shx_local_invoke_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "transform")) return shx_local_transform_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "cluster")) return shx_local_cluster_main(cfg, argc - 1, argv + 1);
    fprintf(stderr, "smhost local: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return SHX_EXIT_USAGE;
}
