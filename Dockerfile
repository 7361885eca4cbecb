# The fairuse image for docker-compose.yml's one-shot and long-running services
# (topics, worker, sink, simulator): `docker compose build`, then e.g.
# `docker compose run --rm simulator simulate --events 1000 --out -`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FAIRUSE_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --create-home --uid 10001 fairuse \
    && mkdir -p /data \
    && chown fairuse /data

USER fairuse
VOLUME ["/data"]
ENTRYPOINT ["fairuse"]
CMD ["--help"]
