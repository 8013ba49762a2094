/* smhost serve: the inference server (contract section 7, docs/serving.md).
 *
 * Processes: the front (this process; libmicrohttpd, routing, limits, readiness, deadlines, SIGTERM) never runs
 * plugin code.  It forks a zygote before any thread exists; the zygote loads the handler plugin (and, where
 * allowed, the model) and forks the workers, which answer requests sent by the front over socketpairs. */
#ifndef SHX_SERVE_H
#define SHX_SERVE_H
#include <stddef.h>
#include <smhost/plugin.h>

/* `smhost serve` (argv[0] is "serve").  Returns the exit code. */
int shx_serve_main(int argc, char **argv);

/* The host API's serving functions (smh_host_api.resp_*).  Valid only inside a handler's invoke(). */
smh_status shx_resp_write(smh_response *resp, const void *data, size_t len);
smh_status shx_resp_set_status(smh_response *resp, int http_status);
smh_status shx_resp_set_content_type(smh_response *resp, const char *content_type);
smh_status shx_resp_set_custom_attributes(smh_response *resp, const char *value);
#endif
