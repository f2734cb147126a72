#!/usr/bin/env bash
# Build imagebuilder's own image on a machine without a registry: the bases and the Docker CLI come
# from local images (scripts/base-images.sh; a CLI image made from this host's /usr/bin/docker).
#
#   scripts/service-image.sh [TAG]        (default imagebuilder/service:local)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-imagebuilder/service:local}
docker=${IMAGEBUILDER_DOCKER_CLI:-/usr/bin/docker}
cli_image=imagebuilder/docker-cli:local

if ! "$docker" image inspect "$cli_image" >/dev/null 2>&1; then
    # The Debian CLI links only against libc: the one file is all the image needs.
    tar -C / -cf - usr/bin/docker | "$docker" import - "$cli_image" >/dev/null
fi
secret=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    secret=(--secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt)
fi
DOCKER_BUILDKIT=1 "$docker" build --quiet "${secret[@]}" \
    --build-arg BUILDER_IMAGE=imagebuilder/python-builder:3.11 \
    --build-arg BASE_IMAGE=imagebuilder/python:3.11 \
    --build-arg DOCKER_CLI_IMAGE="$cli_image" \
    --build-arg DOCKER_CLI_PATH=/usr/bin/docker \
    -t "$tag" . >/dev/null
echo "service-image: $tag"
