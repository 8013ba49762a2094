#!/usr/bin/env bash
# smhost serve against the classic bring-your-own stack (nginx -> gunicorn -> Flask, configured as AWS's
# scikit_bring_your_own example), around the same iris predict function, loaded with wrk on 127.0.0.1.
#   bash bench/serve.sh [build dir]      env: WORKERS (2), DURATION (2 s per run), ROUNDS (5), CEIL_ROUNDS (3, the
#   ceiling table), PING_ROUNDS (3), CONCURRENCY ("4 16 64")
#   SMHOST_BENCH_SMOKE=1: a seconds-long smoke run for `make test` (DURATION 1, ROUNDS 1, CONCURRENCY 4): it starts
#   every stack, checks their answers and fails on any non-2xx answer under load or a broken path; its numbers mean
#   nothing
# The three stacks are run in turn, ROUNDS times per concurrency (the order rotating), so that other load on a shared
# machine falls on all of them alike; it prints medians of requests/s and p50/p99 latency, the median of the
# per-round ratios, and each stack's CPU time per request (its processes' utime+stime over the requests served), which
# other load disturbs far less than requests/s.  Then /ping latency while /invocations is loaded, measured by a
# health-check-like client (bench/pingprobe.c: one GET /ping at a time, 1 ms apart) run as a normal process and, for
# the server's share alone, as SCHED_FIFO (root); and the HTTP ceiling: nginx answering `return 200` itself against
# smhost's native handler in workers and inline (SMH_HANDLER_THREAD_SAFE: answered in the front, no worker hop).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$REPO/build}" && pwd)
SMHOST=$BUILD/bin/smhost
WORKERS=${WORKERS:-2}
SMOKE=${SMHOST_BENCH_SMOKE:-0}
if [ "$SMOKE" = 1 ]; then DURATION=${DURATION:-1}; ROUNDS=${ROUNDS:-1}; CEIL_ROUNDS=${CEIL_ROUNDS:-1}; CONCURRENCY=${CONCURRENCY:-4}; fi
DURATION=${DURATION:-2}
ROUNDS=${ROUNDS:-5}
CEIL_ROUNDS=${CEIL_ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-4 16 64}
PY=/usr/bin/python3
for tool in wrk nginx gunicorn; do
  command -v $tool >/dev/null || { echo "bench/serve.sh: $tool is missing: apt-get install -y wrk nginx gunicorn python3-flask" >&2; exit 1; }
done
$PY -c 'import flask' 2>/dev/null || { echo "bench/serve.sh: python3-flask is missing (apt-get install -y python3-flask)" >&2; exit 1; }
[ -x "$SMHOST" ] || { echo "bench/serve.sh: $SMHOST is missing: run make" >&2; exit 1; }

T=$(mktemp -d /tmp/smhost-bench-serve.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
die() { # message: say it, show the servers' last log lines (the directory goes with the cleanup), exit 1
  echo "bench/serve.sh: $1" >&2
  for f in "$T"/*.log; do [ -s "$f" ] && { echo "--- ${f##*/}" >&2; tail -n 5 "$f" >&2; }; done
  exit 1
}

port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() {
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/ping" || true)" = 200 ] && return 0
    sleep 0.1
  done
  die "the server on port $1 never became ready"
}

# The model: the iris classifier samples/sklearn-iris serves, with its inference.py.
mkdir -p "$T/py/model/code" "$T/native/model/code" "$T/byo"
cp "$REPO/samples/sklearn-iris/ml/code/inference.py" "$T/py/model/code/"
$PY - "$T/py/model/model.joblib" <<'PYEOF'
import sys, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=500).fit(X, y), sys.argv[1])
PYEOF
# The native handler: tests/plugins/serve_test.c (a fixed linear iris classifier over CSV rows).
cc -O2 -std=c11 -D_GNU_SOURCE -fPIC -shared -I"$REPO/sdk/include" -o "$T/native/model/code/iris.so" \
  "$REPO/tests/plugins/serve_test.c"
