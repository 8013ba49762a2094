#!/usr/bin/env bash
# Run the scikit-learn iris sample with smhost on a copy of its ML root.
#   samples/sklearn-iris/run.sh [path/to/smhost]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
smhost="${1:-$here/../../build/bin/smhost}"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
cp -r "$here/ml/." "$root/"
SAGEMAKER_BASE_DIR="$root" "$smhost" train
echo "model:   $(ls "$root/model")"
echo "metrics: $(cat "$root/output/data/metrics.json")"
