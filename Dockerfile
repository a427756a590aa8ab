# syntax=docker/dockerfile:1
#
# popbridge container image.
#
#   docker build -t popbridge .
#   docker run --read-only --tmpfs /tmp --stop-timeout 40 \
#     -v popbridge-data:/var/lib/popbridge \
#     -v "$PWD/config.yaml:/etc/popbridge/config.yaml:ro" -p 9808:9808 popbridge
#
# - Two stages: the build stage makes the wheel and installs it with its dependencies into a
#   virtual environment at /opt/venv; the runtime stage copies only that environment.
# - Runs as the fixed non-root uid/gid 10001 (Kubernetes runAsNonRoot can verify a number).
# - Works with a read-only root filesystem: the only writes go to /var/lib/popbridge (the
#   ledger and dead letters; mount a volume) and TMPDIR=/tmp (mount a tmpfs); no .pyc files.
# - ENTRYPOINT and CMD are in exec form, so SIGTERM reaches popbridge (PID 1) directly: it
#   stops taking work, finishes in-flight deliveries within shutdown_grace (25 s), QUITs so
#   acknowledged deletions commit, and exits 0. Give the container longer than that to stop
#   (docker stop -t 40 / --stop-timeout 40; Kubernetes terminationGracePeriodSeconds 45).
# - tests/integration/test_image.py builds this image (FROM a Debian base it makes with
#   debootstrap, as no registry is reachable there) and runs it where a Docker engine is
#   available; tests/integration/test_deploy.py runs ENTRYPOINT + CMD and the HEALTHCHECK
#   below from a freshly built wheel everywhere.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY bridge ./bridge
# constraints.txt pins every dependency, and the build backend, to the versions CI tests.
# WHEELHOUSE_URL (optional) installs from that find-links page only, without an index: for
# offline builds or a mirror (tests/integration/test_image.py serves one on loopback).
ARG WHEELHOUSE_URL=
# EXTRAS: optional features to include, e.g. --build-arg EXTRAS=s3 for an S3 attachment
# store (attachments.store: s3; adds aiobotocore, about 80 MB). Empty: the base image.
ARG EXTRAS=
ENV PIP_CONSTRAINT=/src/constraints.txt
RUN if [ -n "$WHEELHOUSE_URL" ]; then \
        export PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE_URL"; \
    fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && wheel="$(ls /wheels/popbridge-*.whl)" \
 && /opt/venv/bin/pip install "${wheel}${EXTRAS:+[$EXTRAS]}" \
 && /opt/venv/bin/pip uninstall --yes pip \
 && /opt/venv/bin/popbridge --version

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="popbridge" \
      org.opencontainers.image.description="POP3 to webhook bridge: delete only after the webhook acknowledged" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 popbridge \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/popbridge \
        --no-create-home --shell /usr/sbin/nologin popbridge \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/popbridge \
 && install -d -o root -g root -m 0755 /etc/popbridge

COPY --from=build /opt/venv /opt/venv

# POPBRIDGE_* are config overrides (docs/config.md): inside the container the bridge always
# listens on all interfaces, port 9808, keeps its data on the volume and logs JSON lines,
# whatever the mounted config file says. Override them with `docker run -e` if needed.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/popbridge \
    TMPDIR=/tmp \
    POPBRIDGE_HTTP__LISTEN=0.0.0.0:9808 \
    POPBRIDGE_DATA_DIR=/var/lib/popbridge \
    POPBRIDGE_LOG__FORMAT=json

USER 10001:10001
WORKDIR /var/lib/popbridge
VOLUME ["/var/lib/popbridge"]
EXPOSE 9808
STOPSIGNAL SIGTERM

# /healthz answers while the event loop runs. The slim image has no curl: use Python, and
# take the port from the same variable the bridge reads.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('POPBRIDGE_HTTP__LISTEN', ':9808').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).read()"]

ENTRYPOINT ["popbridge"]
CMD ["run", "-c", "/etc/popbridge/config.yaml"]
