/* smhost entry point: argv dispatch (smhost train|serve|env|plugins, or argv[0] "train"/"serve"). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    puts("smhost " SMHOST_VERSION);
    return 0;
}
