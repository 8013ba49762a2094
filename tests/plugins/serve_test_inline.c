/* serve_test.c declaring SMH_HANDLER_THREAD_SAFE: smhost serve runs it in the front process (inline). */
#define SERVE_TEST_FLAGS SMH_HANDLER_THREAD_SAFE
#define SERVE_TEST_NAME "serve_test_inline"
#include "serve_test.c"