# The same handler declaring SMH_HANDLER_THREAD_SAFE: smhost serve answers it inline, in the front process.
mkdir -p "$T/inline/model/code"
cc -O2 -std=c11 -D_GNU_SOURCE -fPIC -shared -I"$REPO/sdk/include" -I"$REPO/tests/plugins" \
  -o "$T/inline/model/code/iris.so" "$REPO/tests/plugins/serve_test_inline.c"

# The /ping client: one request at a time, as a health checker asks.
cc -O2 -std=c11 -o "$T/pingprobe" "$REPO/bench/pingprobe.c"

P_PY=$(port); P_NAT=$(port); P_BYO=$(port); P_PY1=$(port); P_INL=$(port); P_NGX=$(port); P_PYS=$(port); P_NATQ=$(port)
# The same smhost without its pyboot.so: its Python zygote stays in smhost, on the shared libpython.
mkdir -p "$T/shared/bin" "$T/shared/lib/smhost/internal"
cp "$SMHOST" "$T/shared/bin/smhost"
ln -s "$BUILD/lib/smhost/plugins" "$T/shared/lib/smhost/plugins"
for so in "$BUILD"/lib/smhost/internal/*.so; do
  [ "${so##*/}" = pyboot.so ] || ln -s "$so" "$T/shared/lib/smhost/internal/"
done
SAGEMAKER_BASE_DIR=$T/py SAGEMAKER_BIND_TO_PORT=$P_PY SAGEMAKER_MODEL_SERVER_WORKERS=$WORKERS \
  "$SMHOST" serve 2>"$T/smhost-py.log" & PIDS+=($!)
PY_PID=$!
SMHOST_SERVE_PIPELINE=1 SAGEMAKER_BASE_DIR=$T/py SAGEMAKER_BIND_TO_PORT=$P_PY1 SAGEMAKER_MODEL_SERVER_WORKERS=$WORKERS \
  "$SMHOST" serve 2>"$T/smhost-py1.log" & PIDS+=($!)
SAGEMAKER_BASE_DIR=$T/native SAGEMAKER_BIND_TO_PORT=$P_NAT SAGEMAKER_MODEL_SERVER_WORKERS=$WORKERS \
  "$SMHOST" serve 2>"$T/smhost-native.log" & PIDS+=($!)
NAT_PID=$!
SAGEMAKER_BASE_DIR=$T/py SAGEMAKER_BIND_TO_PORT=$P_PYS SAGEMAKER_MODEL_SERVER_WORKERS=$WORKERS \
  "$T/shared/bin/smhost" serve 2>"$T/smhost-pyshared.log" & PIDS+=($!)
PYS_PID=$!
# The ceiling runs: like nginx there (access_log off), no line per request (SAGEMAKER_CONTAINER_LOG_LEVEL=WARNING).
SAGEMAKER_BASE_DIR=$T/inline SAGEMAKER_BIND_TO_PORT=$P_INL SAGEMAKER_MODEL_SERVER_WORKERS=$WORKERS \
  SAGEMAKER_CONTAINER_LOG_LEVEL=30 "$SMHOST" serve 2>"$T/smhost-inline.log" & PIDS+=($!)
INL_PID=$!
SAGEMAKER_BASE_DIR=$T/native SAGEMAKER_BIND_TO_PORT=$P_NATQ SAGEMAKER_MODEL_SERVER_WORKERS=$WORKERS \
  SAGEMAKER_CONTAINER_LOG_LEVEL=30 "$SMHOST" serve 2>"$T/smhost-nativeq.log" & PIDS+=($!)
NATQ_PID=$!
sed -e "s|@DIR@|$T|g" -e "s|@PORT@|$P_NGX|g" -e "s|@WORKERS@|$WORKERS|g" "$REPO/bench/serve/nginx-return200.conf.in" \
  > "$T/nginx200.conf"
MODEL_DIR=$T/py/model gunicorn --chdir "$REPO/bench/serve" --timeout 60 -k sync -b "unix:$T/gunicorn.sock" \
  -w "$WORKERS" predictor:app 2>"$T/gunicorn.log" & PIDS+=($!)
