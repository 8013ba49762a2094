/* smhost serve: the inference server (contract section 7, docs/serving.md).
 *
 * Processes: the front (this process; libmicrohttpd, routing, limits, readiness, deadlines, SIGTERM) never runs
 * plugin code.  It forks a zygote before any thread exists; the zygote loads the handler plugin (and, where
 * allowed, the model) and forks the workers, which answer requests sent by the front over socketpairs. */
#ifndef SHX_SERVE_H
#define SHX_SERVE_H

#include "core/config.h"

/* `smhost serve` (argv[0] is "serve").  Returns the exit code. */
int shx_serve_main(const shx_config *config, int argc, char **argv);

#endif
