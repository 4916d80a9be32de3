#!/bin/sh
# Build the QMK image TAG (default localhost/qmk:latest) from the Containerfile at the
# repository root, unless an image of that tag was already built from the same sources:
# the build context's SHA-256 is the image's label org.qmk.source, so a changed file
# rebuilds and an unchanged tree reuses the image (tests/deploy/test_image.py relies on it).
#
#   deploy/image/build.sh [TAG]
#   BASE_IMAGE=...   the base (default: the Containerfile's, an official Python image)
#   PODMAN_FLAGS=... extra flags for podman (e.g. --runtime runc)
#   FORCE=1          build even when the label matches
set -eu
cd "$(dirname "$0")/../.."
TAG=${1:-localhost/qmk:latest}
# What .containerignore lets into the context, hashed by path and content.
SOURCE=$(find Containerfile .containerignore pyproject.toml README.md src examples/kernel.toml \
	-type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print | LC_ALL=C sort \
	| xargs sha256sum | sha256sum | cut -c1-64)
PODMAN_FLAGS=${PODMAN_FLAGS:-}
BUILT=$(podman $PODMAN_FLAGS image inspect --format '{{ index .Labels "org.qmk.source" }}' "$TAG" 2>/dev/null || true)
OLD=$(podman $PODMAN_FLAGS image inspect --format '{{ .Id }}' "$TAG" 2>/dev/null || true)
if [ "${FORCE:-0}" != 1 ] && [ "$BUILT" = "$SOURCE" ]; then
	echo "image $TAG is up to date (source $SOURCE)"
	exit 0
fi
set -- --tag "$TAG" --label "org.qmk.source=$SOURCE" --file Containerfile
[ -n "${BASE_IMAGE:-}" ] && set -- "$@" --build-arg "BASE_IMAGE=$BASE_IMAGE"
# pip inside the build trusts what the host trusts (a TLS-inspecting proxy's CA)
for ca in ${CA_BUNDLE:-} /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
	if [ -s "$ca" ]; then set -- "$@" --secret "id=ca,src=$ca"; break; fi
done
echo "building $TAG (source $SOURCE)"
podman $PODMAN_FLAGS build ${BUILD_FLAGS:-} "$@" .
# the image this one replaces goes, unless a container still uses it
NEW=$(podman $PODMAN_FLAGS image inspect --format '{{ .Id }}' "$TAG")
if [ -n "$OLD" ] && [ "$OLD" != "$NEW" ]; then
	podman $PODMAN_FLAGS rmi "$OLD" >/dev/null 2>&1 || true
fi
