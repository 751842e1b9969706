# syntax=docker/dockerfile:1
# Edge image: the redirector and admin API only (no ClickHouse engine inside).
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY edge ./edge
COPY analytics ./analytics
RUN /opt/venv/bin/pip install .

FROM python:3.11-slim AS edge
RUN useradd --system --uid 10001 --home /var/lib/invite --create-home invite
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    INVITE_DATA_DIR=/var/lib/invite \
    INVITE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
USER invite
WORKDIR /var/lib/invite
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
STOPSIGNAL SIGTERM
CMD ["invite", "edge", "--host", "0.0.0.0", "--port", "8000"]

# Batcher and analytics: the same code plus the analytics extra (ClickHouse client, UA parsing).
FROM build AS analytics-build
RUN /opt/venv/bin/pip install ".[analytics]"

FROM python:3.11-slim AS analytics
RUN useradd --system --uid 10001 --home /var/lib/invite --create-home invite
COPY --from=analytics-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH INVITE_DATA_DIR=/var/lib/invite INVITE_LOG_FORMAT=json PYTHONUNBUFFERED=1
USER invite
WORKDIR /var/lib/invite
EXPOSE 8001
CMD ["invite", "analytics", "--host", "0.0.0.0", "--port", "8001"]
