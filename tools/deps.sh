#!/usr/bin/env bash
# Install the Debian packages smhost needs to build, test and run its demo, when they are missing.
# Runs apt-get as root (or through sudo); prints nothing when everything is there.
set -euo pipefail
pkgs=(
  gcc make pkg-config               # the build
  libinih-dev                       # smhost.ini parsing
  libcjson-dev                      # JSON on the serving side (requests, /models, /execution-parameters)
  libarchive-dev                    # unpacking sagemaker_submit_directory tarballs safely
  libmicrohttpd-dev                 # the HTTP server of smhost serve
  libcurl4-gnutls-dev               # s3.so (S3 with SigV4) and http.so (the client of smhost local); GnuTLS, as libmicrohttpd
  python3-dev                       # Python's headers and libpython3.11.so: pyhandler (embeds it) and pyboot.so (headers only:
                                    # it is preloaded into /usr/bin/python3 and calls its exported C API)
  libcmocka-dev                     # unit tests
  python3-pytest                    # black-box tests
  clang libclang-rt-14-dev          # libFuzzer targets (make fuzz, make fuzz-smoke): clang's fuzzer runtime
  python3-numpy python3-sklearn     # the scikit-learn sample and C-extension tests
  python3-pip python3-setuptools python3-wheel python3-venv  # requirements.txt installs and their tests
  openmpi-bin libopenmpi-dev        # MPI launches (the mpi launcher runs Debian's mpirun)
  openssh-server                    # sshd -D on every host of an MPI job, and its tests
  python3-torch python3-mpi4py      # distributed tests (torch gloo, mpi4py), the torch-ddp sample, bench/distributed
  iproute2                          # `ip` for inspecting the simulated hosts of smhost local / distributed tests
  procps curl                       # ps in tests, curl in the demo, bench/serve.sh and the S3 tests (an
                                    # independent SigV4 client)
  nginx gunicorn python3-flask      # bench/serve.sh's bring-your-own stack (nginx -> gunicorn -> Flask), whose
                                    # smoke run `make test` does (make bench-smoke)
  wrk                               # bench/serve.sh's HTTP load generator
  swift swift-proxy swift-account swift-container swift-object python3-swift  # the real S3 server (s3api) of tests/s3
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "smhost deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
