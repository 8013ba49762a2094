#!/usr/bin/env bash
# make test-image: builds the Dockerfile offline and runs real training jobs in the image.
#
# No Docker engine and no registry here, so the test makes its own base image: a minimal Debian bookworm
# tree (debootstrap from the Debian mirror apt already uses), trimmed the way debian:bookworm-slim is, and
# imported under that name.  Then `podman build --pull=never`, then `podman run <image> train` against a
# bind-mounted ML root per job, checking model files, success/failure files and exit codes.
#
# Environment: SMHOST_IMAGE_CACHE (default build/image) keeps the base tarball between runs;
# SMHOST_DEBIAN_MIRROR overrides the mirror; SMHOST_IMAGE_TAG (default smhost:test); SMHOST_IMAGE_TORCH=1
# also builds the WITH_TORCH=1 image and runs a PyTorch job in it (about 1 GB more, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CACHE=${SMHOST_IMAGE_CACHE:-$REPO/build/image}
TAG=${SMHOST_IMAGE_TAG:-smhost:test}
BASE=docker.io/library/debian:bookworm-slim
T0=$SECONDS
mkdir -p "$CACHE"

step() { printf '== image test: %s  [%ds]\n' "$*" $((SECONDS - T0)); }
die() { printf 'image test FAILED: %s\n' "$*" >&2; exit 1; }

