/* Shared by the libFuzzer targets (tests/fuzz/README.md). */
#ifndef SHX_FUZZ_H
#define SHX_FUZZ_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

/* A property that must hold: report it and abort, so that libFuzzer keeps the input as a crasher. */
#define FUZZ_CHECK(cond, ...)                                                                                  \
    do {                                                                                                       \
        if (!(cond)) {                                                                                         \
            fprintf(stderr, "fuzz property failed: %s: ", #cond);                                              \
            fprintf(stderr, __VA_ARGS__);                                                                      \
            fputc('\n', stderr);                                                                               \
            abort();                                                                                           \
        }                                                                                                      \
    } while (0)

/* smhost's own log would drown libFuzzer's: errors only. */
static inline void fuzz_quiet(void) { shx_log_set_level(SHX_ERROR + 10); }
#endif
