# The python runner exec()s python3 with pyboot.so preloaded (python/, built below): the plugin itself never links
# libpython.  SMHPY_PYTHON3 is the python3 that runs Python programs (sys.executable) and pip for packages.
PLUGIN_CFLAGS_python := -I. -DSMHPY_PYTHON3='"$(PYTHON3)"'
PLUGIN_LIBS_python :=
$(PLUGDIR)/python.so: python/handoff.h

# pyboot.so (python/pyboot.c): the library smhost preloads into python3 for Python jobs and the zygote of Python
# handlers.  It runs inside python3 only, which exports the interpreter's C API (-export-dynamic), so it does not
# link libpython (only its headers are needed: python3-dev).  Never built with the sanitizers, whatever SAN says:
# an instrumented library cannot be preloaded into an uninstrumented python3 without the ASan runtime before it;
# so it is compiled from its sources here, with the few host files it needs (the status page), not from libshx.a.
# One symbol is exported, __libc_start_main (python/pyboot.map): a preloaded library's symbols come before
# everything else in python3 and its extension modules.
PYBOOT     := $(INTDIR)/pyboot.so
PYBOOT_SRC := $(wildcard python/*.c) host/supervisor/status.c host/core/util.c host/core/log.c
PYBOOT_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g -fPIC -fvisibility=hidden -Isdk/include -Ihost -I. \
                 $(PY_CFLAGS) -DSMHPY_PYTHON3='"$(PYTHON3)"'
$(PYBOOT): $(PYBOOT_SRC) $(wildcard python/*.h) python/pyboot.map host/supervisor/status.h host/core/util.h \
           host/core/log.h
	@mkdir -p $(dir $@)
	@test -n "$(PY_CFLAGS)" || { echo "pyboot.so needs Python's headers: apt-get install python3-dev" >&2; exit 1; }
	$(CC) $(PYBOOT_CFLAGS) -ffunction-sections -fdata-sections -shared -Wl,--gc-sections \
	    -Wl,--version-script=python/pyboot.map -Wl,-z,lazy -o $@ $(PYBOOT_SRC) -ldl
all: $(PYBOOT)

# The serve zygote (host/serve/pyzygote.c) starts the same python3.
$(OBJ)/host/serve/pyzygote.o: python/handoff.h
$(OBJ)/host/serve/pyzygote.o: ALL_CFLAGS += -DSMHPY_PYTHON3='"$(PYTHON3)"'