# ---- 1. tools -----------------------------------------------------------------------------------------------
# runc rather than crun: crun refuses hosts with cgroup v1 controllers and a cgroup2 mount side by side
# ("cgroups in hybrid mode not supported"), which is what these machines have.
[ "$(id -u)" -eq 0 ] || die "run it as root: rootless podman needs subuid ranges this test does not set up"
missing=()
for t in podman debootstrap runc; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- 2. the base image --------------------------------------------------------------------------------------
# The mirror comes from this machine's apt sources (one-line or deb822; tests/image/apt_sources.sh), never from
# a host named here: the source for bookworm, else for any Debian suite (a Debian mirror serves them all), and
# likewise for the security archive when one is listed.  SMHOST_DEBIAN_MIRROR overrides the mirror.
. tests/image/apt_sources.sh
DEBIAN_SUITES="bookworm stable trixie testing bullseye oldstable forky sid unstable"
MIRROR=${SMHOST_DEBIAN_MIRROR:-$(apt_source_uri $DEBIAN_SUITES || true)}
[ -n "$MIRROR" ] || die "no Debian mirror in this machine's apt sources (a 'deb' entry for one of: $DEBIAN_SUITES in
  /etc/apt/sources.list, /etc/apt/sources.list.d/*.list or *.sources). Add one, or set SMHOST_DEBIAN_MIRROR=<mirror URL>."
SECURITY=$(apt_source_uri $(for s in $DEBIAN_SUITES; do printf '%s-security ' "$s"; done) || true)

make_base_tar() {
    local tree="$CACHE/rootfs.tmp"
    rm -rf "$tree"
    step "debootstrap --variant=minbase bookworm from $MIRROR"
    debootstrap --variant=minbase bookworm "$tree" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    # What debian:bookworm-slim has: deb822 sources with updates and security, dpkg told to skip docs, man
    # pages and translations of everything installed later, and no apt lists, caches or logs.
    rm -f "$tree/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$MIRROR"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        [ -z "$SECURITY" ] || printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$SECURITY"
    } >"$tree/etc/apt/sources.list.d/debian.sources"
    cat >"$tree/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    find "$tree/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$tree"/usr/share/man/* "$tree"/usr/share/info/* "$tree"/usr/share/locale/* \
        "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/* "$tree"/var/log/apt/* "$tree"/var/log/*.log
    tar -C "$tree" -cf "$CACHE/bookworm-slim.tar.tmp" .
    mv "$CACHE/bookworm-slim.tar.tmp" "$CACHE/bookworm-slim.tar"
    rm -rf "$tree"
}

if podman image exists "$BASE"; then
    step "base image $BASE is present"
else
    [ -f "$CACHE/bookworm-slim.tar" ] || make_base_tar
    step "importing $CACHE/bookworm-slim.tar as $BASE"
    podman import -q "$CACHE/bookworm-slim.tar" "$BASE" >/dev/null
fi
T_BASE=$((SECONDS - T0))

# ---- 3. the build -------------------------------------------------------------------------------------------
step "podman build -t $TAG (log: $CACHE/build.log)"
tb=$SECONDS
podman build --isolation=chroot --pull=never -t "$TAG" -f Dockerfile . >"$CACHE/build.log" 2>&1 ||
    { tail -n 40 "$CACHE/build.log" >&2; die "podman build failed (log: $CACHE/build.log)"; }
T_BUILD=$((SECONDS - tb))
SIZE=$(podman image inspect "$TAG" --format '{{.Size}}')
BASE_SIZE=$(podman image inspect "$BASE" --format '{{.Size}}')
mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1e6 }'; }

# ---- 4. what is (and is not) in the image -------------------------------------------------------------------
step "inspecting the image"
cfg=$(podman image inspect "$TAG" --format '{{json .Config.Entrypoint}} {{json .Config.Labels}} {{json .Config.Env}}')
case "$cfg" in *'["/usr/local/bin/smhost"]'*) ;; *) die "ENTRYPOINT is not [\"/usr/local/bin/smhost\"]: $cfg" ;; esac
for want in '"com.amazonaws.sagemaker.capabilities.accept-bind-to-port":"true"' \
    '"com.amazonaws.sagemaker.capabilities.multi-models":"true"' '"PYTHONUNBUFFERED=1"'; do
    case "$cfg" in *"$want"*) ;; *) die "image config lacks $want: $cfg" ;; esac
done

# Common options: no network (training needs none here), and explicit rlimits: podman's defaults exceed
# this machine's hard limits and an unprivileged runtime cannot raise them.
RUN_OPTS=(--network=none --runtime=runc --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
inside() { podman run --rm "${RUN_OPTS[@]}" --entrypoint /bin/sh "$TAG" -c "$1"; }

out=$(inside 'for t in gcc cc g++ make ld as; do command -v $t; done; ls -A /opt/ml 2>/dev/null; true')
[ -z "$out" ] || die "the runtime image has build tools or data under /opt/ml: $out"
inside 'command -v train && command -v serve && command -v mpirun && command -v python3' >/dev/null ||
    die "train, serve, mpirun or python3 is not on the image's PATH"
inside '/usr/bin/python3 -c "import numpy, pandas, sklearn"' || die "numpy, pandas or scikit-learn does not import"
inside '[ "$(id -u)" = 0 ]' || die "the image does not run as root"

# ---- 5. jobs ------------------------------------------------------------------------------------------------
JOBS="$CACHE/jobs"
rm -rf "$JOBS"
PASSED=()
SKIPPED=()

# new_root NAME: an empty ML root, its path in $ML.
new_root() {
    ML="$JOBS/$1"
    mkdir -p "$ML/input/config" "$ML/input/data" "$ML/code" "$ML/model" "$ML/output"
}

# run_job NAME WANT_RC: `podman run <image> train` on $ML (the image is $IMG, default $TAG); checks the exit
# code and the output files (success for 0, failure otherwise).
run_job() {
    local name=$1 want=$2 rc=0
    step "job $name"
    podman run --rm "${RUN_OPTS[@]}" -v "$ML:/opt/ml" "${IMG:-$TAG}" train >"$JOBS/$name.log" 2>&1 || rc=$?
    if [ "$rc" != "$want" ]; then
        tail -n 30 "$JOBS/$name.log" >&2
        die "job $name: exit code $rc, expected $want (log: $JOBS/$name.log)"
    fi
    if [ "$want" = 0 ]; then
        [ -f "$ML/output/success" ] || die "job $name: no output/success"
        [ ! -e "$ML/output/failure" ] || die "job $name: output/failure exists: $(head -c 300 "$ML/output/failure")"
    else
        [ -f "$ML/output/failure" ] || die "job $name: no output/failure"
        [ ! -e "$ML/output/success" ] || die "job $name: output/success exists after a failure"
    fi
}

hps() { printf '%s\n' "$1" >"$ML/input/config/hyperparameters.json"; }

# A shell job: writes a model file from its hyperparameter, argv and channel, and names PID 1 (the entry
# point in exec form makes smhost PID 1).
new_root shell
hps '{"sagemaker_program": "\"train.sh\"", "epochs": "3"}'
mkdir -p "$ML/input/data/train"
echo "1,2,3" >"$ML/input/data/train/data.csv"
printf '%s\n' '{"train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}' \
    >"$ML/input/config/inputdataconfig.json"
cat >"$ML/code/train.sh" <<'EOF'
#!/bin/sh
set -e
echo "epochs=$SM_HP_EPOCHS args=$* rows=$(wc -l < "$SM_CHANNEL_TRAIN/data.csv") pid1=$(cat /proc/1/comm)" > "$SM_MODEL_DIR/model.txt"
EOF
run_job shell 0
grep -qx 'epochs=3 args=--epochs 3 rows=1 pid1=smhost' "$ML/model/model.txt" ||
    die "job shell: model/model.txt is '$(cat "$ML/model/model.txt" 2>/dev/null)'"
PASSED+=(shell)

# A failing shell job: the container exits with the program's code and output/failure says so.
new_root shell-fail
hps '{"sagemaker_program": "\"fail.sh\""}'
printf '#!/bin/sh\necho "bad input: no rows" >&2\nexit 3\n' >"$ML/code/fail.sh"
run_job shell-fail 3
grep -q 'ExitCode 3' "$ML/output/failure" && grep -q 'bad input: no rows' "$ML/output/failure" ||
    die "job shell-fail: output/failure lacks 'ExitCode 3' or the program's message: $(cat "$ML/output/failure")"
PASSED+=(shell-fail)

# A stopped job (StopTrainingJob): `podman stop` sends SIGTERM to PID 1; smhost passes it on, the program
# saves a checkpoint and exits 0; the job is reported stopped (failure file, no success) with exit code 0.
new_root stop
hps '{"sagemaker_program": "\"loop.sh\""}'
cat >"$ML/code/loop.sh" <<'EOF'
#!/bin/sh
trap 'echo saved > "$SM_MODEL_DIR/checkpoint.txt"; exit 0' TERM
touch "$SM_MODEL_DIR/started"
while :; do sleep 1; done
EOF
step "job stop"
cid=$(podman run -d "${RUN_OPTS[@]}" -v "$ML:/opt/ml" "$TAG" train)
for _ in $(seq 300); do [ -e "$ML/model/started" ] && break; sleep 0.2; done
[ -e "$ML/model/started" ] || { podman rm -f "$cid" >/dev/null; die "job stop: the program did not start within 60 s"; }
podman stop -t 60 "$cid" >/dev/null
rc=$(podman inspect "$cid" --format '{{.State.ExitCode}}')
podman logs "$cid" >"$JOBS/stop.log" 2>&1
podman rm "$cid" >/dev/null
[ "$rc" = 0 ] || die "job stop: exit code $rc after SIGTERM, expected 0 (log: $JOBS/stop.log)"
grep -qx saved "$ML/model/checkpoint.txt" 2>/dev/null || die "job stop: the program never saw SIGTERM (no checkpoint)"
[ -f "$ML/output/failure" ] && [ ! -e "$ML/output/success" ] || die "job stop: expected output/failure and no success"
PASSED+=(stop)

# A requirements.txt job: pip in the image installs a wheel (built here, offered with --no-index, as there is
# no network) despite Debian's externally-managed marker, before the program runs and imports it.
new_root requirements
src="$JOBS/probe-src"
mkdir -p "$src" "$ML/code/wheels"
printf 'VALUE = "probe 1.0"\n' >"$src/smhost_image_probe.py"
printf 'from setuptools import setup\nsetup(name="smhost_image_probe", version="1.0", py_modules=["smhost_image_probe"])\n' \
    >"$src/setup.py"
/usr/bin/python3 -m pip wheel -q --no-deps --no-build-isolation -w "$ML/code/wheels" "$src" >"$JOBS/probe-wheel.log" 2>&1 ||
    die "cannot build the probe wheel on this machine (python3-pip, -setuptools, -wheel): $(tail -n 5 "$JOBS/probe-wheel.log")"
printf -- '--no-index\n--find-links /opt/ml/code/wheels\nsmhost_image_probe==1.0\n' >"$ML/code/requirements.txt"
printf 'import os, smhost_image_probe\nopen(os.path.join(os.environ["SM_MODEL_DIR"], "probe.txt"), "w").write(smhost_image_probe.VALUE)\n' \
    >"$ML/code/train.py"
hps '{"sagemaker_program": "\"train.py\""}'
run_job requirements 0
grep -qx 'probe 1.0' "$ML/model/probe.txt" || die "job requirements: model/probe.txt is '$(cat "$ML/model/probe.txt" 2>/dev/null)'"
PASSED+=(requirements)

# from_sample NAME: an ML root copied from samples/NAME (its ml/ tree and code/), as samples/demo.sh does.
from_sample() {
    new_root "$1"
    cp -r "samples/$1/ml/." "$ML/"
    if [ -d "samples/$1/code" ]; then cp -r "samples/$1/code/." "$ML/code/"; fi
}

# The shell sample: a vocabulary from its train channel.
if [ -d samples/shell-wordcount/ml ]; then
    from_sample shell-wordcount
    run_job shell-wordcount 0
    [ -s "$ML/model/vocab.tsv" ] || die "job shell-wordcount: model/vocab.tsv is missing or empty"
    PASSED+=(shell-wordcount)
fi

# A scikit-learn job: the repository's sample when it is there, else tests/image/sklearn_train.py.
if [ -d samples/sklearn-iris/ml ]; then
    from_sample sklearn-iris
    run_job sklearn-iris 0
    [ -s "$ML/model/model.joblib" ] || die "job sklearn-iris: no model/model.joblib"
    PASSED+=(sklearn-iris)

    # The same image serves the model it trained: `serve` in the container (loopback only, no network),
    # /ping until 200, one CSV request, then SIGTERM, which must end the server with 0.
    step "serve the sklearn-iris model"
    podman run --rm "${RUN_OPTS[@]}" -v "$ML:/opt/ml" -e SAGEMAKER_MODEL_SERVER_WORKERS=1 --entrypoint /bin/sh "$TAG" -c '
        serve & pid=$!
        python3 - <<"PY"
import http.client, sys, time
for _ in range(300):
    try:
        c = http.client.HTTPConnection("127.0.0.1", 8080, timeout=5)
        c.request("GET", "/ping")
        r = c.getresponse()
        r.read()
        if r.status == 200:
            break
    except OSError:
        pass
    time.sleep(0.1)
else:
    sys.exit("/ping never answered 200")
c.request("POST", "/invocations", body=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
          headers={"Content-Type": "text/csv", "Accept": "application/json"})
r = c.getresponse()
body = r.read().decode()
print("POST /invocations:", r.status, body)
sys.exit(0 if r.status == 200 and body.count("setosa") == 1 and body.count("virginica") == 1 else 1)
PY
        rc=$?
        kill -TERM $pid
        wait $pid
        src=$?
        [ $rc -eq 0 ] && [ $src -eq 0 ]' >"$JOBS/serve-sklearn-iris.log" 2>&1 ||
        { tail -n 30 "$JOBS/serve-sklearn-iris.log" >&2; die "serving the sklearn-iris model failed (log: $JOBS/serve-sklearn-iris.log)"; }
    PASSED+=(serve-sklearn-iris)
else
    new_root sklearn
    cp tests/image/sklearn_train.py "$ML/code/"
    hps '{"sagemaker_program": "\"sklearn_train.py\"", "max_iter": "400"}'
    run_job sklearn 0
    [ -s "$ML/model/model.joblib" ] || die "job sklearn: no model/model.joblib"
    grep -q 'test accuracy' "$JOBS/sklearn.log" || die "job sklearn: its log lacks the accuracy line"
    PASSED+=("sklearn (tests/image/sklearn_train.py)")
fi

# A native job: the native-linreg sample trainer (built by `make` on this bookworm host, the image's glibc)
# fits y = 1.5 + 2 x1 - 3 x2 + 0.25 x3 exactly.
LINREG=build/samples/native-linreg/liblinreg.so
if [ -f "$LINREG" ]; then
    new_root native-linreg
    cp "$LINREG" "$ML/code/"
    mkdir -p "$ML/input/data/train"
    printf '%s\n' '{"train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}' \
        >"$ML/input/config/inputdataconfig.json"
    hps '{"sagemaker_program": "\"liblinreg.so\""}'
    awk 'BEGIN { print "x1,x2,x3,y"; for (i = 0; i < 500; i++) { a = (i % 7) - 3; b = (i % 11) / 4; c = (i * i % 13) - 6;
        printf "%g,%g,%g,%.10g\n", a, b, c, 1.5 + 2 * a - 3 * b + 0.25 * c } }' >"$ML/input/data/train/data.csv"
    run_job native-linreg 0
    /usr/bin/python3 - "$ML/model/model.json" <<'PY' || die "job native-linreg: wrong model: $(cat "$ML/model/model.json" 2>/dev/null)"
import json, sys
m = json.load(open(sys.argv[1]))
got = [m["intercept"], *m["coefficients"]]
want = [1.5, 2.0, -3.0, 0.25]
sys.exit(len(got) != 4 or any(abs(g - w) > 1e-6 for g, w in zip(got, want)))
PY
    PASSED+=(native-linreg)
else
    SKIPPED+=("native-linreg ($LINREG is not built: samples/native-linreg is not in this tree)")
fi

# The PyTorch variant, on request.
T_TORCH=""
if [ "${SMHOST_IMAGE_TORCH:-0}" = 1 ]; then
    step "podman build --build-arg WITH_TORCH=1 -t $TAG-torch (log: $CACHE/build-torch.log)"
    tt=$SECONDS
    podman build --isolation=chroot --pull=never --build-arg WITH_TORCH=1 -t "$TAG-torch" -f Dockerfile . \
        >"$CACHE/build-torch.log" 2>&1 ||
        { tail -n 40 "$CACHE/build-torch.log" >&2; die "podman build WITH_TORCH=1 failed (log: $CACHE/build-torch.log)"; }
    T_TORCH=", torch build $((SECONDS - tt))s"
    new_root torch
    cp tests/image/torch_train.py "$ML/code/"
    hps '{"sagemaker_program": "\"torch_train.py\"", "epochs": "300"}'
    IMG="$TAG-torch" run_job torch 0
    [ -s "$ML/model/model.pth" ] || die "job torch: no model/model.pth"
    PASSED+=(torch)
    echo "image test: runtime image $TAG-torch is $(mb "$(podman image inspect "$TAG-torch" --format '{{.Size}}')")"
fi

# ---- 6. summary ---------------------------------------------------------------------------------------------
T_ALL=$((SECONDS - T0))
echo "image test: runtime image $TAG is $(mb "$SIZE") (base $BASE $(mb "$BASE_SIZE"))"
for s in "${SKIPPED[@]}"; do echo "image test: skipped $s"; done
echo "image test PASSED: ${#PASSED[@]} jobs (${PASSED[*]}); wall time ${T_ALL}s (base image ${T_BASE}s, build ${T_BUILD}s${T_TORCH})"
