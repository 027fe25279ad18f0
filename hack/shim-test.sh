#!/usr/bin/env bash
# shim-test.sh - the containerd shim's tests against a real, private containerd 1.6.
#
# Usage (as root):  bash hack/shim-test.sh [cargo test args...]
#                   bash hack/shim-test.sh --rss   (benchmark: idle shim memory, ours vs
#                                                   containerd-shim-runc-v2, static release build)
#
# Installs what the tests need (apt: containerd runc busybox-static util-linux),
# builds containerd-shim-capsa-v2, starts a private containerd (hack/containerd-env.sh
# in a work dir of its own), imports a busybox docker-archive built here from
# busybox-static (no registry), runs shim/tests (ignored by a plain `cargo test`), then
# stops containerd, removes the test cgroup parents and the work dir.
#
# Environment:
#   SHIM_TEST_RUNTIME   runtime binary the shim drives (BinaryName), default: runc
#   SHIM_TEST_WORK      work dir, kept (default: a new one, mktemp -d /tmp/capsa-shim.XXXXXX,
#                       removed at the end; short, for containerd's socket path)
#   SHIM_TEST_SHIM_BIN  use this shim binary instead of building one
#   SKIP_APT=1          do not apt-get
#
#   bash hack/shim-test.sh --bench (benchmark: `ctr run --rm IMAGE true`, mean ms of
#       SHIM_BENCH_N (20) runs, interleaved: our shim and the Go runc shim, each
#       driving runc and SHIM_BENCH_CAPSA (default: capsa on PATH); release build)
#   bash hack/shim-test.sh --cgv2 [args...]   the same tests inside hack/cgv2-vm.sh
#       (pure cgroup v2 guest; software emulation: about 5 minutes); CRIU is required
#       there (the checkpoint tests); SHIM_TEST_VM_INIT=systemd boots the guest with
#       systemd as PID 1 (the SystemdCgroup test then runs, and must)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# containerd namespace, and so the cgroup parent of the containers: one per run
export SHIM_TEST_NAMESPACE=${SHIM_TEST_NAMESPACE:-capsa-shim-test-$$}
log() { printf '[shim-test] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

if [ "${SKIP_APT:-0}" != 1 ]; then
  bash hack/apt-need.sh shim-test containerd runc busybox-static util-linux
fi

MODE=test
[ "${1:-}" = --rss ] && { MODE=rss; shift; }
[ "${1:-}" = --bench ] && { MODE=bench; shift; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "${1:-}" = --cgv2 ]; then
  shift
  # Build here: compiling inside the emulated guest would take ages.
  [ -n "${SHIM_TEST_SHIM_BIN:-}" ] || cargo build -j2 -p containerd-shim-capsa-v2 >&2
  cargo test -j2 -p containerd-shim-capsa-v2 --test ctr --no-run >&2
  # SHIM_TEST_VM_INIT=systemd: systemd as the guest's PID 1 (SystemdCgroup = true tested)
  init=${SHIM_TEST_VM_INIT:-shell} req=(SHIM_TEST_REQUIRE_CRIU=1)
  [ "$init" = systemd ] && req+=(SHIM_TEST_REQUIRE_SYSTEMD=1)
  exec bash hack/cgv2-vm.sh --init "$init" "$ROOT" -- env SKIP_APT=1 "${req[@]}" \
    bash "$ROOT/hack/shim-test.sh" "$@"
fi
if [ -n "${SHIM_TEST_WORK:-}" ]; then
  WORK=$SHIM_TEST_WORK KEEP_WORK=1
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/capsa-shim.XXXXXX) KEEP_WORK=0
fi
export CTRD_DIR=$WORK/containerd
if [ -n "${SHIM_TEST_SHIM_BIN:-}" ]; then
  SHIM_BIN=$SHIM_TEST_SHIM_BIN
elif [ $MODE != test ]; then
  # The shipped shim (hack/build-dist.sh: small, statically linked).
  SHIM_BIN=$(bash hack/build-dist.sh | grep 'containerd-shim-capsa-v2$')
else
  cargo build -j2 -p containerd-shim-capsa-v2 >&2
  SHIM_BIN=$CARGO_TARGET_DIR/debug/containerd-shim-capsa-v2
fi

# A one-layer busybox image as a docker-archive, built from busybox-static.
build_image() {
  local out=$1 d; d=$(mktemp -d "$WORK/img.XXXXXX")
  mkdir -p "$d/rootfs/bin" "$d/rootfs/etc" "$d/rootfs/tmp" "$d/rootfs/proc" "$d/rootfs/sys" "$d/rootfs/dev"
  cp /bin/busybox "$d/rootfs/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$d/rootfs/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$d/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$d/rootfs/etc/group"
  tar --numeric-owner --owner=0 --group=0 -C "$d/rootfs" -cf "$d/layer.tar" .
  local diff; diff=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
  mkdir -p "$d/arch/$diff"; mv "$d/layer.tar" "$d/arch/$diff/layer.tar"
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$diff" > "$d/config.json"
  local cfg; cfg=$(sha256sum "$d/config.json" | cut -d' ' -f1)
  mv "$d/config.json" "$d/arch/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["localhost/shim-busybox:latest"],"Layers":["%s/layer.tar"]}]' \
    "$cfg" "$diff" > "$d/arch/manifest.json"
  tar -C "$d/arch" -cf "$out.tmp" . && mv "$out.tmp" "$out"
  rm -rf "$d"
}

mkdir -p "$CTRD_DIR/bin"
IMAGE_TAR=$WORK/shim-busybox.docker.tar
[ -s "$IMAGE_TAR" ] || build_image "$IMAGE_TAR"
ln -sf "$SHIM_BIN" "$CTRD_DIR/bin/containerd-shim-capsa-v2"

