#!/usr/bin/env bash
# Benchmark: Python under `smhost train` (the python runner exec()ing /usr/bin/python3 with smhost's pyboot.so
# preloaded) against `/usr/bin/python3` started directly, side by side in one run (runs interleaved), printing
# medians and the ratio smhost/python3:
#   trivial       wall time of a script that does nothing (start-up; smhost's side includes the supervisor,
#                 the job set-up and the runner plugin)                                       goal <= 1.10x
#   numpy import  wall time of a script that imports numpy                                    goal <= 1.10x
#   py loop       CPU time inside the program: 600k dict inserts and a recursive fib (pure Python)  <= 1.02x
#   sklearn fit   CPU time inside the program: a RandomForest fit (C code, one thread)             <= 1.02x
# With the trivial case, interleaved with both, the floor of any supervisor: python3 under `bench spawn` (bench/bench.c:
# fork, exec, wait, nothing else) with the PYTHONPATH the contract sets; the line under the table splits smhost's
# added time into that floor and smhost's own work.
# (CPU time, time.process_time(), so that other load on a shared machine does not swamp a 2% difference.)
# Then what the preload itself costs: python3 on a script that does nothing, alone and with pyboot.so preloaded and
# a job handed over (the whole pyboot path: hand-off, job read, smhost module, audit hook), interleaved,
# posix_spawn()ed from one Python process so that nothing else is timed.
#   bench/python.sh [BUILD_DIR] [RUNS] [BASELINE]   BUILD_DIR defaults to ./build, RUNS to 21 (start-up: 3x RUNS)
#                                        BASELINE: another smhost binary (an older build, with its lib/ beside it):
#                                        the trivial case also runs it, interleaved, and prints this build/baseline
#   SMHOST_BENCH_SMOKE=1                 a seconds-long smoke run for `make bench-smoke` (3 runs, small loops):
#                                        fails when a path or command is broken; its numbers mean nothing
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "${1:-$here/../build}" && pwd)"  # absolute: the runs below happen in another directory
runs="${2:-21}"
baseline="${3:-}"
[ -z "$baseline" ] || [ -x "$baseline" ] || { echo "bench/python.sh: the baseline $baseline is not an executable" >&2; exit 66; }
smoke="${SMHOST_BENCH_SMOKE:-0}"
smhost="$build/bin/smhost"
py=/usr/bin/python3
[ -x "$smhost" ] || { echo "bench/python.sh: $smhost not found: run make first" >&2; exit 66; }
pyboot="$build/lib/smhost/internal/pyboot.so"
[ -f "$pyboot" ] || { echo "bench/python.sh: $pyboot not found: run make first" >&2; exit 66; }
scale=1 fibn=25
if [ "$smoke" = 1 ]; then runs=3; scale=20 fibn=15; baseline="${baseline:-$smhost}"; fi  # the baseline arm runs too

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ml/input/config" "$tmp/ml/code" "$tmp/ml/model" "$tmp/ml/output"
echo '{}' > "$tmp/ml/input/config/hyperparameters.json"
echo 'import sys' > "$tmp/ml/code/trivial.py"
echo 'import numpy; numpy.zeros(10).sum()' > "$tmp/ml/code/numpy_import.py"
# The steady-state cases time themselves (process_time around the work, after imports) and write the seconds to
# $BENCH_OUT, so start-up does not dilute the ratio.
cat > "$tmp/ml/code/py_loop.py" <<EOF
import os, time
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
t0 = time.process_time()
d = {}
for i in range(600000 // $scale):
    d[i] = str(i)
fib($fibn)
open(os.environ["BENCH_OUT"], "w").write(str(time.process_time() - t0))
EOF
cat > "$tmp/ml/code/sklearn_fit.py" <<EOF
import os, time
import numpy as np
from sklearn.ensemble import RandomForestClassifier
rng = np.random.default_rng(0)
X = rng.normal(size=(4000 // $scale, 20)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
t0 = time.process_time()
RandomForestClassifier(n_estimators=40 // $scale, n_jobs=1, random_state=0).fit(X, y)
open(os.environ["BENCH_OUT"], "w").write(str(time.process_time() - t0))
EOF
ini="$tmp/empty.ini"; : > "$ini"
gcc -O2 -Wall -Wextra -o "$tmp/bench" "$here/bench.c"

# The clock is bash's own $EPOCHREALTIME (microseconds, no process started to read it: `date` would add ~1 ms of
# its own start-up to every run and so flatter the ratio).
export LC_NUMERIC=C
# run_one <times-file> <wall|cpu> <command...>: append one time in microseconds (wall clock, or the CPU time the
# program measured itself)
run_one() {
    local out="$1" kind="$2"; shift 2
    # a real job starts with an empty output/: no success file of the run before for smhost to remove
    rm -f "$tmp/inner" "$tmp/ml/output/success" "$tmp/ml/output/failure"
    local t0=$EPOCHREALTIME
    "$@" >/dev/null 2>"$tmp/stderr" || { echo "bench/python.sh: failed (exit $?): $*" >&2; tail -n 5 "$tmp/stderr" >&2; exit 1; }
    local t1=$EPOCHREALTIME
    if [ "$kind" = wall ]; then
        echo $(( ${t1/./} - ${t0/./} )) >> "$out"
    else
        awk '{ printf "%d\n", $1 * 1000000 }' "$tmp/inner" >> "$out"
    fi
}
median() { sort -n "$1" | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

cd "$tmp/ml/code"
smh_env=(env -i PATH=/usr/bin:/bin HOME="$tmp" LANG=C.UTF-8 SAGEMAKER_BASE_DIR="$tmp/ml" SMHOST_CONFIG="$ini"
         SMHOST_PLUGIN_PATH= SM_LOG_LEVEL=40 BENCH_OUT="$tmp/inner")
py_env=(env -i PATH=/usr/bin:/bin HOME="$tmp" LANG=C.UTF-8 BENCH_OUT="$tmp/inner")
echo "Python under smhost train (python3 with pyboot.so) vs /usr/bin/python3 ($(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)$([ "$smoke" = 1 ] && echo '; SMOKE RUN (SMHOST_BENCH_SMOKE=1): checks that the benchmark works, the numbers mean nothing'))"
printf '%-14s %-6s %6s %14s %14s %8s %6s\n' "case" "time" "runs" "python3 (ms)" "smhost (ms)" "ratio" "goal"
for case in trivial:wall:1.10 numpy_import:wall:1.10 py_loop:cpu:1.02 sklearn_fit:cpu:1.02; do
    IFS=: read -r name kind goal <<<"$case"
    n=$runs
    [ "$kind" = wall ] && n=$((runs * 3))
    : > "$tmp/$name.py.t"; : > "$tmp/$name.smh.t"; : > "$tmp/$name.floor.t"; : > "$tmp/$name.base.t"
    # warm the page cache for both (checked like every run: a failure stops the benchmark with its message)
    run_one /dev/null "$kind" "${py_env[@]}" "$py" "$name.py"
    run_one /dev/null "$kind" "${smh_env[@]}" SAGEMAKER_PROGRAM="$name.py" "$smhost" train
    [ "$name" = trivial ] && run_one /dev/null "$kind" "${py_env[@]}" "$tmp/bench" spawn "$py" "$name.py"
    [ "$name" = trivial ] && [ -n "$baseline" ] && run_one /dev/null "$kind" "${smh_env[@]}" SAGEMAKER_PROGRAM="$name.py" "$baseline" train
    for ((i = 0; i < n; i++)); do
        run_one "$tmp/$name.py.t" "$kind" "${py_env[@]}" "$py" "$name.py"
        run_one "$tmp/$name.smh.t" "$kind" "${smh_env[@]}" SAGEMAKER_PROGRAM="$name.py" "$smhost" train
        if [ "$name" = trivial ]; then
            run_one "$tmp/$name.floor.t" "$kind" "${py_env[@]}" PYTHONPATH="$tmp/ml/code" "$tmp/bench" spawn "$py" "$name.py"
            [ -z "$baseline" ] || run_one "$tmp/$name.base.t" "$kind" "${smh_env[@]}" SAGEMAKER_PROGRAM="$name.py" "$baseline" train
        fi
    done
    mp=$(median "$tmp/$name.py.t") ms=$(median "$tmp/$name.smh.t")
    label=$name; [ "$name" = numpy_import ] && label="numpy import"; [ "$name" = py_loop ] && label="py loop"
    [ "$name" = sklearn_fit ] && label="sklearn fit"
    awk -v n="$label" -v k="$kind" -v r="$n" -v a="$mp" -v b="$ms" -v g="$goal" 'BEGIN {
        printf "%-14s %-6s %6d %14.2f %14.2f %7.3fx %5.2fx%s\n", n, k, r, a/1000, b/1000, b/a, g, (b/a <= g ? "" : "  (over goal)") }'
    if [ "$name" = trivial ]; then
        awk -v a="$mp" -v b="$ms" -v f="$(median "$tmp/$name.floor.t")" 'BEGIN {
            printf "  the floor (bench spawn: fork, exec python3, wait; with PYTHONPATH): %.2f ms, %.3fx; smhost adds %.2f ms, %.2f of them its own work\n", f/1000, f/a, (b-a)/1000, (b-f)/1000 }'
        [ -z "$baseline" ] || awk -v b="$ms" -v o="$(median "$tmp/$name.base.t")" -v p="$baseline" 'BEGIN {
            printf "  against the baseline %s: %.2f ms, this build %.2f ms (%+.2f ms, %.3fx)\n", p, o/1000, b/1000, (b-o)/1000, b/o }'
    fi
done

# The preload's own start-up cost (see the top).  The job is what the runner would hand over, for `import smhost`.
echo '{"model_dir": "/opt/ml/model", "hyperparameters": {}}' > "$tmp/job.json"
n=$((runs * 10))
"$py" - "$py" "$pyboot" "$tmp/job.json" "$tmp/ml/code/trivial.py" "$n" <<'PYEOF'
import os, statistics, sys, time
py, pyboot, job, script, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
fd = os.open(job, os.O_RDONLY)
os.set_inheritable(fd, True)
variants = [("python3", base), ("python3 + pyboot.so, no job", dict(base, LD_PRELOAD=pyboot)),
            ("python3 + pyboot.so, a job", dict(base, LD_PRELOAD=pyboot, SMHOST_PYBOOT=f"1,job,0,0,-1,{fd}"))]
times = {name: [] for name, _ in variants}
devnull = os.open(os.devnull, os.O_WRONLY)
for i in range(n + 2):
    for name, env in variants:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(py, [py, script], env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter_ns()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"bench/python.sh: {name} failed with status {status}")
        if i >= 2:  # the first rounds warm the page cache
            times[name].append((t1 - t0) / 1e6)
ref = statistics.median(times["python3"])
print(f"\nStart-up cost of the preload itself: python3 {script.rsplit('/', 1)[1]} ({n} interleaved runs, medians)")
for name, _ in variants:
    m = statistics.median(times[name])
    print(f"  {name:30s} {m:8.2f} ms  {m / ref:6.3f}x  {m - ref:+6.2f} ms")
PYEOF
