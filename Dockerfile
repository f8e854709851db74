# aiproxy: OpenAI-compatible gateway to Google Gemini.
# Build: docker build -t aiproxy:latest .    Run: docker run -p 8002:8002 -e GEMINI_API_KEY=... aiproxy:latest

# --- build stage: install the pinned runtime requirements into a venv (all are binary wheels) ---
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# --- runtime stage: the venv and the package only, run as a non-root user ---
FROM python:3.11.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8002
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin aiproxy \
    && mkdir -p /app/data && chown aiproxy:aiproxy /app/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY aiproxy ./aiproxy
COPY run.py ./
USER 10001:10001
EXPOSE 8002
# The slim image has no curl: probe /health (liveness) with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8002'), timeout=4)"]
# SIGTERM starts the graceful drain (DRAIN_TIMEOUT, default 30 s): give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "aiproxy"]
