# The python runner exec()s smhost-python (python/, built below): the plugin itself never links libpython.
# SMHPY_PYTHON3 is the python3 whose installation smhost-python embeds: sys.executable, and pip for packages.
PLUGIN_CFLAGS_python := -I. -DSMHPY_PYTHON3='"$(PYTHON3)"'
PLUGIN_LIBS_python :=
$(PLUGDIR)/python.so: python/handoff.h

# smhost-python: built like Debian's /usr/bin/python3 -- non-PIE, the static (non-PIC) libpython3.11.a,
# -export-dynamic so C extension modules (numpy, sklearn) resolve the interpreter's symbols from the executable,
# the whole archive, so every function of the C API is there for extension modules and for pyhandler.so, which
# binds to the executable's interpreter in smhost serve's Python zygote (host/serve/pyzygote.h),
# and the libraries the static archive needs (sysconfig's LIBS, MODLIBS, SYSLIBS: -ldl -lexpat -lz -lm).
# The position-independent libpython3.11.so runs Python code ~10% slower (docs/python.md).  Never built with the
# sanitizers: it is CPython plus ~600 lines, and the Python tests do not run under ASan.
PY_SYSCONFIG   = $(shell $(PYTHON3) -c 'import sysconfig as s; print(s.get_config_var("$(1)") or "")' 2>/dev/null)
PY_STATIC_LIB := $(call PY_SYSCONFIG,LIBPL)/$(call PY_SYSCONFIG,LIBRARY)
PY_STATIC_LIBS := $(sort $(call PY_SYSCONFIG,LIBS) $(call PY_SYSCONFIG,MODLIBS) $(call PY_SYSCONFIG,SYSLIBS)) -lpthread
PYEXE_SRC := $(wildcard python/*.c) host/supervisor/status.c host/core/util.c host/core/log.c
PYEXE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g -fno-pie -Isdk/include -Ihost -I. $(PY_CFLAGS) \
                -DSMHPY_PYTHON3='"$(PYTHON3)"'
$(BIN)/smhost-python: $(PYEXE_SRC) $(wildcard python/*.h) host/supervisor/status.h host/core/util.h host/core/log.h
	@mkdir -p $(dir $@)
	@test -f $(PY_STATIC_LIB) || { echo "smhost-python needs the static $(PY_STATIC_LIB): apt-get install python3-dev (libpython3.11-dev)" >&2; exit 1; }
	$(CC) $(PYEXE_CFLAGS) -no-pie -o $@ $(PYEXE_SRC) -Xlinker -export-dynamic \
	    -Wl,--whole-archive $(PY_STATIC_LIB) -Wl,--no-whole-archive $(PY_STATIC_LIBS)
all: $(BIN)/smhost-python
