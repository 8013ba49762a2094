/* Writing model.tar.gz / output.tar.gz the way SageMaker (and Local Mode) package artifacts: the top-level
 * entries of one or more directories, merged, gzip-compressed, with relative names ("model.joblib",
 * "code/inference.py"), no "./" prefix. */
#ifndef SHX_PACK_H
#define SHX_PACK_H
#include <stddef.h>

typedef struct shx_pack_spec {
    const char *out;          /* the .tar.gz to write; written to out.tmp then renamed */
    const char *const *dirs;  /* directories whose entries are merged; for a name in several, the first wins */
    const char *const *labels;/* a label per dir (the host) for the message about a name skipped; may be NULL */
    size_t ndirs;
    const char *prefix;       /* a directory every merged entry goes under ("data"), or NULL */
    const char *const *files; /* extra files: archive name, path, archive name, path ... */
    size_t nfiles;            /* number of pairs */
    size_t entries;           /* out: entries written */
} shx_pack_spec;

/* 0, or SHX_EXIT_CANTCREAT / SHX_EXIT_NOINPUT with err filled. */
int shx_pack_tgz(shx_pack_spec *spec, char *err, size_t errlen);
#endif
