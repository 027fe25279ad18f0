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
#              CAPSA_RUNTIME      the capsa binary build tests run RUN steps with (default
#                                 $RUNTIME when that is capsa, else a debug build of it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CAPSA_TEST_IMAGES=${CAPSA_TEST_IMAGES:-${CAPSA_CACHE:-/var/tmp/capsa-cache}/images}
[ "$(id -u)" = 0 ] || { echo "image-test.sh: run as root" >&2; exit 1; }

PKGS=(busybox-static umoci runc containerd podman buildah conmon netavark skopeo debootstrap
      debian-archive-keyring jq tar gzip uidmap docker-registry apache2-utils openssl
      fuse-overlayfs slirp4netns)
bash hack/apt-need.sh image-test "${PKGS[@]}"

# the test images (make-images.sh returns at once when they are built)
bash hack/make-images.sh "$CAPSA_TEST_IMAGES" >&2

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# capsa-image build runs RUN steps with capsa
if [ -z "${CAPSA_RUNTIME:-}" ]; then
  if [ "$(basename "${RUNTIME:-}")" = capsa ]; then
    CAPSA_RUNTIME=$(realpath "$RUNTIME")
  else
    cargo build -j2 -p capsa
    CAPSA_RUNTIME=$CARGO_TARGET_DIR/debug/capsa
  fi
fi
export CAPSA_RUNTIME
# the dependencies on the unpack path (sha256, inflate, zstd, tar) optimized, the rest and
# this crate in debug: the real-image and registry tests hash and unpack ~1 GB, about 10x
# slower with those unoptimized; optimizing every dependency (tokio, hyper, rustls…) too
# would only lengthen the build
OPT=()
for c in ring flate2 zlib-rs zstd zstd-safe zstd-sys tar sha2; do
  OPT+=(--config "profile.dev.package.$c.opt-level=3")
done
cargo test -j2 "${OPT[@]}" -p capsa-image -- --include-ignored --test-threads=2
