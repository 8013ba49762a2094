/* The user's code: sagemaker_submit_directory as a local directory or .tar.gz, unpacked safely with libarchive
 * into <root>/code, only when that directory is empty (contract section 4). */
#ifndef SHX_SOURCE_H
#define SHX_SOURCE_H
#include <stddef.h>
/* submit may be NULL or "" (nothing to do).  Returns 0, or an SHX_EXIT_* code with err filled: a message that
 * names the source, the problem and the next step.  Refuses absolute paths, "..", links that escape, device
 * nodes and FIFOs; on failure code_dir is left empty.  A non-empty code_dir is used as is (logged).
 *   NOINPUT: s3:// or other URLs, missing or unreadable source;  DATAERR: corrupt archive or refused entry;
 *   CANTCREAT: code_dir cannot be created or written.
 * Changes the working directory during extraction and restores it: call it before starting threads. */
int shx_source_prepare(const char *submit, const char *code_dir, char *err, size_t errlen);
#endif