GUNI_PID=$!
sed -e "s|@DIR@|$T|g" -e "s|@PORT@|$P_BYO|g" "$REPO/bench/serve/nginx.conf.in" > "$T/nginx.conf"
mkdir -p "$T/nginx-body" "$T/nginx-proxy" "$T/nginx-fastcgi" "$T/nginx-uwsgi" "$T/nginx-scgi"
nginx -c "$T/nginx.conf" -e "$T/nginx-error.log" & PIDS+=($!)
BYO_NGX_PID=$!
nginx -c "$T/nginx200.conf" -e "$T/nginx200-error.log" & PIDS+=($!)
NGX_PID=$!
wait_ping "$P_PY"; wait_ping "$P_NAT"; wait_ping "$P_BYO"; wait_ping "$P_PY1"; wait_ping "$P_INL"; wait_ping "$P_NGX"; wait_ping "$P_PYS"; wait_ping "$P_NATQ"
# inline: the server has no zygote (no child process at all)
[ -z "$(cat "/proc/$INL_PID/task/$INL_PID/children")" ] || { echo "bench/serve.sh: the inline handler is not inline" >&2; exit 1; }

cat > "$T/post.lua" <<'EOF2'
wrk.method = "POST"
wrk.body = "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"
wrk.headers["Content-Type"] = "text/csv"
EOF2
# Same answer from every stack before timing anything (the native test handler answers class numbers).
for p in $P_PY $P_BYO $P_PY1 $P_NAT; do
  want='["setosa", "virginica"]'; [ "$p" = "$P_NAT" ] && want='[0,2]'
  out=$(curl -s -H 'Content-Type: text/csv' --data-binary $'5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n' "http://127.0.0.1:$p/invocations")
  [ "$out" = "$want" ] || die "port $p answered '$out', not '$want'"
done
# In a smoke run any non-2xx answer under load is a failure (a normal run reports them next to the numbers).
smoke_check() { # label count
  [ "$SMOKE" = 1 ] && [ "$2" != 0 ] && die "$1 gave $2 non-2xx answers under load"
  return 0
}

run_wrk() { # port concurrency path [lua] -> "rps p50_ms p99_ms"
  local args=(-t 2 -c "$2" -d "${DURATION}s" --latency --timeout 10s)
  [ -n "${4:-}" ] && args+=(-s "$4")
  wrk "${args[@]}" "http://127.0.0.1:$1$3" | $PY -c '
import re, sys
t = sys.stdin.read()
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s|m)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", t).group(1)); p99 = ms(re.search(r"\s99%\s+(\S+)", t).group(1))
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(rps, p50, p99, errs.group(1) if errs else 0)'
}

echo "smhost serve vs nginx+gunicorn+flask: $WORKERS workers each, wrk -t2 for ${DURATION}s per run, $ROUNDS rounds" \
  "(stacks in turn), 127.0.0.1, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$SMOKE" = 1 ] && echo "SMOKE RUN (SMHOST_BENCH_SMOKE=1): checks that the benchmark works; the numbers mean nothing"
# rounds.py: per concurrency, ROUNDS rounds of the stacks in turn (the order rotating), each stack's requests/s,
# latency and CPU time per request (utime+stime of its processes and their children over the requests it answered);
# medians, and the median of the per-round ratios against the first stack.
#   rounds.py SMOKE DURATION ROUNDS LUA "CONCS" LABEL=PORT:PID[,PID...] ...   (the first stack is the base)
cat >"$T/rounds.py" <<'PYEOF'
import os, re, statistics, subprocess, sys
smoke, duration, rounds, lua, concs = sys.argv[1] == "1", sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].split()
stacks = []
for arg in sys.argv[6:]:
    label, rest = arg.split("=", 1)
    port, pids = rest.split(":")
    stacks.append((label, port, [int(p) for p in pids.split(",")]))
tck = os.sysconf("SC_CLK_TCK")
def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(x) for x in open(f"/proc/{p}/task/{t}/children").read().split()]
        except OSError:
            pass
    return out
