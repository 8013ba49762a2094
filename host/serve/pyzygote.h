/* Python handlers at the speed of python3: the serving zygote of a Python handler (pyhandler) exec()s
 * smhost-python, the embedding executable linked like /usr/bin/python3 (docs/python.md), which loads this module
 * (serve.so) again and runs the same zygote there.  The plugin's Py* calls then bind to the executable's static
 * interpreter (it exports them), so the model is loaded once in the zygote and every forked worker runs handler
 * code ~10% faster than on the shared libpython.  Front, protocol and workers are unchanged. */
#ifndef SHX_SERVE_PYZYGOTE_H
#define SHX_SERVE_PYZYGOTE_H

#include "serve/worker.h"

/* In the forked zygote, before shx_zygote_main(): exec smhost-python for a Python handler.  Returns only when
 * that is not possible (not a Python handler, a sanitized build, smhost-python missing: warned), and the caller
 * goes on with shx_zygote_main() in this process. */
void shx_zygote_exec_python(const shx_serve_spec *spec, int ctl);
#endif
