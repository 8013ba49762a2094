/* Test plugin: a shared object without the smh_plugin_entry symbol (it exports a misspelt one instead).  The host
 * must refuse it, naming the file and the missing symbol. */
#include <smhost/plugin.h>

SMH_EXPORT int smh_plugin_init(void);
SMH_EXPORT int smh_plugin_init(void) { return 0; }
