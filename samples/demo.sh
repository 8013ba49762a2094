#!/usr/bin/env bash
# make demo: the local workflow on the bundled sample jobs, with `smhost local` (SageMaker Local Mode without
# Docker): train each sample on simulated hosts, then serve the trained scikit-learn model and invoke it.
# usage: samples/demo.sh PATH/TO/smhost [SAMPLE...]   (default samples: every samples/*/ml that is a training job)
set -euo pipefail
smhost=${1:?usage: demo.sh PATH/TO/smhost [SAMPLE...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
samples=("$@")
if [ ${#samples[@]} -eq 0 ]; then
  for d in "$here"/*/; do [ -d "$d/ml/input/config" ] && samples+=("$(basename "$d")"); done
fi
out=$(mktemp -d /tmp/smhost-demo.XXXXXX)
# Two simulated hosts where this machine allows namespaces (root, or user namespaces), else one.
hosts=1
if "$smhost" local cluster --hosts 1 -- true 2>/dev/null; then hosts=2; fi

# job_file SAMPLE: a `smhost local train --job` file from the sample's ML root template (the same fields the
# SageMaker SDK's Estimator takes: entry point, source dir, hyperparameters, channels).
job_file() {
  /usr/bin/python3 - "$here/$1" <<'PY'
import json, os, sys
src = sys.argv[1]
cfg = os.path.join(src, "ml", "input", "config")
hps = json.load(open(os.path.join(cfg, "hyperparameters.json")))
def decode(v):
    try:
        return json.loads(v)
    except ValueError:
        return v
hps = {k: decode(v) for k, v in hps.items()}
idc = json.load(open(os.path.join(cfg, "inputdataconfig.json")))
code = os.path.join(src, "code") if os.path.isdir(os.path.join(src, "code")) else os.path.join(src, "ml", "code")
channels = {}
for name, c in idc.items():
    path = os.path.join(src, "ml", "input", "data", name)
    channels[name] = {"path": path, "content_type": c["ContentType"]} if "ContentType" in c else path
job = {"entry_point": hps.pop("sagemaker_program"), "source_dir": code, "channels": channels,
       # sagemaker_* parameters the SDK derives from other fields are written by `smhost local train` itself;
       # the rest (distribution flags such as sagemaker_torch_distributed_enabled) pass as the SDK passes them.
       "hyperparameters": {k: v for k, v in hps.items()
                           if k not in ("sagemaker_submit_directory", "sagemaker_job_name", "sagemaker_region",
                                        "sagemaker_container_log_level")}}
if "sagemaker_region" in hps:
    job["region"] = hps["sagemaker_region"]
print(json.dumps(job, indent=2))
PY
}

# serve_demo NAME MODEL REQUEST: `smhost local serve` on the trained model.tar.gz, one `smhost local invoke`,
# then Ctrl-C (SIGINT) stops the server.
serve_demo() {
  local name=$1 model=$2 request=$3 port pid url
  port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo
  echo "=== serving the $name model: $smhost local serve --model $model --port $port"
  SAGEMAKER_MODEL_SERVER_WORKERS=1 "$smhost" local serve --model "$model" --port "$port" \
    >"$out/$name.url" 2>"$out/$name.serve.log" &
  pid=$!
  for _ in $(seq 1 300); do
    [ -s "$out/$name.url" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$out/$name.serve.log"; return 1; }
    sleep 0.1
  done
  url=$(cat "$out/$name.url")
  echo "serving at $url"
  echo "=== $smhost local invoke --port $port --content-type text/csv --accept application/json $request"
  sed 's/^/  /' "$request"
  echo "answer: $("$smhost" local invoke --port "$port" --content-type text/csv --accept application/json "$request")"
  kill -INT "$pid"
  local code=0
  wait "$pid" || code=$?
  [ "$code" -eq 130 ] && echo "=== server stopped on Ctrl-C (exit code 130; log: $out/$name.serve.log)"
  [ "$code" -eq 130 ]
}

rc=0
for s in "${samples[@]}"; do
  job_file "$s" > "$out/$s.json"
  n=1
  [ "$s" = sm-env-example ] && n=$hosts
  echo
  echo "=== sample $s: $smhost local train --job $out/$s.json --instance-count $n --job-name $s --output-path $out"
  set +e
  "$smhost" local train --job "$out/$s.json" --instance-count "$n" --job-name "$s" --output-path "$out"
  code=$?
  set -e
  echo "=== $s finished with exit code $code"
  if [ -f "$out/$s/model.tar.gz" ]; then
    echo "model.tar.gz:"; tar tzf "$out/$s/model.tar.gz" | sed 's/^/  /'
  fi
  if [ -f "$out/$s/output.tar.gz" ]; then
    echo "output.tar.gz:"; tar tzf "$out/$s/output.tar.gz" | sed 's/^/  /'
  fi
  [ "$code" -eq 0 ] || rc=1
  # A model that carries its serving handler (code/inference.py): serve it and ask it something.
  if [ "$code" -eq 0 ] && [ -f "$here/$s/request.csv" ] && tar tzf "$out/$s/model.tar.gz" | grep -qx code/inference.py; then
    serve_demo "$s" "$out/$s/model.tar.gz" "$here/$s/request.csv" || rc=1
  fi
done
echo
echo "artifacts: $out"
exit $rc
