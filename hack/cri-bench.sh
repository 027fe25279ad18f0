#!/usr/bin/env bash
# cri-bench.sh - pod start and ExecSync latency through containerd's CRI, per runtime
# handler side by side in one run, as ratios against the Go runc shim driving runc:
#   capsa       containerd-shim-capsa-v2 + capsa
#   capsa-runc  containerd-shim-capsa-v2 + runc
#   runc        containerd-shim-runc-v2 + capsa
#   runc-runc   containerd-shim-runc-v2 + runc   (the reference)
# pod start = RunPodSandbox + CreateContainer + StartContainer until ContainerStatus says
# running; exec = ExecSync `true` in a running container. Interleaved, one warm-up round.
# The code is integration/cri/tests/cri/bench.rs; the private containerd is hack/cri-env.sh.
#
# Usage (as root):  bash hack/cri-bench.sh
# Environment: CRI_BENCH_PODS (20), CRI_BENCH_EXECS (100), CRI_BENCH_HANDLERS (the four),
#              CRI_CAPSA, CRI_SHIM (default: the release builds in target/), SKIP_APT=1
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "cri-bench: must run as root" >&2; exit 1; }
[ "${SKIP_APT:-0}" = 1 ] ||
  bash hack/apt-need.sh cri-bench containerd runc busybox-static util-linux protobuf-compiler
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
[ -n "${CRI_CAPSA:-}${CRI_SHIM:-}" ] || cargo build -j2 --release --workspace --locked >&2
cargo test -j2 -p cri-tests --locked --no-run >&2
ENV_DIR=
cleanup() {
  [ -n "$ENV_DIR" ] && SKIP_APT=1 bash hack/cri-env.sh stop "$ENV_DIR" || true
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
echo "capsa $("${CRI_CAPSA:-target/release/capsa}" --version | head -1), $(runc --version | head -1), $(containerd --version | awk '{print $3}'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo test -j2 -p cri-tests --locked --test cri -- --ignored --exact \
  bench::pod_start_and_exec_latency --nocapture --test-threads=1 2>&1 |
  grep -v -E '^(running|test |$)|test result'
