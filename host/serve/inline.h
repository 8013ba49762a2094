/* Inline handlers: a handler that declares SMH_HANDLER_THREAD_SAFE (plugin.h) is loaded into the front and invoked
 * on the thread that read the request, with no worker process and no hop (docs/serving.md, "Inline handlers").
 * SMHOST_SERVE_INLINE=auto (default) does that for such handlers; never keeps every handler in workers. */
#ifndef SHX_SERVE_INLINE_H
#define SHX_SERVE_INLINE_H
#include "core/config.h"
#include "serve/settings.h"
#include "serve/worker.h"

/* Before the front listens: decide, and when the handler runs inline, open it and load the model (the front then
 * starts no zygote).  Returns 0, or an exit code with err filled (a bad SMHOST_SERVE_INLINE, a failed load). */
int shx_inline_setup(const shx_serve_settings *s, const shx_config *cfg, char *err, size_t errlen);
/* 1 when requests are answered inline. */
int shx_inline_active(void);
/* Serve with the handler inline until a stop signal arrives on sfd (the supervisor's signalfd; SIGCHLD reaps):
 * libmicrohttpd's own thread pool, one thread per SAGEMAKER_MODEL_SERVER_WORKERS, each calling invoke() for the
 * requests it reads (the handler is thread-safe); then finish requests in flight within the grace period and end
 * whatever the handler left running.  Returns the exit code. */
int shx_inline_serve(int sfd);
/* One request, answered through answer() before it returns. */
void shx_inline_invoke(const smh_request *req, shx_answer_fn answer, void *ctx);
#endif
