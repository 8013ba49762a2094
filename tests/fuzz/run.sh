#!/usr/bin/env bash
# Runs each libFuzzer target given for $FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/<target>) and a
# working corpus (build/fuzz/corpus/<target>), then prints one line per target: executions, exec/s, coverage.
# Exits non-zero when a target finds a crash, leak or failed property (the input is kept under build/fuzz/).
set -uo pipefail
secs=${FUZZ_SECONDS:-15}
status=0
printf '%-22s %10s %8s %6s %6s %s\n' target execs exec/s cov ft result
for bin in "$@"; do
  t=$(basename "$bin")
  seeds=tests/fuzz/corpus/$t work=build/fuzz/corpus/$t log=build/fuzz/$t.log
  mkdir -p "$seeds" "$work"
  # -rss_limit_mb: the HTTP target runs a whole daemon; -timeout: one input may take 10 s at most.
  "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
         -artifact_prefix="build/fuzz/$t-" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  result=ok
  if [ $rc -ne 0 ]; then
    result="FAILED (rc $rc, see $log)"
    status=1
    grep -m5 -E 'ERROR|SUMMARY|fuzz property|Test unit written' "$log" | sed 's/^/    /'
  fi
  printf '%-22s %10s %8s %6s %6s %s\n' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $status
