/* The python runner plugin: internal definitions (nothing here is exported). */
#ifndef SMHPY_PYPLUGIN_H
#define SMHPY_PYPLUGIN_H
#include <stddef.h>
#include <smhost/plugin.h>

#include "python/handoff.h"

#define SMHPY_NAME "python"

typedef struct smhpy_target {
    smhpy_kind kind;
    const char *script;   /* SMHPY_SCRIPT: absolute path */
    char module[256];     /* SMHPY_MODULE / SMHPY_ENTRY */
    char function[128];   /* SMHPY_ENTRY */
} smhpy_target;
#endif
