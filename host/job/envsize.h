/* The program's environment at scale: building it in O(n log n), and checking that it and argv fit what
 * execve() accepts before trying (issue 13: 40k hyperparameters took 11 s, then failed with a bare E2BIG). */
#ifndef SHX_ENVSIZE_H
#define SHX_ENVSIZE_H
#include <stddef.h>

#include "core/util.h"

/* Removes repeated names from env (NAME=VALUE strings): a name keeps the position of its first entry and the
 * value of its last, as replacing entries one by one in place would.  O(n log n). */
void shx_env_dedupe(shx_strvec *env);

/* 0 when argv and envp (NULL-terminated; envp may be NULL) fit the kernel's limits for execve(): every string
 * at most MAX_ARG_STRLEN (32 pages), all of them with their pointers at most ARG_MAX (a quarter of the stack
 * limit).  Else -1 with err naming the limit, the size and the largest variable or argument. */
int shx_exec_size_check(const char *const argv[], const char *const envp[], char *err, size_t errlen);
#endif
