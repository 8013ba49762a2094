/* `smhost devices`, and the device health gate of `smhost train` and `smhost serve` (docs/devices.md). */
#ifndef SHX_CMD_DEVICES_H
#define SHX_CMD_DEVICES_H
#include "core/config.h"
#include "job/devview.h"

int shx_devices_main(const shx_config *cfg, int json);
/* Log one line per device, then apply [devices] health_check to the visible devices whose health is FAILED:
 * returns 0 (all well, `warn`, or `off`), or SHX_EXIT_DEVICE with *text set (caller frees) to the failure
 * reason: which device (index and UUID) and why.  `what` names the command ("training", "serving"). */
int shx_devices_gate(const shx_config *cfg, const shx_devview *v, const char *what, char **text);
/* `smhost serve`: discover the devices and apply the gate before the server starts (and so before /ping can
 * answer 200).  Returns 0 or SHX_EXIT_DEVICE. */
int shx_devices_serve_gate(const shx_config *cfg);
#endif
