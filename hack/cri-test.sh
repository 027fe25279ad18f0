#!/usr/bin/env bash
# cri-test.sh - capsa through containerd's CRI plugin, driven as a kubelet drives it: the
# tests of integration/cri (a Rust CRI v1 client on containerd's socket) against a private
# containerd (hack/cri-env.sh), once per runtime handler, then the probe stress test; then
# a subset of the same in the pure cgroup v2 VM (hack/cgv2-vm.sh) unless SKIP_CGV2=1.
#
# Usage (as root):  bash hack/cri-test.sh [TEST-FILTER...]   (a filter: no stress, no VM)
#                   bash hack/cri-test.sh --cgv2               only the VM part
#
# Environment:
#   CRI_TEST_HANDLERS  handlers to test (default "capsa runc": our shim driving capsa, and
#                      the Go runc shim driving capsa; also: runc-runc, capsa-runc)
#   CRI_TESTS=0        only the stress test
#   CRI_STRESS=0       skip the stress test (integration/cri/tests/cri/stress.rs); its size:
#                      CRI_STRESS_PODS (4), CRI_STRESS_SECONDS (20), CRI_STRESS_INTERVAL_MS
#   CRI_TEST_THREADS   parallel tests (default 3; 1 in the VM)
#   CRI_VM_TESTS       the VM's subset (default: below); the VM's stress test is 2 pods, 20 s
#   CRI_CAPSA, CRI_SHIM  the binaries (default target/release/capsa and
#                      target/release/containerd-shim-capsa-v2, built here)
#   SKIP_CGV2=1        no VM part;   SKIP_APT=1  do not install packages
# The CRI client's build needs protoc (protobuf-compiler), installed here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '[cri-test] %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

# In the VM: cgroup reads (v2 files), OOM, stats, teardown, a shared pid namespace.
VM_TESTS=${CRI_VM_TESTS:-resources:: lifecycle::nothing_left_after_remove_pod_sandbox namespaces::shared_pid_namespace}
MODE=host
case ${1:-} in
  --cgv2) MODE=vm; shift ;;
  --guest) MODE=guest; shift ;;   # inside the VM (internal): prebuilt binaries, no cargo
esac

# One handler's tests: through cargo on the host, the prebuilt binary in the VM.
run_tests() {
  local h=$1; shift
  if [ -n "${CRI_TEST_BIN:-}" ]; then
    CRI_TEST_HANDLER=$h "$CRI_TEST_BIN" --ignored "$@"
  else
    CRI_TEST_HANDLER=$h cargo test -j2 -p cri-tests --locked --test cri -- --ignored "$@"
  fi
}

# Starts the private containerd, runs the tests of every handler and the stress test.
run_all() {
  local stress=$1; shift
  local env_dir=""
  cleanup() {
    [ -n "$env_dir" ] && SKIP_APT=1 bash hack/cri-env.sh stop "$env_dir" || true
    # The tests' cgroup parents (each test removes its pods'; the per-process top stays).
    local d
    for d in /sys/fs/cgroup/*/capsa-cri-test-* /sys/fs/cgroup/capsa-cri-test-*; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    return 0
  }
  trap cleanup EXIT
  local exports; exports=$(SKIP_APT=1 bash hack/cri-env.sh start)
  eval "$exports"
  env_dir=$CRI_ENV_DIR
  local rc=0 h
  for h in ${CRI_TEST_HANDLERS:-capsa runc}; do
    [ "${CRI_TESTS:-1}" != 0 ] || break
    log "handler $h: CRI tests"
    run_tests "$h" --test-threads="${CRI_TEST_THREADS:-3}" --skip stress:: --skip bench:: "$@" || rc=1
  done
  if [ "$stress" = 1 ] && [ "${CRI_STRESS:-1}" != 0 ]; then
    for h in ${CRI_TEST_HANDLERS:-capsa runc}; do
      log "handler $h: probe stress test"
      run_tests "$h" --exact stress::probes_under_load --nocapture || rc=1
    done
  fi
  cleanup
  trap - EXIT
  return $rc
}

if [ $MODE = guest ]; then
  # shellcheck disable=SC2086
  CRI_TEST_THREADS=${CRI_TEST_THREADS:-1} run_all 1 $VM_TESTS
  exit
fi

if [ "${SKIP_APT:-0}" != 1 ]; then
  bash hack/apt-need.sh cri-test containerd runc busybox-static util-linux procps jq protobuf-compiler
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# The binaries under test (a no-op after CI's build tier) and the tests (debug: the gRPC
# stack builds much faster without the release profile's LTO).
[ -n "${CRI_CAPSA:-}${CRI_SHIM:-}" ] || cargo build -j2 --release --workspace --locked >&2
cargo test -j2 -p cri-tests --locked --no-run >&2

# The VM part: build here (the guest is emulated), stage the binaries in the repo (the
# guest hides the host's /tmp), run this script inside with --guest.
vm_part() {
  if [ ! -f hack/cgv2-vm.sh ]; then
    log "SKIPPED: the cgroup v2 VM part needs hack/cgv2-vm.sh"
    return 0
  fi
  local stage=$ROOT/target/cri-vm
  rm -rf "$stage" && mkdir -p "$stage"
  cp "${CRI_CAPSA:-$ROOT/target/release/capsa}" "$stage/capsa"
  cp "${CRI_SHIM:-$ROOT/target/release/containerd-shim-capsa-v2}" "$stage/containerd-shim-capsa-v2"
  local bin
  bin=$(cargo test -j2 -p cri-tests --locked --test cri --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "cri" and .executable != null) | .executable' | tail -1)
  [ -x "$bin" ] || { log "could not build the CRI test binary"; return 1; }
  cp "$bin" "$stage/cri"
  SKIP_APT=1 bash hack/cri-env.sh pause "$stage/pause"
  log "CRI tests in the cgroup v2 VM: $VM_TESTS, stress 2 pods 20 s"
  CGV2VM_TIMEOUT=${CGV2VM_TIMEOUT:-1800} bash hack/cgv2-vm.sh "$ROOT" -- env SKIP_APT=1 \
    CRI_CAPSA="$stage/capsa" CRI_SHIM="$stage/containerd-shim-capsa-v2" CRI_TEST_BIN="$stage/cri" \
    CRI_PAUSE_BIN="$stage/pause" CRI_STRESS_PODS="${CRI_VM_STRESS_PODS:-2}" \
    CRI_STRESS_SECONDS="${CRI_VM_STRESS_SECONDS:-20}" CRI_VM_TESTS="$VM_TESTS" \
    bash "$ROOT/hack/cri-test.sh" --guest
}

if [ $MODE = vm ]; then
  vm_part
  exit
fi
rc=0
run_all "$([ $# -eq 0 ] && echo 1 || echo 0)" "$@" || rc=1
if [ $# -eq 0 ] && [ "${SKIP_CGV2:-0}" != 1 ]; then
  vm_part || rc=1
fi
exit $rc
