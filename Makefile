# smhost -- see README.md.  `make` builds build/bin/smhost and build/lib/smhost/plugins/*.so.
#   make SAN=1        builds into build/san with -fsanitize=address,undefined
#   make test         every test (unit tests under ASan+UBSan, black-box tests against both builds)
#   make demo         installs what is missing, builds, runs the sample job
#   make install PREFIX=/usr/local DESTDIR=

# `all` stays the default goal whatever plugins/*/plugin.mk define.
.DEFAULT_GOAL := all
CC       ?= gcc
PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  := 1.0.0
SAN      ?= 0
ifeq ($(SAN),1)
BUILD    ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      := -O1
else
BUILD    ?= build
SANFLAGS :=
OPT      := -O2
endif

PYTHON3       := /usr/bin/python3
PY_CFLAGS     := $(shell $(PYTHON3)-config --includes 2>/dev/null)
PY_LIBS       := $(shell $(PYTHON3)-config --embed --ldflags 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DSMHOST_VERSION='"$(VERSION)"' $(WARN) $(SANFLAGS) -Isdk/include $(CFLAGS)
LDFLAGS  ?=
BIN_LIBS  := -linih -lcjson -ldl -lpthread -lm
# The smhost binary itself: every shared library costs each job's start-up (~65 us to map, relocate, copy at fork
# and unmap; bench/run.sh), so inih (a 7 KB archive) is linked in and JSON is core/pyjson.c's.
SMHOST_LIBS := -Wl,-Bstatic -linih -Wl,-Bdynamic -ldl -lpthread -lm
# smhost binds its C library calls at start-up (-z now) into a read-only GOT (relro): no lazy binding on first
# calls in the supervisor and again in each job process, no GOT pages copied on write after fork(), and full RELRO
# for PID 1.  Measured ~0.04 ms less start-up (bench/python.sh, trivial).
SMHOST_LDFLAGS := -Wl,-z,now -Wl,-z,relro
HOST_LIBS := -linih -lcjson -larchive -lmicrohttpd -lcurl -ldl -lpthread -lm

BIN      := $(BUILD)/bin
PLUGDIR  := $(BUILD)/lib/smhost/plugins
OBJ      := $(BUILD)/obj

# host/<module>/*.c, one folder per module (README "Layout"):
#   core, job, plugin, supervisor, dist  the host library: linked into smhost and, only what each needs, into modules
#   cmd                            the commands (main, train, inspect): only in the smhost binary
#   local                          `smhost local` (the simulated hosts): only in the smhost binary
#   serve, unpack, s3, http        internal modules (host/plugin/modules.h): heavy dependencies, loaded when used
HOST_SRC  := $(sort $(wildcard host/*/*.c))
HOST_HDR  := $(wildcard host/*/*.h)
HOST_OBJ  := $(HOST_SRC:host/%.c=$(OBJ)/host/%.o)
objs_of    = $(patsubst host/%.c,$(OBJ)/host/%.o,$(sort $(wildcard $(addsuffix /*.c,$(addprefix host/,$(1))))))
LIB_OBJ   := $(call objs_of,core job plugin supervisor dist)
CMD_OBJ   := $(call objs_of,cmd local)
HOST_LIB_OBJ := $(filter-out $(OBJ)/host/cmd/main.o,$(HOST_OBJ))
# The host library as an archive: the binary and each module pull in only the objects they reference.
LIBSHX    := $(OBJ)/libshx.a
INTDIR    := $(BUILD)/lib/smhost/internal
SERVE_MOD_OBJ  := $(call objs_of,serve)
UNPACK_MOD_OBJ := $(call objs_of,unpack)
S3_MOD_OBJ     := $(call objs_of,s3)
HTTP_MOD_OBJ   := $(call objs_of,http)
MODULES   := $(INTDIR)/serve.so $(INTDIR)/unpack.so $(INTDIR)/s3.so $(INTDIR)/http.so

# Plugins: every directory plugins/<name>/ with .c files builds <name>.so.  plugins/<name>/plugin.mk may set
# PLUGIN_CFLAGS_<name> and PLUGIN_LIBS_<name>.
PLUGINS   := $(notdir $(patsubst %/,%,$(dir $(wildcard plugins/*/*.c))))
PLUGINS   := $(sort $(PLUGINS))
-include $(wildcard plugins/*/plugin.mk)
PLUGIN_SO := $(PLUGINS:%=$(PLUGDIR)/%.so)

UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TPLUG_SRC := $(sort $(wildcard tests/plugins/*.c))
TPLUG_SO  := $(TPLUG_SRC:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)

.PHONY: all plugins install uninstall test test-unit test-blackbox test-san demo deps bench clean test-image samples
PRELOAD   := $(BUILD)/lib/smhost/gethostname.so
all: $(BIN)/smhost $(MODULES) $(PRELOAD) plugins samples
.SECONDEXPANSION:

$(OBJ)/host/%.o: host/%.c $(HOST_HDR) $(wildcard sdk/include/smhost/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ihost -fPIC -fvisibility=hidden -c $< -o $@

$(LIBSHX): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BIN)/smhost: $(CMD_OBJ) $(LIBSHX)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) $(SMHOST_LDFLAGS) -o $@ $^ $(SMHOST_LIBS)
	ln -sf smhost $(BIN)/train
	ln -sf smhost $(BIN)/serve

$(INTDIR)/serve.so: $(SERVE_MOD_OBJ) $(LIBSHX)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) -shared -Wl,--no-undefined -o $@ $^ -lmicrohttpd $(BIN_LIBS)

$(INTDIR)/unpack.so: $(UNPACK_MOD_OBJ) $(LIBSHX)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) -shared -Wl,--no-undefined -o $@ $^ -larchive -lc

# The gethostname() library of distributed jobs (preload/gethostname.c): no sanitizers, it is preloaded into ranks.
$(PRELOAD): preload/gethostname.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) -O2 -fPIC -shared -fvisibility=hidden -o $@ $< -ldl -pthread
# libcurl (Debian's libcurl4-gnutls-dev: the GnuTLS stack libmicrohttpd already uses) for S3 with SigV4.
$(INTDIR)/s3.so: $(S3_MOD_OBJ) $(LIBSHX)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) -shared -Wl,--no-undefined -o $@ $^ -lcurl $(BIN_LIBS)

$(INTDIR)/http.so: $(HTTP_MOD_OBJ) $(LIBSHX)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) $(LDFLAGS) -shared -Wl,--no-undefined -o $@ $^ -lcurl -lc

plugins: $(PLUGIN_SO)
$(PLUGDIR)/%.so: $$(wildcard plugins/$$*/*.c) $$(wildcard plugins/$$*/*.h) $(wildcard plugins/common/*.h) $(wildcard sdk/include/smhost/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -shared -fvisibility=hidden $(PLUGIN_CFLAGS_$*) -o $@ $(filter %.c,$^) $(PLUGIN_LIBS_$*) $(LDFLAGS)
# ---- tests ------------------------------------------------------------------------------------------------
$(BUILD)/tests/test_%: tests/unit/test_%.c $(HOST_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ihost -o $@ $< $(HOST_LIB_OBJ) -lcmocka $(HOST_LIBS)

$(BUILD)/tests/plugins/%.so: tests/plugins/%.c $$(wildcard tests/plugins/*.h) $(wildcard sdk/include/smhost/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -shared -fvisibility=hidden -Itests/plugins -o $@ $<

# Test doubles for hardware this machine lacks (tests/doubles/*/: each says so at its top).
DOUBLES := $(BUILD)/tests/doubles/fake-nvml/libnvidia-ml.so.1 $(BUILD)/tests/doubles/fake-nvml-legacy/libnvidia-ml.so.1 \
           $(BUILD)/tests/doubles/fake-rocm-smi/librocm_smi64.so.7
$(BUILD)/tests/doubles/fake-nvml/libnvidia-ml.so.1: tests/doubles/fake-nvml/fake_nvml.c plugins/nvidia/nvml_min.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -shared -fvisibility=hidden -Wl,-soname,libnvidia-ml.so.1 -o $@ $<
$(BUILD)/tests/doubles/fake-nvml-legacy/libnvidia-ml.so.1: tests/doubles/fake-nvml/fake_nvml.c plugins/nvidia/nvml_min.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DFAKE_NVML_LEGACY -fPIC -shared -fvisibility=hidden -Wl,-soname,libnvidia-ml.so.1 -o $@ $<
$(BUILD)/tests/doubles/fake-rocm-smi/librocm_smi64.so.7: tests/doubles/fake-rocm-smi/fake_rocm_smi.c plugins/amd/rsmi_min.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -shared -fvisibility=hidden -Wl,-soname,librocm_smi64.so.7 -o $@ $<

$(BUILD)/tests/plugins/serve_test_inline.so: tests/plugins/serve_test.c
test-programs: $(UNIT_BIN) $(TPLUG_SO) $(DOUBLES)
.PHONY: test-programs

test-unit: all test-programs
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

test-blackbox: all test-programs
	SMHOST_BUILD=$(abspath $(BUILD)) $(PYTHON3) -m pytest -q -p no:cacheprovider tests/blackbox $(PYTEST_ARGS)

# `make test`: everything, from a fresh clone.  Unit tests and the core black-box tests also run under ASan+UBSan.
test: deps
	$(MAKE) all test-programs
	$(MAKE) SAN=1 all test-programs
	$(MAKE) SAN=1 test-unit
	$(MAKE) test-blackbox
	$(MAKE) bench-smoke
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 $(MAKE) SAN=1 test-blackbox PYTEST_ARGS="-m 'not nosan'"
	$(MAKE) fuzz-smoke
	@if [ -f tests/image/test_image.sh ]; then $(MAKE) test-image; fi

test-image: all
	bash tests/image/test_image.sh

samples:
	@for d in samples/*/; do if [ -f $$d/Makefile ] && [ ! -f $$d/.out-of-tree ]; then $(MAKE) -s -C $$d SMHOST_BUILD=$(abspath $(BUILD)) || exit 1; fi; done

deps:
	bash tools/deps.sh

demo: deps
	$(MAKE) all
	bash samples/demo.sh $(abspath $(BIN)/smhost)

# `make bench`: the supervisor (start-up, signals, memory, output); bench-python, bench-serve and bench-s3 compare the
# Python runner with python3, the server with nginx+gunicorn+flask, S3 downloads with curl.  bench-all runs them all.
bench: all
	bash bench/run.sh $(abspath $(BUILD)) $(BENCH_BASELINE)
bench-python: all
	bash bench/python.sh $(abspath $(BUILD)) 21 $(BENCH_BASELINE)
bench-serve: all test-programs
	bash bench/serve.sh $(abspath $(BUILD))
# bench-devices: device discovery's start-up cost (no accelerator, and 8 GPUs through the fake NVML double).
bench-devices: all test-programs
	bash bench/devices.sh $(abspath $(BUILD)) $(BENCH_BASELINE)
# bench-distributed: the launcher against torchrun (start to all ranks running, a gloo job, peak memory; 1x2, 2x2).
bench-distributed: all
	bash bench/distributed.sh $(abspath $(BUILD))
bench-s3: all
	bash bench/s3.sh $(abspath $(BUILD))
# bench-hyperparameters: how train scales with the number of hyperparameters (BENCH_BASELINE: an older smhost).
bench-hyperparameters: all
	bash bench/hyperparameters.sh $(abspath $(BUILD)) $(BENCH_BASELINE)
bench-all: bench bench-python bench-serve bench-devices bench-s3 bench-distributed bench-hyperparameters
# `make bench-smoke` (part of `make test`): every bench script in its seconds-long smoke mode, so a broken path or
# command fails CI; no timing is asserted.  Add each new bench script here.
BENCH_SMOKE := run.sh python.sh serve.sh devices.sh s3.sh distributed.sh hyperparameters.sh
bench-smoke: all test-programs
	@set -e; for b in $(BENCH_SMOKE); do echo "== bench/$$b (smoke)"; \
	    SMHOST_BENCH_SMOKE=1 bash bench/$$b $(abspath $(BUILD)); done
	@for b in bench/*.sh; do case " $(BENCH_SMOKE) " in *" $${b#bench/} "*) ;; \
	    *) echo "bench-smoke: $$b has no smoke run here: add it to the bench-smoke target" >&2; exit 1;; esac; done
.PHONY: bench-python bench-serve bench-all bench-devices bench-smoke bench-s3 bench-distributed bench-hyperparameters

# ---- fuzzing: libFuzzer targets (tests/fuzz/fuzz_*.c, clang), the host built again with coverage + ASan/UBSan ----
#   make fuzz             every target FUZZ_SECONDS (300) from its seed corpus; prints exec/s and coverage
#   make fuzz-smoke       the same for FUZZ_SMOKE_SECONDS (15) each: part of `make test`
# Seeds live in tests/fuzz/corpus/<target>/ (crashers found are kept there as regression inputs); what the
# fuzzer adds goes to build/fuzz/corpus/<target>/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -DSMHOST_VERSION='"$(VERSION)"' -g -O1 -Wall -Wno-unused-parameter \
                -Werror=implicit-function-declaration -Werror=int-conversion \
                -Isdk/include -Ihost $(FUZZ_SAN)
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_DIR)/%)
FUZZ_HOST_OBJ := $(patsubst host/%.c,$(FUZZ_DIR)/obj/host/%.o,$(filter-out host/cmd/main.c,$(HOST_SRC)))

$(FUZZ_DIR)/obj/host/%.o: host/%.c $(HOST_HDR) $(wildcard sdk/include/smhost/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_HOST_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $< $(FUZZ_HOST_OBJ) $(HOST_LIBS)

.SECONDARY: $(FUZZ_HOST_OBJ) # kept between runs, not removed as intermediates
fuzz-programs: $(FUZZ_BIN)
fuzz: fuzz-programs
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh $(FUZZ_BIN)
fuzz-smoke: fuzz-programs
	@FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) bash tests/fuzz/run.sh $(FUZZ_BIN)
.PHONY: fuzz fuzz-smoke fuzz-programs

# ---- install ----------------------------------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/smhost/plugins $(DESTDIR)$(PREFIX)/lib/smhost/internal $(DESTDIR)$(PREFIX)/include/smhost \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)/etc/smhost
	install -m 755 $(BIN)/smhost $(DESTDIR)$(PREFIX)/bin/smhost
	ln -sf smhost $(DESTDIR)$(PREFIX)/bin/train
	ln -sf smhost $(DESTDIR)$(PREFIX)/bin/serve
	install -m 644 $(PLUGIN_SO) $(DESTDIR)$(PREFIX)/lib/smhost/plugins/
	install -m 644 $(MODULES) $(PYBOOT) $(DESTDIR)$(PREFIX)/lib/smhost/internal/
	install -m 644 $(PRELOAD) $(DESTDIR)$(PREFIX)/lib/smhost/
	install -m 644 sdk/include/smhost/*.h $(DESTDIR)$(PREFIX)/include/smhost/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' sdk/smhost.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/smhost.pc
	@if [ ! -f $(DESTDIR)/etc/smhost/smhost.ini ]; then install -m 644 sdk/smhost.ini.sample $(DESTDIR)/etc/smhost/smhost.ini; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/smhost $(DESTDIR)$(PREFIX)/bin/train \
	    $(DESTDIR)$(PREFIX)/bin/serve
	rm -rf $(DESTDIR)$(PREFIX)/lib/smhost $(DESTDIR)$(PREFIX)/include/smhost $(DESTDIR)$(PREFIX)/lib/pkgconfig/smhost.pc

clean:
	rm -rf build
	@for d in samples/*/; do if [ -f $$d/Makefile ]; then $(MAKE) -s -C $$d clean; fi; done
