#!/usr/bin/env bash
# image-test.sh - capsa-image's tests: unit + synthetic-image tests, then the tests on the
# images hack/make-images.sh builds (three formats vs `umoci unpack`; commit run by
# containerd and podman). Installs what they need (apt-get update first), builds the images
# (cached in $CAPSA_TEST_IMAGES, built only when missing), runs as root.
#
# Usage: bash hack/image-test.sh
# Environment: CAPSA_TEST_IMAGES  the images (default $CAPSA_CACHE/images, CAPSA_CACHE
#                                 default /var/tmp/capsa-cache)
#              RUNTIME            runtime of the commit test (default runc)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CAPSA_TEST_IMAGES=${CAPSA_TEST_IMAGES:-${CAPSA_CACHE:-/var/tmp/capsa-cache}/images}
[ "$(id -u)" = 0 ] || { echo "image-test.sh: run as root" >&2; exit 1; }

PKGS=(busybox-static umoci runc containerd podman buildah conmon netavark debootstrap
      debian-archive-keyring jq tar gzip uidmap)
bash hack/apt-need.sh image-test "${PKGS[@]}"

# the test images (make-images.sh returns at once when they are built)
bash hack/make-images.sh "$CAPSA_TEST_IMAGES" >&2

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# dependencies (sha256, inflate, tar) optimized, this crate in debug: the real-image tests
# hash and unpack ~300 MB, about 10x slower with unoptimized dependencies
cargo test -j2 --config 'profile.dev.package."*".opt-level=3' -p capsa-image -- \
  --include-ignored --test-threads=2