cleanup() {
  bash hack/containerd-env.sh stop || true
  # the runtime leaves the namespace's parent cgroup: remove our parents only
  for d in /sys/fs/cgroup/*/"$SHIM_TEST_NAMESPACE" /sys/fs/cgroup/"$SHIM_TEST_NAMESPACE"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  # the work dir, unless kept or something is still mounted under it
  if [ "$KEEP_WORK" = 0 ] && ! grep -qF " $WORK/" /proc/self/mounts; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

SOCK=$(bash hack/containerd-env.sh start)
export CONTAINERD_ADDRESS=$SOCK
ctr -a "$SOCK" -n "$SHIM_TEST_NAMESPACE" images import "$IMAGE_TAR" >&2
export SHIM_TEST_IMAGE=localhost/shim-busybox:latest SHIM_TEST_CTRD_DIR=$CTRD_DIR
# the test binaries' own files (runtime configs, log binaries), removed with the work dir
export SHIM_TEST_TMP=$WORK/tests
export SHIM_TEST_RUNTIME=${SHIM_TEST_RUNTIME:-runc}
log "runtime: $SHIM_TEST_RUNTIME, containerd: $SOCK"

# Idle resident memory of a shim holding one `sleep` container, 3 of each kind.
rss_bench() {
  local C=(ctr -a "$SOCK" -n "$SHIM_TEST_NAMESPACE") cfg=$WORK/rss-runtime.toml i kind pid
  echo "BinaryName = \"$(command -v "$SHIM_TEST_RUNTIME")\"" > "$cfg"
  for i in 1 2 3; do
    "${C[@]}" run -d --runtime io.containerd.capsa.v2 --runtime-config-path "$cfg" \
      "$SHIM_TEST_IMAGE" "rss-capsa-$i" sleep 1000 </dev/null
    "${C[@]}" run -d --runtime io.containerd.runc.v2 --runc-binary "$SHIM_TEST_RUNTIME" \
      "$SHIM_TEST_IMAGE" "rss-runc-$i" sleep 1000 </dev/null
  done
  sleep 2 # idle
  # VmRSS counts the shared text of the binary in full in every shim; Pss divides
  # shared pages among the processes mapping them (here 3 shims of a kind).
  printf '%-28s %-8s %10s %10s %10s %8s\n' shim container VmRSS_kB RssAnon_kB Pss_kB threads
  for kind in capsa runc; do
    for i in 1 2 3; do
      pid=$(pgrep -f -- "containerd-shim-$kind-v2 .*-id rss-$kind-$i( |\$)" | head -1)
      printf '%-28s %-8s %10s %10s %10s %8s\n' "containerd-shim-$kind-v2" "rss-$kind-$i" \
        "$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")" "$(awk '/^RssAnon/{print $2}' "/proc/$pid/status")" \
        "$(awk '/^Pss:/{print $2}' "/proc/$pid/smaps_rollup")" "$(awk '/^Threads/{print $2}' "/proc/$pid/status")"
    done
  done
  for kind in capsa runc; do for i in 1 2 3; do
    "${C[@]}" task kill -s SIGKILL "rss-$kind-$i" >/dev/null 2>&1 || true
  done; done
  for kind in capsa runc; do for i in 1 2 3; do
    for _ in $(seq 1 50); do "${C[@]}" task delete "rss-$kind-$i" >/dev/null 2>&1 && break; sleep 0.1; done
    "${C[@]}" container delete "rss-$kind-$i" >/dev/null 2>&1 || true
  done; done
}
# Mean wall time of `ctr run --rm IMAGE true` per shim+runtime pair.
run_bench() {
  local n=${SHIM_BENCH_N:-20} capsa i k t0 t1
  capsa=$(command -v "${SHIM_BENCH_CAPSA:-capsa}") || { log "no capsa binary"; exit 1; }
  local runc; runc=$(command -v runc)
  echo "BinaryName = \"$capsa\"" > "$WORK/bench-capsa.toml"
  echo "BinaryName = \"$runc\"" > "$WORK/bench-runc.toml"
  local names=("capsa-shim+capsa" "capsa-shim+runc" "runc-shim+capsa" "runc-shim+runc")
  local args=("--runtime io.containerd.capsa.v2 --runtime-config-path $WORK/bench-capsa.toml"
              "--runtime io.containerd.capsa.v2 --runtime-config-path $WORK/bench-runc.toml"
              "--runtime io.containerd.runc.v2 --runc-binary $capsa"
              "--runtime io.containerd.runc.v2 --runc-binary $runc")
  local total=(0 0 0 0)
  for i in $(seq 0 "$n"); do
    for k in 0 1 2 3; do
      t0=$(date +%s%N)
      # shellcheck disable=SC2086
      ctr -a "$SOCK" -n "$SHIM_TEST_NAMESPACE" run --rm ${args[$k]} "$SHIM_TEST_IMAGE" \
        "bench-$k-$i" true </dev/null >/dev/null || { log "run failed: ${names[$k]}"; exit 1; }
      t1=$(date +%s%N)
      [ "$i" = 0 ] || total[$k]=$(( ${total[$k]} + t1 - t0 ))  # run 0 warms up
    done
  done
  printf '%-20s %8s %8s\n' pair mean_ms vs_runc
  for k in 0 1 2 3; do
    awk -v n="${names[$k]}" -v t="${total[$k]}" -v b="${total[3]}" -v c="$n" \
      'BEGIN{printf "%-20s %8.1f %8.2f\n", n, t/c/1e6, t/b}'
  done
}
if [ $MODE = rss ]; then rss_bench; exit 0; fi
if [ $MODE = bench ]; then run_bench; exit 0; fi

cargo test -j2 -p containerd-shim-capsa-v2 --test ctr -- --ignored --test-threads=1 "$@"
