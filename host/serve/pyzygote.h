/* Python handlers at the speed of python3: the serving zygote of a Python handler (pyhandler) exec()s
 * /usr/bin/python3 itself with smhost's pyboot.so preloaded (python/handoff.h, docs/python.md), whose main loads this
 * module (serve.so) again and runs the same zygote there instead of python3's main.  The plugin's Py* calls then
 * bind to python3's own interpreter (the executable exports them), so the model is loaded once in the zygote and
 * every forked worker runs handler code at python3's speed instead of ~10% slower on the shared libpython.  Front,
 * protocol and workers are unchanged. */
#ifndef SHX_SERVE_PYZYGOTE_H
#define SHX_SERVE_PYZYGOTE_H

#include "serve/worker.h"

/* In the forked zygote, before shx_zygote_main(): exec python3 with pyboot.so for a Python handler (in sanitizer
 * builds with the ASan runtime preloaded before it).  Returns only when that is not possible (not a Python handler,
 * pyboot.so or python3 missing: warned), and the caller goes on with shx_zygote_main() in this process. */
void shx_zygote_exec_python(const shx_serve_spec *spec, int ctl);
#endif
