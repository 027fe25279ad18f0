#!/usr/bin/env bash
# cri-test.sh - capsa through containerd's CRI plugin, driven as a kubelet drives it: the
# tests of integration/cri (a Rust CRI v1 client on containerd's socket) against a private
# containerd (hack/cri-env.sh), once per runtime handler, then the probe stress test.
#
# Usage (as root):  bash hack/cri-test.sh [TEST-FILTER...]
#
# Environment:
#   CRI_TEST_HANDLERS  handlers to test (default "capsa runc": our shim driving capsa, and
#                      the Go runc shim driving capsa; also: runc-runc, capsa-runc)
#   CRI_STRESS=0       skip the stress test (integration/cri/tests/cri/stress.rs); its size:
#                      CRI_STRESS_PODS (4), CRI_STRESS_SECONDS (20), CRI_STRESS_INTERVAL_MS
#   CRI_TEST_THREADS   parallel tests (default 3)
#   CRI_CAPSA, CRI_SHIM  the binaries (default target/release/capsa and
#                      target/release/containerd-shim-capsa-v2, built here)
#   SKIP_APT=1         do not install packages
# The CRI client's build needs protoc (protobuf-compiler), installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '[cri-test] %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

if [ "${SKIP_APT:-0}" != 1 ]; then
  bash hack/apt-need.sh cri-test containerd runc busybox-static util-linux procps protobuf-compiler
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# The binaries under test (a no-op after CI's build tier) and the tests (debug: the gRPC
# stack builds much faster without the release profile's LTO).
[ -n "${CRI_CAPSA:-}${CRI_SHIM:-}" ] || cargo build -j2 --release --workspace --locked >&2
cargo test -j2 -p cri-tests --locked --no-run >&2

ENV_DIR=
cleanup() {
  [ -n "$ENV_DIR" ] && SKIP_APT=1 bash hack/cri-env.sh stop "$ENV_DIR" || true
  # The tests' cgroup parents (each test removes its pods'; the per-process top stays).
  local d
  for d in /sys/fs/cgroup/*/capsa-cri-test-* /sys/fs/cgroup/capsa-cri-test-*; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}
trap cleanup EXIT
exports=$(SKIP_APT=1 bash hack/cri-env.sh start)
eval "$exports"
ENV_DIR=$CRI_ENV_DIR

rc=0
for h in ${CRI_TEST_HANDLERS:-capsa runc}; do
  log "handler $h: CRI tests"
  CRI_TEST_HANDLER=$h cargo test -j2 -p cri-tests --locked --test cri -- --ignored \
    --test-threads="${CRI_TEST_THREADS:-3}" --skip stress:: --skip bench:: "$@" || rc=1
done
if [ "${CRI_STRESS:-1}" != 0 ] && [ $# -eq 0 ]; then
  for h in ${CRI_TEST_HANDLERS:-capsa runc}; do
    log "handler $h: probe stress test"
    CRI_TEST_HANDLER=$h cargo test -j2 -p cri-tests --locked --test cri -- --ignored \
      --exact stress::probes_under_load --nocapture || rc=1
  done
fi
exit $rc
