/* `smhost env` and `smhost plugins`: look without running. */
#ifndef SHX_INSPECT_H
#define SHX_INSPECT_H
#include "core/config.h"
int shx_env_main(const shx_config *cfg, int json);
int shx_plugins_main(const shx_config *cfg, int json);
#endif
