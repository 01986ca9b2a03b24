# reco-sidecar: gRPC recommendation sidecar. Two stages: the builder compiles what has no
# wheel (annoy, and the C kernels of setup.py: exact scores and MMR), regenerates
# the gRPC stubs from protos/ and installs the package into a virtual environment; the
# runtime image gets only that environment and runs as non-root.
#
#   docker build -t reco-sidecar .
#   docker run -v "$PWD/models:/models:ro" -p 50051:50051 -p 9464:9464 reco-sidecar
#
# Every serve option is a RECO_* variable (see docs/operations.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# The version that generated the committed stubs, so the build regenerates the same files.
ARG GRPCIO_TOOLS_VERSION=1.85.1
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# Debian's compiler packages move with point releases; pinning them would break the build
# whenever the archive moves on, for no gain in a throwaway stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY protos ./protos
COPY reco_sidecar ./reco_sidecar
# The same install as the README's `pip install .`, into a venv the runtime stage copies, with
# the OpenTelemetry packages so tracing can be turned on by configuration alone.
# grpcio-tools is only needed to generate the stubs and leaves the venv afterwards.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir "grpcio-tools==${GRPCIO_TOOLS_VERSION}" \
    && /opt/venv/bin/python -m reco_sidecar.serving.protogen \
    && /opt/venv/bin/pip install --no-cache-dir ".[tracing]" \
    && /opt/venv/bin/pip uninstall -y grpcio-tools \
    && /opt/venv/bin/python -c "import reco_sidecar.gen.reco.v1.reco_pb2_grpc, reco_sidecar.engine._exactdot, reco_sidecar.engine._foldin, reco_sidecar.ranking._mmr, annoy, implicit, opentelemetry.sdk"

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="reco-sidecar" \
      org.opencontainers.image.description="gRPC recommendation-serving sidecar" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECO_MODEL_ROOT=/models \
    RECO_HOST=0.0.0.0 \
    RECO_PORT=50051 \
    RECO_METRICS_PORT=9464
RUN groupadd --system --gid 10001 reco \
    && useradd --system --uid 10001 --gid reco --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin reco \
    && mkdir -p /models
COPY --from=builder /opt/venv /opt/venv
VOLUME ["/models"]
USER 10001:10001
EXPOSE 50051 9464
# Asks grpc.health.v1 on the local port. With TLS, set RECO_HEALTHCHECK_TLS_CA (and, for
# mutual TLS, RECO_HEALTHCHECK_TLS_CERT and RECO_HEALTHCHECK_TLS_KEY).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "reco_sidecar.host.healthcheck"]
# The supervisor is PID 1: it handles SIGTERM (graceful drain) and reaps its workers itself.
ENTRYPOINT ["reco-sidecar"]
CMD ["serve"]