def cpu(roots):
    t = 0
    for r in roots:
        for p in tree(r):
            try:
                f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                t += int(f[11]) + int(f[12])
            except OSError:
                pass
    return t / tck
def ms(v):
    n, u = re.match(r"([\d.]+)(us|ms|s|m)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
def run(stack, c):
    _, port, roots = stack
    c0 = cpu(roots)
    t = subprocess.run(["wrk", "-t2", f"-c{c}", f"-d{duration}s", "--latency", "--timeout", "10s", "-s", lua,
                        f"http://127.0.0.1:{port}/invocations"], capture_output=True, text=True, check=True).stdout
    used = cpu(roots) - c0
    n = int(re.search(r"(\d+) requests in", t).group(1))
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return dict(rps=float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1)),
                p50=ms(re.search(r"\s50%\s+(\S+)", t).group(1)), p99=ms(re.search(r"\s99%\s+(\S+)", t).group(1)),
                err=int(errs.group(1)) if errs else 0, cpu_us=used / max(n, 1) * 1e6)
base = stacks[0][0]
others = [s[0] for s in stacks[1:]]
print(f"{'conc':<5} | " + " | ".join(f"{s[0]:<26}" for s in stacks) + " | " +
      " ".join(f"{o + '/' + base:>12}" for o in others) + " | CPU us/request")
print(f"{'':<5} | " + " | ".join(f"{'req/s  p50ms  p99ms':<26}" for _ in stacks) + " | " +
      " ".join(f"{'req/s':>12}" for _ in others) + f" | (medians of {rounds} rounds; {others[0]}/{base} of each round)")
bad = []
n = len(stacks)
for c in concs:
    res = {s[0]: [] for s in stacks}
    for r in range(rounds):
        for s in stacks[r % n:] + stacks[:r % n]:
            res[s[0]].append(run(s, c))
    med = lambda name, key: statistics.median(x[key] for x in res[name])
    ratio = lambda name: statistics.median(res[name][i]["rps"] / res[base][i]["rps"] for i in range(rounds))
    f = lambda name: f"{med(name, 'rps'):8.0f} {med(name, 'p50'):6.2f} {med(name, 'p99'):7.2f}   "
    each = sorted(res[others[0]][i]["rps"] / res[base][i]["rps"] for i in range(rounds))
    print(f"{c:<5} | " + " | ".join(f(s[0]) for s in stacks) + " | " +
          " ".join(f"{ratio(o):11.2f}x" for o in others) + " | " +
          ", ".join(f"{med(s[0], 'cpu_us'):.0f}" for s in stacks) + f" ({' '.join(f'{x:.2f}' for x in each)})")
    with open(os.path.join(os.path.dirname(lua), "ratios.txt"), "a") as out:  # for the goals line at the end
        for o in others:
            out.write(f"{o}/{base} {c} {ratio(o):.3f}\n")
    errs = {s[0]: sum(x["err"] for x in res[s[0]]) for s in stacks}
    if any(errs.values()):
        print("      non-2xx answers: " + ", ".join(f"{k} {v}" for k, v in errs.items()))
        bad += [f"{k} at {c} connections: {v} non-2xx answers" for k, v in errs.items() if v]
    last = med(base, "rps")
open(os.path.join(os.path.dirname(lua), f"{base}-rps"), "w").write(f"{last}\n")
if smoke and bad:
    sys.exit("bench/serve.sh: " + "; ".join(bad))
PYEOF
$PY "$T/rounds.py" "$SMOKE" "$DURATION" "$ROUNDS" "$T/post.lua" "$CONCURRENCY" "byo=$P_BYO:$BYO_NGX_PID,$GUNI_PID" \
  "pyhandler=$P_PY:$PY_PID" "native=$P_NAT:$NAT_PID"
b_rps=$(cat "$T/byo-rps")

