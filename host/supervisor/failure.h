/* output/success and output/failure (contract section 5), the ErrorMessage and secret redaction. */
#ifndef SHX_FAILURE_H
#define SHX_FAILURE_H
#include <stddef.h>
#include "supervisor/supervisor.h"

#define SHX_FAILURE_MAX 1024 /* SageMaker shows this many characters as FailureReason */

int shx_write_success(const char *output_dir);
/* The success file, made ahead while the program runs: an unnamed file in output_dir (O_TMPFILE; -1 where the
 * filesystem has none).  Creating a file costs ~0.3 ms on some filesystems (ext4 looking for a free inode);
 * made in the supervisor right after fork, that happens beside the program instead of after it. */
int shx_success_prepare(const char *output_dir);
/* shx_write_success with a prepared file (fd from shx_success_prepare, or -1): links it in as output_dir/success,
 * else writes it as shx_write_success does.  Closes fd. */
int shx_write_success_prepared(const char *output_dir, int fd);
/* Discards a prepared file (fd may be -1). */
void shx_success_discard(int fd);
/* Write output/failure unless it exists (a script may have written its own).  The text is redacted and cut to
 * SHX_FAILURE_MAX bytes of valid UTF-8.  Returns 0 written, 1 already there, -1 error (logged). */
int shx_write_failure(const char *output_dir, const char *text);
/* The failure text for a job that ran: ExecuteUserScriptError layout with a real ErrorMessage, or a stop or OOM
 * reason, or the job process's own reason (page->reason).  Caller frees. */
/* A failure smhost itself reports (a bad ML root, a missing program ...): "<kind>:" and msg, written as above. */
int shx_write_failure_reason(const char *output_dir, const char *kind, const char *msg);
char *shx_failure_text(const shx_sup_result *r, const shx_status_page *page, int grace_seconds);
/* The most useful part of a stderr tail: the exception line first, then the last lines, within budget bytes. */
char *shx_error_message_from_tail(const char *tail, size_t len, size_t budget);
/* Remove secrets in place: AWS access key ids and secret keys, credentials and tokens in URLs, Authorization
 * headers, X-Amz-Signature/Credential/Security-Token parameters. */
void shx_redact(char *s);
/* Does this name (of a variable, hyperparameter or label; len bytes) name a secret?  The one rule smhost uses. */
int shx_secret_name(const char *name, size_t len);
#endif
