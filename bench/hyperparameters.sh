#!/bin/bash
# How `smhost train` scales with the number of hyperparameters (issue 13: 40k keys took 11 s, 100k keys 114 s,
# both quadratic).  Side by side: n and 4n keys, each run until the environment is built and the execve size
# check refuses it (the program never starts: SM_HPS is over 128 KiB from ~8k keys), median of REPS runs; it
# prints seconds per run and the ratio t(4n)/t(n): about 4 is linear, 16 quadratic.  With a second smhost
# (e.g. a build of the commit before the fix) its column is printed next to this one's, with the ratio of both.
# Usage: bash bench/hyperparameters.sh <build-dir> [baseline-smhost]
#   SMHOST_BENCH_SMOKE=1  a seconds-long smoke run for `make test` (make bench-smoke): 1 run, small counts; it
#                 fails when a path or command is broken, and its numbers mean nothing
set -euo pipefail
BUILD=$(cd "${1:?usage: bench/hyperparameters.sh <build-dir> [baseline-smhost]}" && pwd)
BASELINE=${2:-}
SMHOST=$BUILD/bin/smhost
[ -x "$SMHOST" ] || { echo "bench: $SMHOST is missing: run make first" >&2; exit 1; }
if [ "${SMHOST_BENCH_SMOKE:-0}" = 1 ]; then REPS=1; COUNTS="500 2000"; echo "SMOKE RUN (SMHOST_BENCH_SMOKE=1): checks that the benchmark works; the numbers mean nothing"
else REPS=${REPS:-3}; COUNTS=${COUNTS:-"2500 10000 40000 160000"}; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/smhost-bench-hp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ML=$WORK/ml
mkdir -p "$ML/code" "$ML/input/config" "$ML/input/data" "$ML/model" "$ML/output"
printf 'exit 0\n' > "$ML/code/run.sh"

# median seconds of REPS runs of binary $1 with $2 keys
run() {
  /usr/bin/python3 - "$2" "$ML/input/config/hyperparameters.json" <<'PY'
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
json.dump({f"key{i:07d}": json.dumps(f"value{i}") for i in range(n)}, open(path, "w"))
PY
  local times=()
  SAGEMAKER_BASE_DIR=$ML SAGEMAKER_PROGRAM=run.sh "$1" train >/dev/null 2>&1 || true # warm-up, not timed
  for _ in $(seq "$REPS"); do
    local t0 t1
    t0=$(date +%s.%N)
    SAGEMAKER_BASE_DIR=$ML SAGEMAKER_PROGRAM=run.sh "$1" train >/dev/null 2>&1 || true
    t1=$(date +%s.%N)
    times+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'
}

printf '%8s %10s %8s' keys "smhost s" "x prev"
[ -n "$BASELINE" ] && printf ' %12s %8s %10s' "baseline s" "x prev" "base/this"
echo
prev= prevb=
for n in $COUNTS; do
  t=$(run "$SMHOST" "$n")
  printf '%8d %10s %8s' "$n" "$t" "${prev:+$(echo "$t / $prev" | bc -l | xargs printf '%.1f')}"
  if [ -n "$BASELINE" ]; then
    b=$(run "$BASELINE" "$n")
    printf ' %12s %8s %10s' "$b" "${prevb:+$(echo "$b / $prevb" | bc -l | xargs printf '%.1f')}" \
      "$(echo "$b / $t" | bc -l | xargs printf '%.1f')"
    prevb=$b
  fi
  echo
  prev=$t
done
echo "x prev: the time against the previous row's (4x the keys): ~4 is linear, ~16 quadratic"
