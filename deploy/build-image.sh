#!/usr/bin/env bash
# Builds the flowscope agent image from this checkout with deploy/Dockerfile.
#   deploy/build-image.sh [IMAGE]        default IMAGE: flowscope:<workspace version>
# Needs a Docker engine with BuildKit (Docker 23+). Not part of the test suite or CI.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
image=${1:-flowscope:${version:-dev}}

if ! command -v docker >/dev/null 2>&1; then
  echo "build-image.sh: no \`docker\` command here; install Docker (with BuildKit) to build $image," >&2
  echo "  or build deploy/Dockerfile with any BuildKit builder, context = the repository root." >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "build-image.sh: \`docker\` is installed but no Docker engine answers (is dockerd running," >&2
  echo "  and may this user use it?). Nothing was built." >&2
  exit 1
fi

echo "build-image.sh: building $image from $(pwd)" >&2
DOCKER_BUILDKIT=1 docker build -f deploy/Dockerfile -t "$image" .
echo "build-image.sh: built $image. On a cluster: push it, then" >&2
echo "  (cd deploy/kubernetes/base && kustomize edit set image flowscope=REGISTRY/$image)  # or an overlay of yours" >&2
