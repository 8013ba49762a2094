/* `smhost local ...`: SageMaker Local Mode without Docker (docs/local.md). */
#ifndef SHX_LOCAL_H
#define SHX_LOCAL_H
#include "core/config.h"

/* argv[0] is "local".  Returns the exit code. */
int shx_local_main(const shx_config *cfg, int argc, char **argv);
int shx_local_train_main(const shx_config *cfg, int argc, char **argv);
int shx_local_serve_main(const shx_config *cfg, int argc, char **argv);
int shx_local_invoke_main(int argc, char **argv);
int shx_local_transform_main(int argc, char **argv);
/* `smhost local cluster`: a command on N simulated hosts (the machinery of local train, for tests). */
int shx_local_cluster_main(const shx_config *cfg, int argc, char **argv);
/* "{host}" in s replaced by host (a new string). */
char *shx_local_subst_host(const char *s, const char *host);
/* Per-host summary lines on stderr: exit code and duration. */
struct shx_cluster;
void shx_local_print_hosts(const struct shx_cluster *c);
#endif
