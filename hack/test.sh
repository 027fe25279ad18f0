#!/usr/bin/env bash
# The project's test command (README.md). Run as root on a fresh Debian 12 machine: it
# installs what the tests need, builds, and runs every tier, going on after a failing tier
# so one run shows every failure; the exit status is non-zero if any tier failed.
#
#   1. packages          hack/test-deps.sh (apt-get update first; only what is missing)
#   2. build             cargo build --release --workspace
#   3. unit tests        every crate's own tests (no root needed)
#   4. runtime kernel    seccomp filters loaded in forked children (runtime/tests)
#   5. integration       integration/: the built capsa against the real kernel, containerd
#   6. image             hack/image-test.sh (capsa-image against make-images.sh images, umoci,
#                        containerd, podman)
#   7. shim              hack/shim-test.sh: containerd 1.6 + ctr through containerd-shim-capsa-v2,
#                        driving capsa, then the same tests driving runc
#   8. cgroup v2         inside a pure cgroup v2 VM: the runtime's cgroup, exec, events, rootless
#                        tests (hack/cgv2-tests.sh), and the shim's ctr tests driving capsa
#                        (metrics and OOM on v2); SKIP_CGV2=1 skips them
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
failed=()
tier() {
  local name=$1; shift
  printf '\n===== %s: %s\n' "$name" "$*"
  local t0=$SECONDS
  if "$@"; then
    printf '===== %s: ok (%ss)\n' "$name" $((SECONDS - t0))
  else
    printf '===== %s: FAILED (%ss)\n' "$name" $((SECONDS - t0))
    failed+=("$name")
  fi
}

tier packages bash hack/test-deps.sh || true
[ ${#failed[@]} -eq 0 ] || { echo "cannot install the test packages"; exit 1; }
tier build cargo build --release --workspace --locked
[ ${#failed[@]} -eq 0 ] || { echo "build failed"; exit 1; }
tier unit cargo test --release --workspace --locked --lib --bins
# --workspace (not -p capsa): the same feature set as the build, so nothing is rebuilt
tier runtime-kernel cargo test --release --workspace --locked --test seccomp
tier integration env CAPSA_RUNTIME="$PWD/target/release/capsa" \
  cargo test --release --locked -p integration --no-fail-fast
tier image env RUNTIME="$PWD/target/release/capsa" bash hack/image-test.sh
tier shim-capsa env SHIM_TEST_RUNTIME="$PWD/target/release/capsa" bash hack/shim-test.sh
tier shim-runc env SHIM_TEST_RUNTIME=runc bash hack/shim-test.sh
# CRI: containerd 1.6 + CRI as a kubelet drives it, handlers capsa and runc, probe stress (hack/cri-test.sh)
tier cri bash hack/cri-test.sh
# Fuzz config.json validation and layer unpacking for a while (hack/fuzz.sh).
tier fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-90}" bash hack/fuzz.sh
if [ "${SKIP_CGV2:-0}" != 1 ]; then
  tier cgroup-v2 bash hack/cgv2-tests.sh
  tier shim-cgroup-v2 env SHIM_TEST_RUNTIME="$PWD/target/release/capsa" bash hack/shim-test.sh --cgv2
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nFAILED tiers: %s\n' "${failed[*]}"
  exit 1
fi
printf '\nall tiers passed\n'
