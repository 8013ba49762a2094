#!/bin/bash
# smhost supervisor benchmarks: each runs the direct program and the same program under `smhost train` side by
# side (alternating runs) and prints medians and ratios.  Usage: bash bench/run.sh <build-dir> [BASELINE]
#   BASELINE      another smhost binary (an older build): its start-up is timed interleaved with this one's
#   BENCH_BYTES   bytes per stream for the throughput run (default 1 GiB)
#   BENCH_QUICK=1 fewer repetitions
#   SMHOST_BENCH_SMOKE=1  a seconds-long smoke run for `make test` (2 repetitions, 1 MiB): it proves every path and
#                 command works and fails when one does not; its numbers mean nothing
set -euo pipefail
BUILD=$(cd "${1:?usage: bench/run.sh <build-dir>}" && pwd)
SMHOST=$BUILD/bin/smhost
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$SMHOST" ] || { echo "bench: $SMHOST is missing: run make first" >&2; exit 1; }
BASELINE=${2:-}
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "bench: the baseline $BASELINE is not an executable" >&2; exit 1; }

BYTES=${BENCH_BYTES:-1073741824}
if [ "${SMHOST_BENCH_SMOKE:-0}" = 1 ]; then N_START=2; N_SIG=2; N_TPUT=1; BYTES=${BENCH_BYTES:-1048576}
elif [ "${BENCH_QUICK:-0}" = 1 ]; then N_START=40; N_SIG=5; N_TPUT=1; else N_START=300; N_SIG=20; N_TPUT=3; fi

OUT=$BUILD/bench
mkdir -p "$OUT"
for t in bench writer sigprog; do
    gcc -O2 -Wall -Wextra -o "$OUT/$t" "$HERE/$t.c"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/smhost-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ML=$WORK/ml
mkdir -p "$ML/code" "$ML/model" "$ML/output" "$ML/input/config" "$ML/input/data"
printf 'exit 0\n' > "$ML/code/trivial.sh"
cp "$OUT/writer" "$OUT/sigprog" "$ML/code/"
: > "$WORK/empty.ini"

# A clean environment for both sides.
export SMHOST_CONFIG=$WORK/empty.ini SMHOST_PLUGIN_PATH= SAGEMAKER_BASE_DIR=$ML BENCH_OUTPUT_DIR=$ML/output
export BENCH_READY=$WORK/ready BENCH_STAMP=$WORK/stamp
cd "$ML/code"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", a / b }'; }
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }

echo "smhost supervisor benchmark ($(nproc) CPUs; $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg); $SMHOST)"
[ "${SMHOST_BENCH_SMOKE:-0}" = 1 ] && echo "SMOKE RUN (SMHOST_BENCH_SMOKE=1): checks that the benchmark works; the numbers mean nothing"
echo

# 1. startup: a trivial shell script, directly, under the least a supervisor does (fork, exec, wait: `bench spawn`,
#    a small C program) and under `smhost train`
read -r a f b ca cf cb < <(SAGEMAKER_PROGRAM=trivial.sh "$OUT/bench" time "$N_START" -- /bin/sh "$ML/code/trivial.sh" \
    -- "$OUT/bench" spawn /bin/sh "$ML/code/trivial.sh" -- "$SMHOST" train)
echo "startup      (median of $N_START): direct $(ms "$a") ms, smhost train $(ms "$b") ms," \
     "added $(ms $((b - a))) ms, ratio $(ratio "$b" "$a")x   [goal: < 2 ms added]"
echo "             the floor, fork+exec+wait (bench spawn): $(ms "$f") ms, added $(ms $((f - a))) ms;" \
     "smhost's own work on top of it $(ms $((b - f))) ms"
echo "             CPU time (user+sys, all processes): direct $(ms "$ca") ms, bench spawn $(ms "$cf") ms," \
     "smhost train $(ms "$cb") ms"
if [ -n "$BASELINE" ]; then
    read -r f a b cf ca cb < <(SAGEMAKER_PROGRAM=trivial.sh "$OUT/bench" time "$N_START" \
        -- "$OUT/bench" spawn /bin/sh "$ML/code/trivial.sh" -- "$BASELINE" train -- "$SMHOST" train)
    echo "             against the baseline $BASELINE (median of $N_START, interleaved): baseline $(ms "$a") ms," \
         "this build $(ms "$b") ms ($(ms $((b - a))) ms); on top of the floor $(ms $((a - f))) ms -> $(ms $((b - f))) ms," \
         "ratio $(ratio $((b - f)) $((a - f)))x; CPU $(ms "$ca") -> $(ms "$cb") ms"
fi

# 2. signal latency and the supervisor's peak RSS
read -r a b hwm < <(SAGEMAKER_PROGRAM=sigprog "$OUT/bench" siglat "$N_SIG" -- "$ML/code/sigprog" -- "$SMHOST" train)
echo "SIGTERM      (median of $N_SIG): to the program directly $(ms "$a") ms, to smhost until the program's handler runs" \
     "$(ms "$b") ms, added $(ms $((b - a))) ms   [goal: median < 5 ms]"
echo "peak RSS     smhost supervisor VmHWM $hwm KiB ($(awk -v k="$hwm" 'BEGIN { printf "%.2f", k / 1024 }') MiB)   [goal: < 4 MiB]"

# 3. output throughput: BYTES to stdout and BYTES to stderr, both to /dev/null
read -r a b ca cb < <(SAGEMAKER_PROGRAM=writer BENCH_WRITE_BYTES=$BYTES "$OUT/bench" time "$N_TPUT" -- "$ML/code/writer" -- "$SMHOST" train)
mib=$((BYTES / 1048576))
echo "throughput   (median of $N_TPUT, ${mib} MiB stdout + ${mib} MiB stderr): direct $(ms "$a") ms," \
     "smhost $(ms "$b") ms; speed ratio $(ratio "$a" "$b")x   [goal: >= 0.9x]"
echo "             CPU time (user+sys, program + supervisor): direct $(ms "$ca") ms, smhost $(ms "$cb") ms;" \
     "ratio $(ratio "$ca" "$cb")x (wall times swing with the machine's load; CPU time shows the supervisor's own cost)"