# The HTTP ceiling: nginx answering `return 200` itself ($WORKERS worker processes), against the native handler in
# smhost's workers and inline in its front ($WORKERS threads); none of the three writes a line per request.
echo
echo "HTTP ceiling: nginx 'return 200' ($WORKERS worker processes) vs smhost native handler, same wrk, same request,"
echo "no access log on any (smhost: SAGEMAKER_CONTAINER_LOG_LEVEL=WARNING)"
$PY "$T/rounds.py" "$SMOKE" "$DURATION" "$CEIL_ROUNDS" "$T/post.lua" "$CONCURRENCY" "nginx200=$P_NGX:$NGX_PID" \
  "workers=$P_NATQ:$NATQ_PID" "inline=$P_INL:$INL_PID"
echo

# Python handler workers forked from python3 (its own interpreter) against the same workers forked from smhost
# on the shared libpython, alternating runs of wrk -c4: requests/s, and the workers' CPU time per request
# (utime+stime of the zygote's children over the requests wrk completed), which other load on a shared machine
# disturbs far less than requests/s.  Medians of ROUNDS.
$PY - "$PY_PID" "$P_PY" "$PYS_PID" "$P_PYS" "$T/post.lua" "$DURATION" "$ROUNDS" <<'PYEOF'
import os, re, statistics, subprocess, sys
def kids(pid):
    return [int(x) for x in open(f"/proc/{pid}/task/{pid}/children").read().split()]
def cpu(pids):
    t = 0
    for p in pids:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        t += int(f[11]) + int(f[12])
    return t / os.sysconf("SC_CLK_TCK")
def run(front, port):
    (zygote,) = kids(int(front))
    workers = kids(zygote)
    c0 = cpu(workers)
    out = subprocess.run(["wrk", "-t1", "-c4", f"-d{sys.argv[6]}s", "-s", sys.argv[5], f"http://127.0.0.1:{port}/invocations"],
                         capture_output=True, text=True, check=True).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, (cpu(workers) - c0) / n * 1e6
st, sh = [], []
for _ in range(int(sys.argv[7])):
    st.append(run(sys.argv[1], sys.argv[2]))
    sh.append(run(sys.argv[3], sys.argv[4]))
med = lambda xs, i: statistics.median(x[i] for x in xs)
print(f"pyhandler workers, zygote in python3 vs on the shared libpython (wrk -c4, medians of {sys.argv[7]}): "
      f"{med(st, 0):.0f} vs {med(sh, 0):.0f} req/s ({med(st, 0) / med(sh, 0):.3f}x); worker CPU per request "
      f"{med(st, 1):.1f} vs {med(sh, 1):.1f} us ({med(st, 1) / med(sh, 1):.3f}x)")
PYEOF
echo

# /ping while every worker is busy with /invocations (wrk -t1 -c64 on the same CPUs), asked the way a health checker
# asks: one GET /ping at a time, 1 ms apart (bench/pingprobe.c), PING_ROUNDS times, medians.  The probe shares the 2
# CPUs with the workers, the front and the loader, so its own scheduling delays count too; run as SCHED_FIFO (when
# root) they do not, and what it measures is the server: the front's time to get a CPU and answer.  Also with
# SMHOST_SERVE_PIPELINE=1, which leaves the workers idle between requests: less throughput, more idle CPU.
c=$(echo $CONCURRENCY | awk '{print $NF}')
PING_ROUNDS=${PING_ROUNDS:-3}; [ "$SMOKE" = 1 ] && PING_ROUNDS=1
PINGS=$((DURATION * 1000 / 2)); [ "$PINGS" -lt 200 ] && PINGS=200
ping_once() { # port mode -> "p50 p90 p99 max non200 mode loader_rps"
  wrk -t 1 -c "$c" -d "$((DURATION + 2))s" --timeout 10s -s "$T/post.lua" "http://127.0.0.1:$1/invocations" >"$T/loader.txt" &
  local loader=$!
  sleep 1
  local out
  out=$("$T/pingprobe" "$1" "$PINGS" 1000 "$2" 2>/dev/null)
  wait $loader
  echo "$out $(sed -n 's/Requests\/sec: *//p' "$T/loader.txt")"
}
for mode in normal fifo; do
  for r in $(seq 1 "$PING_ROUNDS"); do
    echo "py $(ping_once "$P_PY" "$mode")" >>"$T/ping-$mode.txt"
    echo "py1 $(ping_once "$P_PY1" "$mode")" >>"$T/ping-$mode.txt"
  done
  $PY - "$T/ping-$mode.txt" "$mode" "$c" "$PINGS" <<'PYEOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for key, label in (("py", "pyhandler"), ("py1", "pyhandler, SMHOST_SERVE_PIPELINE=1")):
    rs = [r for r in rows if r[0] == key]
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    if all(r[6] == "fifo" for r in rs):
        who = "probe SCHED_FIFO: the server alone"
    else:
        who = "probe as a normal process" + (" (SCHED_FIFO was refused: not root)" if sys.argv[2] == "fifo" else "")
    print(f"/ping under /invocations load ({label}, {sys.argv[3]} connections, {med(7):.0f} invocations/s; {who}): "
          f"p50 {med(1):.3f} ms, p99 {med(3):.3f} ms (p99 of each round: {', '.join(r[3] for r in rs)}; "
          f"{sys.argv[4]} pings a round, non-200 {sum(int(r[5]) for r in rs)})")
