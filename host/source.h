/* The user's code: sagemaker_submit_directory as a local directory or .tar.gz, unpacked safely with libarchive
 * into <root>/code, only when that directory is empty (contract section 4). */
#ifndef SHX_SOURCE_H
#define SHX_SOURCE_H
#include <stddef.h>
/* submit may be NULL or "" (nothing to do).  Returns 0, or an SHX_EXIT_* code with err filled: a message that
 * names the source, the problem and the next step.  Refuses absolute paths, "..", and links that escape. */
int shx_source_prepare(const char *submit, const char *code_dir, char *err, size_t errlen);
#endif
