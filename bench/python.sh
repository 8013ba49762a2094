#!/usr/bin/env bash
# Benchmark: `smhost train` running a Python program in its embedded interpreter vs `/usr/bin/python3 script.py`
# started directly, measured side by side in one run (interleaved), for a trivial script and for one that
# imports numpy.  Prints medians and the ratio smhost/python3.  Goals: < 1.10x (trivial), < 1.05x (numpy).
#   bench/python.sh [BUILD_DIR] [RUNS]       BUILD_DIR defaults to ./build, RUNS to 30
#   SMHOST_BENCH_SMOKE=1: a seconds-long smoke run for `make test` (RUNS 2): fails when a path or command is broken;
#   its numbers mean nothing
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "${1:-$here/../build}" && pwd)"  # absolute: the runs below happen in another directory
smoke="${SMHOST_BENCH_SMOKE:-0}"
if [ "$smoke" = 1 ]; then runs="${2:-2}"; else runs="${2:-30}"; fi
smhost="$build/bin/smhost"
py=/usr/bin/python3
[ -x "$smhost" ] || { echo "bench/python.sh: $smhost not found: run make first" >&2; exit 66; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ml/input/config" "$tmp/ml/code" "$tmp/ml/model" "$tmp/ml/output"
echo '{}' > "$tmp/ml/input/config/hyperparameters.json"
echo 'import sys' > "$tmp/ml/code/trivial.py"
echo 'import numpy; numpy.zeros(10).sum()' > "$tmp/ml/code/numpy_import.py"
ini="$tmp/empty.ini"; : > "$ini"

now_ns() { date +%s%N; }
# run_one <label-file> <command...>: append one wall time in microseconds
run_one() {
    local out="$1"; shift
    local t0 t1
    t0=$(now_ns)
    "$@" >/dev/null 2>"$tmp/stderr" || { echo "bench/python.sh: failed (exit $?): $*" >&2; tail -n 5 "$tmp/stderr" >&2; exit 1; }
    t1=$(now_ns)
    echo $(( (t1 - t0) / 1000 )) >> "$out"
}
median() { sort -n "$1" | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

cd "$tmp/ml/code"
[ "$smoke" = 1 ] && echo "SMOKE RUN (SMHOST_BENCH_SMOKE=1): checks that the benchmark works; the numbers mean nothing"
smh_env=(env -i PATH=/usr/bin:/bin HOME="$tmp" LANG=C.UTF-8 SAGEMAKER_BASE_DIR="$tmp/ml" SMHOST_CONFIG="$ini"
         SMHOST_PLUGIN_PATH= SM_LOG_LEVEL=40)
py_env=(env -i PATH=/usr/bin:/bin HOME="$tmp" LANG=C.UTF-8)
printf '%-14s %6s %14s %14s %8s %6s\n' "script" "runs" "python3 (ms)" "smhost (ms)" "ratio" "goal"
for case in trivial:1.10 numpy_import:1.05; do
    name="${case%%:*}" goal="${case##*:}"
    : > "$tmp/$name.py.t"; : > "$tmp/$name.smh.t"
    # warm the page cache for both (checked like every run: a failure stops the benchmark with its message)
    run_one /dev/null "${py_env[@]}" "$py" "$name.py"
    run_one /dev/null "${smh_env[@]}" SAGEMAKER_PROGRAM="$name.py" "$smhost" train
    for ((i = 0; i < runs; i++)); do
        run_one "$tmp/$name.py.t" "${py_env[@]}" "$py" "$name.py"
        run_one "$tmp/$name.smh.t" "${smh_env[@]}" SAGEMAKER_PROGRAM="$name.py" "$smhost" train
    done
    mp=$(median "$tmp/$name.py.t") ms=$(median "$tmp/$name.smh.t")
    awk -v n="$name" -v r="$runs" -v a="$mp" -v b="$ms" -v g="$goal" 'BEGIN {
        printf "%-14s %6d %14.1f %14.1f %7.3fx %5.2fx%s\n", n, r, a/1000, b/1000, b/a, g, (b/a < g ? "" : "  (over goal)") }'
done
