#!/bin/bash
# smhost's distributed launcher against Debian's torchrun, side by side (bench/distributed.py says what is measured).
# Usage: bash bench/distributed.sh <build-dir>
#        SMHOST_BENCH_SMOKE=1 (or BENCH_QUICK=1): the seconds-long smoke run of `make test` (make bench-smoke)
#        BENCH_REPS=N repetitions (default 5)
set -euo pipefail
BUILD=$(cd "${1:?usage: bench/distributed.sh <build-dir>}" && pwd)
[ -x "$BUILD/bin/smhost" ] || { echo "bench: $BUILD/bin/smhost is missing: run make first" >&2; exit 1; }
exec /usr/bin/python3 "$(dirname "$0")/distributed.py" "$BUILD"
