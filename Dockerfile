# imagebuilder's own image: one image for the API, the worker, the beat/sweeper and migrations
# (the command picks the role; see docker-compose.yml).
#
#   DOCKER_BUILDKIT=1 docker build --secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt \
#       -t imagebuilder/service .
#
# Bases are build arguments: the defaults are the official images; where no registry can be
# reached, scripts/service-image.sh passes the local stand-ins (scripts/base-images.sh).
# DOCKER_CLI_IMAGE provides a Docker CLI with BuildKit at DOCKER_CLI_PATH for the worker.
ARG BUILDER_IMAGE=python:3.11
ARG BASE_IMAGE=python:3.11-slim
ARG DOCKER_CLI_IMAGE=docker:27-cli

FROM ${DOCKER_CLI_IMAGE} AS docker-cli

FROM ${BUILDER_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/imagebuilder
WORKDIR /src
# Dependencies first, exactly as locked (versions and hashes; `make lock` renews the lock), keyed by
# the lock only: a code change does not reinstall them.
COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    /opt/imagebuilder/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY core core
COPY adapters adapters
COPY app app
COPY worker worker
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi; \
    /opt/imagebuilder/bin/pip install --no-deps . && \
    /opt/imagebuilder/bin/python -m compileall -q /opt/imagebuilder

FROM ${BASE_IMAGE} AS service
ARG DOCKER_CLI_PATH=/usr/local/bin/docker
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/imagebuilder/bin:$PATH \
    IMAGEBUILDER_DATA_DIR=/data IMAGEBUILDER_DOCKER_CLI=/usr/local/bin/docker \
    IMAGEBUILDER_HOST=0.0.0.0
RUN echo 'imagebuilder:x:10001:10001:imagebuilder:/data:/usr/sbin/nologin' >> /etc/passwd && \
    echo 'imagebuilder:x:10001:' >> /etc/group && \
    mkdir -p /data /srv/imagebuilder && chown 10001:10001 /data
COPY --from=docker-cli ${DOCKER_CLI_PATH} /usr/local/bin/docker
COPY --from=build /opt/imagebuilder /opt/imagebuilder
WORKDIR /srv/imagebuilder
COPY alembic.ini ./
COPY migrations migrations
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["python3", "-m", "app.serve", "--proxy-headers"]
