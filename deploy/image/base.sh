#!/bin/sh
# Make a local base image for the QMK image where no registry can be pulled from:
# a minimal Debian (debootstrap --variant=minbase, from the apt mirror this machine
# already uses) with Python 3 and its venv module, imported into podman as TAG.
#
#   deploy/image/base.sh [TAG]        (default localhost/qmk-base:bookworm; needs root)
#
# Where a registry is reachable, skip this and build on an official Python image:
#   make image BASE_IMAGE=docker.io/library/python:3.12-slim
set -eu
TAG=${1:-localhost/qmk-base:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

if podman image exists "$TAG"; then
	echo "base image $TAG exists"
	exit 0
fi
command -v debootstrap >/dev/null || { echo "base.sh: debootstrap is not installed" >&2; exit 1; }
ROOT=$(mktemp -d /var/tmp/qmk-base.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT
echo "debootstrap $SUITE from $MIRROR into $ROOT"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
	"$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 || { tail -n 20 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"
# what an image does not need: apt's lists and caches, docs
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
	"$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/*
tar -C "$ROOT" -c . | podman import \
	--change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$TAG"
echo "made base image $TAG"
