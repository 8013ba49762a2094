/* Test plugin built against the frozen v1.0 header: it claims SMH_KIND_BACKEND, which had no ops table in 1.0 (the
 * slot that became `backend` in 1.1 was reserved and is zero here).  The host must refuse it with a message
 * naming ABI 1.1, not crash reading ops that do not exist. */
#include <stdio.h>

#include "abi-v1.0/smhost/plugin.h"

#if SMH_ABI_MAJOR != 1 || SMH_ABI_MINOR != 0
#error "v1_0_backend must be compiled against the frozen v1.0 header"
#endif

SMH_PLUGIN_DEFINE(.name = "v1_0_backend", .version = "1.0-frozen",
                  .description = "test: a v1.0 descriptor claiming the backend kind; must be refused",
                  .kind = SMH_KIND_BACKEND)
