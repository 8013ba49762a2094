# One image, many frameworks: smhost as PID 1, its plugins, Debian's Python with numpy, pandas and
# scikit-learn, and OpenMPI.  See docs/image.md.
#
#   docker build -t smhost .                               # CPU image with the scientific Python stack
#   docker build --build-arg WITH_TORCH=1 -t smhost:torch .  # adds Debian's python3-torch (CPU)
#   docker run --rm -v "$PWD/ml:/opt/ml" smhost train
#
# BASE_IMAGE names another bookworm base (a mirror's copy of debian:bookworm-slim, say).
ARG BASE_IMAGE=debian:bookworm-slim

# ---- builder: compiles smhost, its plugins and the samples; nothing of it but /out reaches the image --------
# python3-dev brings Python's headers: pyhandler embeds libpython3.11, and pyboot.so (what smhost preloads into
# /usr/bin/python3 for Python jobs and handlers, docs/python.md) calls python3's C API without linking libpython.
FROM ${BASE_IMAGE} AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make pkg-config \
        libinih-dev libcjson-dev libarchive-dev libmicrohttpd-dev libcurl4-gnutls-dev python3-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make clean \
 && make -j"$(nproc)" \
 && make install PREFIX=/usr/local DESTDIR=/out

# ---- runtime: run-time libraries only, no compilers -------------------------------------------------------
FROM ${BASE_IMAGE}
ARG WITH_TORCH=0
# libinih1 .. libpython3.11: what smhost, its internal modules and its plugins link against (libcurl3-gnutls: s3.so,
# with ca-certificates for https to S3, and http.so, the client of `smhost local`).  python3 runs Python jobs and
# handlers itself (with smhost's pyboot.so preloaded).  python3-pip: requirements.txt installs.
# openmpi-bin brings mpirun and openssh-client (its remote launcher).
# Debian's python3-scipy (under scikit-learn) depends on python3-pythran, an ahead-of-time compiler that
# drags in g++, Boost and the BLAS and Python headers; scipy never imports it at run time.  A local empty
# package that provides python3-pythran keeps compilers out of the image and dpkg's state consistent
# (a later `apt-get install python3-pythran` in a derived image replaces it).
RUN mkdir -p /tmp/nopythran/DEBIAN \
 && printf '%s\n' 'Package: smhost-no-pythran' 'Version: 1.0' 'Architecture: all' 'Maintainer: smhost' \
        'Provides: python3-pythran' 'Conflicts: python3-pythran' 'Replaces: python3-pythran' \
        'Description: stands in for python3-pythran, which scipy needs only at build time' \
        >/tmp/nopythran/DEBIAN/control \
 && dpkg-deb --build /tmp/nopythran /tmp/smhost-no-pythran.deb >/dev/null \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        /tmp/smhost-no-pythran.deb \
        libinih1 libcjson1 libarchive13 libmicrohttpd12 libcurl3-gnutls ca-certificates libpython3.11 \
        python3 python3-pip python3-numpy python3-pandas python3-sklearn \
        openmpi-bin \
        $(if [ "$WITH_TORCH" = 1 ]; then echo python3-torch; fi) \
 && apt-get clean \
 && rm -rf /tmp/nopythran /tmp/smhost-no-pythran.deb \
        /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log /var/cache/debconf/*-old
COPY --from=builder /out/ /

# SageMaker capabilities.  accept-bind-to-port: `smhost serve` listens on SAGEMAKER_BIND_TO_PORT when set;
# multi-models: SAGEMAKER_MULTI_MODEL=true serves the models under /opt/ml/models (contract section 7).
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      com.amazonaws.sagemaker.capabilities.multi-models=true \
      org.opencontainers.image.title="smhost" \
      org.opencontainers.image.description="SageMaker-compatible training and serving host (smhost) with Python, scikit-learn and OpenMPI"

ENV PYTHONUNBUFFERED=1
EXPOSE 8080
# SageMaker runs `docker run <image> train` or `... serve`: the argument is appended to the entry point.
ENTRYPOINT ["/usr/local/bin/smhost"]