PYEOF
done
if [ "$SMOKE" = 1 ] && ! awk '$6 != 0 {exit 1}' "$T"/ping-*.txt; then die "/ping under load gave non-200 answers"; fi
# (column 6 of the probe's line: its non-200 count)

# The ceiling on this machine: wrk against /ping, which the front answers without a worker (HTTP only).
read -r h_rps h_50 h_99 h_err < <(run_wrk "$P_NAT" "$c" /ping)
smoke_check "/ping (ceiling)" "$h_err"
$PY -c "
import sys
h, b = float(sys.argv[1]), float(sys.argv[2])
print(f'ceiling: wrk -c$c against smhost /ping (no worker): {h:.0f} req/s = {h/b:.1f}x the byo median at $c connections; p50 {float(sys.argv[3]):.3f} ms')
" "$h_rps" "$b_rps" "$h_50"

# Issue 16's goals, from the runs above: the Python handler against the byo stack at 16 connections, the inline native
# handler against nginx `return 200` at 64, /ping's p99 under load at the default settings with the server measured
# alone (the SCHED_FIFO probe; the normal probe when that was refused).  A concurrency not run (a smoke run, or
# CONCURRENCY set) is replaced by the nearest one that was, and said.
$PY - "$T/ratios.txt" "$T/ping-fifo.txt" <<'PYEOF'
import statistics, sys
ratios = {}
for line in open(sys.argv[1]):
    key, conc, r = line.split()
    ratios.setdefault(key, {})[int(conc)] = float(r)
def ratio(key, want):
    got = ratios.get(key, {})
    if not got:
        return "n/a", want
    c = min(got, key=lambda x: (abs(x - want), -x))
    return f"{got[c]:.2f}x", c
def verdict(ok):
    return "met" if ok else "NOT met"
parts = []
for key, want, goal, label in (("pyhandler/byo", 16, 6.0, "Python handler / nginx+gunicorn+flask"),
                               ("inline/nginx200", 64, 0.8, "native inline / nginx return 200")):
    r, c = ratio(key, want)
    note = "" if c == want else f" (run at {c}, not {want})"
    ok = r != "n/a" and float(r[:-1]) >= goal
    parts.append(f"{label} at {c} connections{note}: {r} (goal >= {goal:g}x: {verdict(ok)})")
rows = [l.split() for l in open(sys.argv[2]) if l.startswith("py ")]
p99 = statistics.median(float(r[3]) for r in rows) if rows else float("nan")
who = "SCHED_FIFO probe" if rows and all(r[6] == "fifo" for r in rows) else "normal probe"
parts.append(f"/ping p99 under load, default settings ({who}): {p99:.3f} ms (goal < 1 ms: {verdict(p99 < 1)})")
print("\nGoals (issue 16):\n  " + "\n  ".join(parts))
PYEOF
