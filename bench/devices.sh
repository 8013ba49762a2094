#!/bin/bash
# Device discovery's start-up cost, measured side by side (alternating runs, medians, ratios) with bench/bench.c.
# Usage: bash bench/devices.sh <build-dir> [baseline-smhost]
#   1. a machine without accelerators: `smhost train` as configured by default (nvidia, neuron and amd backends:
#      only their cheap signs are checked, nothing is loaded) against `[devices] backends =` (no device code at all)
#   2. with baseline-smhost (e.g. a build of the commit before device backends): that binary against this one, on
#      the same machine without accelerators
#   3. a machine with 8 GPUs (the fake NVML test double, tests/doubles/fake-nvml: the probe process, dlopen of the
#      nvidia backend and of libnvidia-ml.so.1, the queries) against the machine without accelerators
#   BENCH_QUICK=1 fewer repetitions
#   SMHOST_BENCH_SMOKE=1  a seconds-long smoke run for `make test` (make bench-smoke): 2 repetitions; it fails when a
#                 path or command is broken, and its numbers mean nothing
set -euo pipefail
BUILD=$(cd "${1:?usage: bench/devices.sh <build-dir> [baseline-smhost]}" && pwd)
BASELINE=${2:-}
SMHOST=$BUILD/bin/smhost
HERE=$(cd "$(dirname "$0")" && pwd)
NVML=$BUILD/tests/doubles/fake-nvml/libnvidia-ml.so.1
[ -x "$SMHOST" ] || { echo "bench: $SMHOST is missing: run make first" >&2; exit 1; }
[ -f "$NVML" ] || { echo "bench: $NVML is missing: run make test-programs" >&2; exit 1; }
if [ "${SMHOST_BENCH_SMOKE:-0}" = 1 ]; then N=2; elif [ "${BENCH_QUICK:-0}" = 1 ]; then N=8; else N=60; fi

OUT=$BUILD/bench
mkdir -p "$OUT"
gcc -O2 -Wall -Wextra -o "$OUT/bench" "$HERE/bench.c"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/smhost-bench-dev.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ML=$WORK/ml
mkdir -p "$ML/code" "$ML/model" "$ML/output" "$ML/input/config" "$ML/input/data" "$WORK/sysroot"
printf 'exit 0\n' > "$ML/code/trivial.sh"
: > "$WORK/default.ini"
printf '[devices]\nbackends =\n' > "$WORK/none.ini"
printf 'driver 550.54.15\ncuda 12040\ngpus 8 name="NVIDIA H100 80GB HBM3" mem=85520809984\n' > "$WORK/8gpus.spec"

# The same clean environment on both sides; SMHOST_TEST_SYSROOT is an empty tree, so this machine's own /dev and
# /proc cannot make a side find hardware.
export SMHOST_PLUGIN_PATH= SAGEMAKER_BASE_DIR=$ML BENCH_OUTPUT_DIR=$ML/output SAGEMAKER_PROGRAM=trivial.sh
export SMHOST_TEST_SYSROOT=$WORK/sysroot FAKE_NVML_SPEC=$WORK/8gpus.spec
cd "$ML/code"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == 0) print "n/a"; else printf "%.3f", b / a }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
show() { # label a b ca cb
    echo "$1: $(ms "$2") ms vs $(ms "$3") ms, added $(ms $(($3 - $2))) ms, ratio $(ratio "$2" "$3")x;" \
         "CPU $(ms "$4") vs $(ms "$5") ms"
}

echo "smhost device discovery benchmark ($(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); median of $N)"
read -r a b ca cb < <("$OUT/bench" time "$N" -- /usr/bin/env SMHOST_CONFIG="$WORK/none.ini" "$SMHOST" train \
                                           -- /usr/bin/env SMHOST_CONFIG="$WORK/default.ini" "$SMHOST" train)
show "no accelerator, backends off -> default backends (signs only)  " "$a" "$b" "$ca" "$cb"
if [ -n "$BASELINE" ]; then
    read -r a b ca cb < <("$OUT/bench" time "$N" -- /usr/bin/env SMHOST_CONFIG="$WORK/default.ini" "$BASELINE" train \
                                               -- /usr/bin/env SMHOST_CONFIG="$WORK/default.ini" "$SMHOST" train)
    show "no accelerator, baseline binary -> this binary                 " "$a" "$b" "$ca" "$cb"
fi
read -r a b ca cb < <("$OUT/bench" time "$N" -- /usr/bin/env SMHOST_CONFIG="$WORK/default.ini" "$SMHOST" train \
                                           -- /usr/bin/env SMHOST_CONFIG="$WORK/default.ini" SMHOST_NVML_LIBRARY="$NVML" "$SMHOST" train)
show "no accelerator -> 8 GPUs through NVML (fake NVML, probe process)" "$a" "$b" "$ca" "$cb"
