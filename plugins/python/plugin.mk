# The embedded Python runner links libpython (python3-config --embed); SMHPY_PYTHON3 is the python3 of that
# same installation: sys.executable, and the interpreter that runs `pip install .` for packages.
PLUGIN_CFLAGS_python := $(PY_CFLAGS) -DSMHPY_PYTHON3='"$(PYTHON3)"'
PLUGIN_LIBS_python := $(PY_LIBS)
