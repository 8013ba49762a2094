/* smhost entry point: argv dispatch (smhost train|serve|env|plugins, or argv[0] "train"/"serve"). */
#include <stdio.h>
#include <string.h>

#include "serve.h"

int main(int argc, char **argv) {
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (!strcmp(base, "serve")) return shx_serve_main(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "serve")) return shx_serve_main(argc - 1, argv + 1);
    puts("smhost " SMHOST_VERSION);
    return 0;
}
