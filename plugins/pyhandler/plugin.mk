# pyhandler embeds libpython; runtime.py is assembled into the .so (.incbin), so it is a prerequisite too.
PLUGIN_CFLAGS_pyhandler := $(PY_CFLAGS)
PLUGIN_LIBS_pyhandler := $(PY_LIBS)
$(PLUGDIR)/pyhandler.so: plugins/pyhandler/runtime.py
