#!/usr/bin/env bash
# make demo: run the bundled sample jobs with smhost in a temporary ML root and show what they produced.
# usage: samples/demo.sh PATH/TO/smhost [SAMPLE...]   (default samples: every samples/*/ml that is a training job)
set -euo pipefail
smhost=${1:?usage: demo.sh PATH/TO/smhost [SAMPLE...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
samples=("$@")
if [ ${#samples[@]} -eq 0 ]; then
  for d in "$here"/*/; do [ -d "$d/ml/input/config" ] && samples+=("$(basename "$d")"); done
fi
rc=0
for s in "${samples[@]}"; do
  src="$here/$s"
  root=$(mktemp -d "/tmp/smhost-demo-$s.XXXXXX")
  cp -r "$src/ml/." "$root/"
  mkdir -p "$root/code"
  [ -d "$src/code" ] && cp -r "$src/code/." "$root/code/"
  [ -x "$src/prepare.sh" ] && "$src/prepare.sh" "$root"
  echo
  echo "=== sample $s: SAGEMAKER_BASE_DIR=$root $smhost train"
  set +e
  SAGEMAKER_BASE_DIR=$root "$smhost" train
  code=$?
  set -e
  echo "=== $s finished with exit code $code"
  echo "model files:"
  (cd "$root" && find model output -type f | sort | sed 's/^/  '"${root//\//\\/}"'\//')
  if [ -f "$root/output/success" ]; then echo "success file: $root/output/success"; else
    echo "failure file: $root/output/failure"; cat "$root/output/failure"; rc=1; fi
done
exit $rc
