/* `smhost serve` (contract section 7). */
#ifndef SHX_SERVE_H
#define SHX_SERVE_H
#include "config.h"
int shx_serve_main(const shx_config *cfg, int argc, char **argv);
#endif
