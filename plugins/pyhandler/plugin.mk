# pyhandler embeds libpython; runtime.py is assembled into the .so (.incbin), so it is a prerequisite too
# (added without making this rule the Makefile's default goal).
PLUGIN_CFLAGS_pyhandler := $(PY_CFLAGS)
PLUGIN_LIBS_pyhandler := $(PY_LIBS)
pyhandler_saved_goal := $(.DEFAULT_GOAL)
$(PLUGDIR)/pyhandler.so: plugins/pyhandler/runtime.py
.DEFAULT_GOAL := $(pyhandler_saved_goal)
