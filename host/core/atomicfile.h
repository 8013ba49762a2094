/* Files that appear whole or not at all. */
#ifndef SHX_ATOMICFILE_H
#define SHX_ATOMICFILE_H
#include <stddef.h>

/* Writes data to a temporary file next to path and links it to path only when all of it was written, so that a
 * full disk never leaves a truncated or empty path.  Like O_EXCL: fails with -EEXIST when path exists (the link
 * is atomic, so a writer that races us keeps its file).  0 or -errno; the temporary file never stays. */
int shx_write_file_atomic_excl(const char *path, const void *data, size_t len);
#endif
