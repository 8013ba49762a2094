/* Test plugin built against the frozen v1.0 header: it claims kind 4, the launcher kind of 1.1, which had no ops
 * table in 1.0 (the slot that became `launcher` in 1.1 was reserved[1] and is zero here).  The host must refuse it
 * with a message naming ABI 1.1, not read ops that do not exist. */
#include <stdio.h>

#include "abi-v1.0/smhost/plugin.h"

#if SMH_ABI_MAJOR != 1 || SMH_ABI_MINOR != 0
#error "v1_0_launcher must be compiled against the frozen v1.0 header"
#endif

SMH_PLUGIN_DEFINE(.name = "v1_0_launcher", .version = "1.0-frozen",
                  .description = "test: a v1.0 descriptor claiming the launcher kind; must be refused", .kind = 4)
