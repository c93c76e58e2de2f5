# syntax=docker/dockerfile:1
#
# driftd container image.
#
#   docker build -t driftd:latest .
#   docker run --rm -p 9108:9108 \
#     -v "$PWD/config.yaml:/etc/driftd/config.yaml:ro" \
#     -v driftd-data:/var/lib/driftd \
#     -e SLACK_BOT_TOKEN -e DRIFTD_WEBHOOK_SECRET \
#     driftd:latest
#
# Layout (docs/operations.md):
#   /etc/driftd/config.yaml     the config (mount it; read-only is fine). Set server.host: 0.0.0.0
#                               so the port is reachable from outside the container.
#   /etc/driftd/references/     training reference files, if you mount them here (read-only)
#   /var/lib/driftd             working directory and data volume: DuckDB store, reports,
#                               exports. Use absolute paths under it in the config: relative
#                               paths resolve against the config file's directory.
#   9108                        /metrics, /healthz, /readyz, /reports/
# The image runs as uid/gid 10001 (user `driftd`) and works with a read-only root filesystem
# as long as /var/lib/driftd (and /tmp) are writable.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a wheel of driftd, installed with its dependencies into a self-contained venv ------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/driftd
WORKDIR /src
COPY . .
# the `lake` extra: DuckDB's ducklake and postgres extensions and psycopg, for replicas on a
# shared store (store.lake); build with --build-arg DRIFTD_EXTRAS= for the DuckDB file only
ARG DRIFTD_EXTRAS=lake
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && wheel="$(ls /wheels/*.whl)" \
 && /opt/driftd/bin/pip install "${wheel}${DRIFTD_EXTRAS:+[$DRIFTD_EXTRAS]}" \
 && /opt/driftd/bin/driftd --help > /dev/null

# --- runtime: the venv only, no compilers, no source tree ---------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="driftd" \
      org.opencontainers.image.description="ML drift-monitoring daemon: Kafka in, Prometheus metrics, alerts and reports out"

ENV PATH=/opt/driftd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DRIFTD_HEALTHCHECK_URL=http://127.0.0.1:9108/healthz

RUN groupadd --system --gid 10001 driftd \
 && useradd --system --uid 10001 --gid driftd --home-dir /var/lib/driftd --no-create-home \
            --shell /usr/sbin/nologin driftd \
 && mkdir -p /etc/driftd/references /var/lib/driftd \
 && chown driftd:driftd /var/lib/driftd \
 && chmod 0750 /var/lib/driftd

COPY --from=build /opt/driftd /opt/driftd

WORKDIR /var/lib/driftd
VOLUME ["/var/lib/driftd"]
USER 10001:10001
EXPOSE 9108

# No curl in the slim image: python's urllib does the probe. urlopen raises on a refused
# connection, a timeout or any 4xx/5xx, so the exit code is 0 only for a healthy 2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['DRIFTD_HEALTHCHECK_URL'], timeout=4)"]

# driftd drains on SIGTERM: finishes the batch, flushes the store, commits offsets.
STOPSIGNAL SIGTERM
ENTRYPOINT ["driftd"]
CMD ["run", "--config", "/etc/driftd/config.yaml"]
