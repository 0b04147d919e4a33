# syntax=docker/dockerfile:1.7
# Vektor Backend image: dependencies built with uv in a builder stage, run as a non-root user
# by `main.py prod` (gunicorn + uvicorn workers, graceful shutdown on SIGTERM).
#   docker build -t vektor-backend .      (docker compose up builds it too)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13 AS uv

FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Only the lock decides this layer: code changes do not reinstall dependencies.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 vektor \
    && useradd --system --uid 10001 --gid vektor --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin vektor
WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY alembic.ini gunicorn.conf.py main.py ./
COPY alembic ./alembic
COPY app ./app
COPY scripts ./scripts
COPY config ./config
# Code stays root-owned (read-only to the service); only data and logs are writable.
RUN mkdir -p /app/data /app/logs && chown vektor:vektor /app/data /app/logs
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOG_DIR=/app/logs \
    DATA_DIR=/app/data \
    CONFIG_DIR=/app/config
USER 10001:10001
EXPOSE 8000
VOLUME ["/app/logs"]
# Liveness only: a database outage shows on /health (503) without restarting the container.
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["python", "main.py", "prod"]
