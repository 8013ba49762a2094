#!/usr/bin/env bash
# Benchmark: downloading one S3 object from a local S3 server (Swift with s3api, tests/s3/swift_s3.py) with
# smhost's client (parallel ranged GETs, as `smhost train` fetches an s3:// sagemaker_submit_directory) and with
# `curl --aws-sigv4` (one GET), interleaved in the same run.  Each side reports its own transfer time: curl's
# %{time_total}, smhost's "downloaded ... in S s" log line (both exclude process start-up; smhost's includes
# fetching credentials).  Prints medians and the speed ratio smhost/curl.  Goal: >= 1.0x.
#   bench/s3.sh [BUILD_DIR] [SIZE_MIB] [RUNS]     defaults: ./build, 1024, 3
#   SMHOST_BENCH_SMOKE=1 bench/s3.sh [BUILD_DIR]  the smoke run of `make bench-smoke` (8 MiB, one run: seconds)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
if [ "${SMHOST_BENCH_SMOKE:-0}" = 1 ]; then def_size=8 def_runs=1; else def_size=1024 def_runs=3; fi
size_mib="${2:-$def_size}"
runs="${3:-$def_runs}"
smhost="$build/bin/smhost"
[ -x "$smhost" ] || { echo "bench/s3.sh: $smhost not found: run make first" >&2; exit 66; }
command -v swift-ring-builder >/dev/null || { echo "bench/s3.sh: Swift is not installed: run tools/deps.sh" >&2; exit 69; }

tmp="$(mktemp -d)"
cleanup() { /usr/bin/python3 "$here/../tests/s3/swift_s3.py" stop "$tmp/swift" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
endpoint="$(/usr/bin/python3 "$here/../tests/s3/swift_s3.py" start "$tmp/swift")"
netrc="$tmp/netrc"
printf 'machine 127.0.0.1 login test:tester password testing\n' > "$netrc"
s3curl() { curl -sS --fail --retry 3 --aws-sigv4 aws:amz:us-east-1:s3 --netrc-file "$netrc" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }

# The object is a tar of random bytes, so `smhost train` can unpack it as a submit directory.
mkdir -p "$tmp/src"
head -c $((size_mib * 1048576 - 20480)) /dev/urandom > "$tmp/src/data.bin"
printf '#!/bin/sh\n' > "$tmp/src/run.sh"; chmod +x "$tmp/src/run.sh"
tar cf "$tmp/object.tar" -C "$tmp/src" run.sh data.bin
rm -rf "$tmp/src"
bytes=$(stat -c %s "$tmp/object.tar")
s3curl -X PUT "$endpoint/bench" >/dev/null
s3curl -T "$tmp/object.tar" "$endpoint/bench/object.tar" >/dev/null
rm -f "$tmp/object.tar"

mkdir -p "$tmp/ml/input/config"
echo '{"sagemaker_submit_directory": "\"s3://bench/object.tar\"", "sagemaker_program": "\"run.sh\""}' \
    > "$tmp/ml/input/config/hyperparameters.json"
: > "$tmp/empty.ini"
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
: > "$tmp/curl.s"; : > "$tmp/smhost.s"
for ((i = 0; i < runs; i++)); do
    s3curl -o "$tmp/curl.out" -w '%{time_total}\n' "$endpoint/bench/object.tar" >> "$tmp/curl.s"
    [ "$(stat -c %s "$tmp/curl.out")" = "$bytes" ] || { echo "bench/s3.sh: curl got a short file" >&2; exit 1; }
    rm -f "$tmp/curl.out"
    rm -rf "$tmp/ml/code" "$tmp/ml/output"
    log=$(env -i PATH=/usr/bin:/bin HOME="$tmp" LANG=C.UTF-8 TMPDIR="$tmp" SAGEMAKER_BASE_DIR="$tmp/ml" \
          SMHOST_CONFIG="$tmp/empty.ini" SMHOST_PLUGIN_PATH= S3_ENDPOINT_URL="$endpoint" \
          AWS_ACCESS_KEY_ID=test:tester AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true \
          "$smhost" train 2>&1) || { echo "bench/s3.sh: smhost train failed: $log" >&2; exit 1; }
    echo "$log" | sed -n "s/.*downloaded s3:\/\/bench\/object.tar ($bytes bytes) in \([0-9.]*\) s.*/\1/p" >> "$tmp/smhost.s"
    [ "$(stat -c %s "$tmp/ml/code/data.bin")" = "$((size_mib * 1048576 - 20480))" ] || { echo "bench/s3.sh: bad unpack" >&2; exit 1; }
done
[ "$(wc -l < "$tmp/smhost.s")" = "$runs" ] || { echo "bench/s3.sh: no download time in smhost's log" >&2; exit 1; }
c=$(median < "$tmp/curl.s"); s=$(median < "$tmp/smhost.s")
awk -v b="$bytes" -v c="$c" -v s="$s" -v r="$runs" 'BEGIN {
    mib = b / 1048576
    printf "%-10s %5s %16s %16s %8s %6s\n", "object", "runs", "curl (MiB/s)", "smhost (MiB/s)", "ratio", "goal"
    printf "%-10s %5d %16.1f %16.1f %7.2fx %6s\n", sprintf("%.0f MiB", mib), r, mib / c, mib / s, c / s, ">=1.0"
}'
