/* Device discovery: choose the backend plugins worth loading (cheap signs first: job/devices.c), run them in a
 * short-lived probe process, and fall back to the /proc and /dev scan where one cannot answer. */
#ifndef SHX_BACKENDS_H
#define SHX_BACKENDS_H
#include <smhost/device.h>

#include "core/config.h"
#include "job/devview.h"

/* Fill *v (zeroed by the caller).  env: the environment smhost was started with (the backends read the same
 * one).  nranks: the local processes [devices] isolate plans for; 0 means one per visible device.  Never fails:
 * every problem becomes a backend report (SHX_BK_FALLBACK) that shx_devview_log turns into a warning. */
void shx_backends_discover(shx_devview *v, const shx_config *cfg, char *const *env, int nranks);

/* The host API's v1.1 backend functions (hostapi.c wires them into smh_host_api). */
smh_status shx_sink_device_add(smh_device_sink *sink, const smh_device *dev);
smh_status shx_sink_set_info(smh_device_sink *sink, const char *key, const char *value);
smh_status shx_sink_set_env(smh_device_sink *sink, const char *name, const char *value);
#endif
