# Sourced by run.sh and test.sh: settings for a single machine without a registry.
# Local base images (scripts/base-images.sh) stand in for python:3.X; nothing is pulled.
# (Plain assignments: a "}" inside ${VAR:=...} would end the expansion early.)
[ -n "${IMAGEBUILDER_BUILDER_IMAGE_TEMPLATE:-}" ] ||
    IMAGEBUILDER_BUILDER_IMAGE_TEMPLATE='imagebuilder/python-builder:{version}'
[ -n "${IMAGEBUILDER_RUNTIME_IMAGE_TEMPLATE:-}" ] ||
    IMAGEBUILDER_RUNTIME_IMAGE_TEMPLATE='imagebuilder/python:{version}'
: "${IMAGEBUILDER_PULL_BASE_IMAGES:=false}"
# BuildKit builds need the Docker 20.10 CLI from Debian's docker.io (it has BuildKit built in).
if [ -z "${IMAGEBUILDER_DOCKER_CLI:-}" ] && [ -x /usr/bin/docker ]; then
    IMAGEBUILDER_DOCKER_CLI=/usr/bin/docker
fi
# Package downloads inside builds trust what this host trusts (a TLS-inspecting proxy, say).
if [ -z "${IMAGEBUILDER_CA_BUNDLE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    IMAGEBUILDER_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
fi
export IMAGEBUILDER_BUILDER_IMAGE_TEMPLATE IMAGEBUILDER_RUNTIME_IMAGE_TEMPLATE \
    IMAGEBUILDER_PULL_BASE_IMAGES IMAGEBUILDER_DOCKER_CLI IMAGEBUILDER_CA_BUNDLE
