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
# serve_demo NAME ROOT REQUEST: `smhost serve` on the trained model, /ping, one /invocations, then SIGTERM.
serve_demo() {
  local name=$1 root=$2 request=$3 port pid i
  port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo
  echo "=== serving the $name model: SAGEMAKER_BIND_TO_PORT=$port $smhost serve"
  SAGEMAKER_BASE_DIR=$root SAGEMAKER_BIND_TO_PORT=$port SAGEMAKER_MODEL_SERVER_WORKERS=1 "$smhost" serve \
    >"$root/serve.log" 2>&1 &
  pid=$!
  for i in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$root/serve.log"; return 1; }
    sleep 0.2
  done
  echo "GET /ping: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ping")"
  echo "POST /invocations (text/csv):"
  sed 's/^/  /' "$request"
  echo "answer: $(curl -s -H 'Content-Type: text/csv' -H 'Accept: application/json' --data-binary @"$request" \
    "http://127.0.0.1:$port/invocations")"
  kill -TERM "$pid"
  wait "$pid" && echo "=== server stopped cleanly on SIGTERM (log: $root/serve.log)"
}

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
  # A model that carries its serving handler (model/code/inference.py): serve it and ask it something.
  if [ -f "$root/model/code/inference.py" ] && [ -f "$src/request.csv" ]; then
    serve_demo "$s" "$root" "$src/request.csv" || rc=1
  fi
done
exit $rc
