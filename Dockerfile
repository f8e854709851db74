# aiproxy: OpenAI-compatible gateway to Google Gemini.
# Build: docker build -t aiproxy:latest .    Run: docker run -p 8002:8002 -e GEMINI_API_KEY=... aiproxy:latest

# --- build stage: the pinned runtime requirements (all binary wheels), then the package itself ---
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
# Installed like any Python package: the `aiproxy` command and its data files (aiproxy/data/*.toml).
COPY pyproject.toml setup.cfg README.md /src/
COPY aiproxy /src/aiproxy
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps /src

# --- runtime stage: the venv only, run as a non-root user ---
FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8002 \
    OPS_PORT=9102
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin aiproxy \
    && mkdir -p /app/data && chown aiproxy:aiproxy /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
# 8002: clients. 9102: /health, /health/ready and /metrics only (OPS_PORT), for probes and Prometheus.
EXPOSE 8002 9102
# The slim image has no curl: probe /health (liveness) on the ops port, which client floods cannot fill.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % (os.environ.get('OPS_PORT') or os.environ.get('PORT', '8002')), timeout=4)"]
# SIGTERM starts the graceful drain (DRAIN_TIMEOUT, default 30 s): give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
CMD ["aiproxy"]
