#!/usr/bin/env bash
# cri-env.sh - a private containerd 1.6 with its CRI plugin, as a Kubernetes node would
# run it, for the CRI tests (integration/cri) and hack/cri-bench.sh. It never touches the
# system containerd: its own config, root, state, sockets and runtime roots, all under one
# fresh temporary dir.
#
# Usage (as root):
#   eval "$(bash hack/cri-env.sh start)"   start it; prints export lines (below)
#   bash hack/cri-env.sh stop DIR          kill every task it has, stop it, kill its shims,
#                                          unmount and remove DIR
#   bash hack/cri-env.sh pause FILE        only build the pause binary
#
# What `start` sets up in DIR (CRI_ENV_DIR, default a new /tmp/capsa-cri.XXXXXX):
#   - CRI with host-network pods only; restrict_oom_score_adj where root lacks
#     CAP_SYS_RESOURCE (no oom_score_adj below containerd's then): an empty CNI conf dir, no CNI plugin; the streaming
#     server (exec, attach) on 127.0.0.1 at a free port; no AppArmor (Debian has none on).
#   - runtime handlers (a kubelet's RuntimeClass handler names):
#       capsa       io.containerd.capsa.v2 = containerd-shim-capsa-v2 driving capsa
#       runc        io.containerd.runc.v2 (Debian's Go shim) with BinaryName = capsa
#       runc-runc   the Go shim driving runc itself (the benchmark's reference)
#       capsa-runc  our shim driving runc (the benchmark's middle row)
#   - images built here (no registry), imported into the k8s.io namespace:
#       localhost/capsa-pause:1       the sandbox image: integration/cri/pause/pause.rs,
#                                     built with rustc, statically linked
#       localhost/capsa-busybox:1     busybox-static with /etc/passwd and /etc/group
#
# Printed exports: CRI_ENV_DIR, CRI_SOCKET (the CRI endpoint), CRI_PAUSE_IMAGE,
# CRI_TEST_IMAGE, CRI_RUNTIME_ROOTS (the handlers' runtime state roots, space-separated).
#
# Environment for start:
#   CRI_CAPSA   the capsa binary (default <repo>/target/release/capsa)
#   CRI_SHIM    the shim binary (default <repo>/target/release/containerd-shim-capsa-v2)
#   CRI_ENV_DIR use this (new or empty) dir
#   CRI_PAUSE_BIN  a pause binary already built (`bash hack/cri-env.sh pause FILE` builds one)
#   SKIP_APT=1  do not install packages (containerd runc busybox-static util-linux)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '[cri-env] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root"

PAUSE_IMAGE=localhost/capsa-pause:1
TEST_IMAGE=localhost/capsa-busybox:1
NS=k8s.io

# A docker-archive of one layer made from directory $2, tagged $3, image config $4.
docker_archive() {
  local out=$1 rootfs=$2 tag=$3 config=$4 d
  d=$(mktemp -d "$out.XXXXXX")
  tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$d/layer.tar" .
  local diff; diff=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
  mkdir -p "$d/arch/$diff"
  mv "$d/layer.tar" "$d/arch/$diff/layer.tar"
  printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$config" "$diff" > "$d/config.json"
  local cfg; cfg=$(sha256sum "$d/config.json" | cut -d' ' -f1)
  mv "$d/config.json" "$d/arch/$cfg.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
    "$cfg" "$tag" "$diff" > "$d/arch/manifest.json"
  tar -C "$d/arch" -cf "$out" .
  rm -rf "$d"
}

build_pause() {
  rustc --edition 2021 -C opt-level=s -C panic=abort -C strip=symbols \
    -C target-feature=+crt-static "$ROOT/integration/cri/pause/pause.rs" -o "$1" >&2
}

build_images() {
  local dir=$1 r
  r=$(mktemp -d "$dir/rootfs.XXXXXX")
  mkdir -p "$r"/{bin,etc,tmp,proc,sys,dev,root}
  cp /bin/busybox "$r/bin/busybox"
  local a
  for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'app:x:1000:1000:app:/tmp:/bin/sh' \
    'nobody:x:65534:65534:nobody:/:/bin/false' > "$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'app:x:1000:' 'nogroup:x:65534:' > "$r/etc/group"
  chmod 1777 "$r/tmp"
  docker_archive "$dir/images/busybox.tar" "$r" "$TEST_IMAGE" \
    '{"Env":["PATH=/bin"],"Cmd":["sh"]}'
  rm -rf "$r"

  r=$(mktemp -d "$dir/rootfs.XXXXXX")
  if [ -n "${CRI_PAUSE_BIN:-}" ]; then
    cp "$CRI_PAUSE_BIN" "$r/pause"
  else
    build_pause "$r/pause"
  fi
  docker_archive "$dir/images/pause.tar" "$r" "$PAUSE_IMAGE" \
    '{"Entrypoint":["/pause"],"Env":["PATH=/"]}'
  rm -rf "$r"
}

write_config() {
  local dir=$1 capsa=$2 runc=$3 restrict_oom=false
  # CAP_SYS_RESOURCE is bit 24 of the bounding set.
  (( (16#$(awk '/^CapBnd/{print $2}' /proc/self/status) >> 24) & 1 )) || restrict_oom=true
  mkdir -p "$dir"/{root,state,bin,cni/conf,cni/bin,opt,images,capsa-root,runc-root,runc-runc-root,capsa-runc-root}
  # Our shim takes runc-style options from a TOML file (runtimeoptions ConfigPath):
  # CRI sends only TypeUrl/ConfigPath to runtime types it does not know.
  printf 'BinaryName = "%s"\nRoot = "%s"\n' "$capsa" "$dir/capsa-root" > "$dir/capsa.toml"
  printf 'BinaryName = "%s"\nRoot = "%s"\n' "$runc" "$dir/capsa-runc-root" > "$dir/capsa-runc.toml"
  cat > "$dir/config.toml" <<EOF
# private containerd with CRI for capsa's CRI tests (generated by hack/cri-env.sh)
version = 2
root = "$dir/root"
state = "$dir/state"

[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  address = "$dir/debug.sock"
  level = "info"
[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$dir/opt"
  [plugins."io.containerd.snapshotter.v1.overlayfs"]
    root_path = "$dir/root/overlayfs"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMAGE"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_apparmor = true
    # Sandboxes get oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE, which root
    # lacks in some sandboxes (this project's VMs): keep scores >= containerd's own.
    restrict_oom_score_adj = $restrict_oom
    enable_selinux = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$dir/cni/bin"
      conf_dir = "$dir/cni/conf"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "capsa"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa]
        runtime_type = "io.containerd.capsa.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa.options]
          ConfigPath = "$dir/capsa.toml"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "$capsa"
          Root = "$dir/runc-root"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc-runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc-runc.options]
          BinaryName = "$runc"
          Root = "$dir/runc-runc-root"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa-runc]
        runtime_type = "io.containerd.capsa.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.capsa-runc.options]
          ConfigPath = "$dir/capsa-runc.toml"
EOF
}

start() {
  [ "${SKIP_APT:-0}" = 1 ] || bash hack/apt-need.sh cri-env containerd runc busybox-static util-linux
  local capsa=${CRI_CAPSA:-$ROOT/target/release/capsa}
  local shim=${CRI_SHIM:-$ROOT/target/release/containerd-shim-capsa-v2}
  capsa=$(realpath -e "$capsa") || die "no capsa binary (cargo build --release, or CRI_CAPSA)"
  shim=$(realpath -e "$shim") || die "no shim binary (cargo build --release, or CRI_SHIM)"
  local runc; runc=$(command -v runc) || die "runc not installed"
  command -v containerd >/dev/null || die "containerd not installed"
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true

  local dir=${CRI_ENV_DIR:-}
  if [ -z "$dir" ]; then dir=$(mktemp -d /tmp/capsa-cri.XXXXXX); else mkdir -p "$dir"; fi
  dir=$(realpath -e "$dir")
  write_config "$dir" "$capsa" "$runc"
  ln -sf "$shim" "$dir/bin/containerd-shim-capsa-v2"
  build_images "$dir"

  local sock=$dir/containerd.sock
  # containerd finds containerd-shim-capsa-v2 on its PATH (dir/bin first).
  setsid env PATH="$dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    containerd --config "$dir/config.toml" >>"$dir/containerd.log" 2>&1 </dev/null &
  echo $! > "$dir/containerd.pid"
  local up=0
  for _ in $(seq 1 200); do
    if ctr -a "$sock" version >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null || break
    sleep 0.1
  done
  if [ $up = 0 ]; then
    tail -20 "$dir/containerd.log" >&2
    stop "$dir"
    die "containerd did not come up"
  fi
  ctr -a "$sock" plugins ls 2>/dev/null | grep -q 'io.containerd.grpc.v1 *cri *linux/amd64 *ok' ||
    { ctr -a "$sock" plugins ls >&2; stop "$dir"; die "the CRI plugin did not load"; }
  local t
  for t in busybox pause; do
    ctr -a "$sock" -n "$NS" images import "$dir/images/$t.tar" >&2
  done
  log "up: pid $(cat "$dir/containerd.pid"), CRI endpoint $sock, dir $dir"
  cat <<EOF
export CRI_ENV_DIR=$dir
export CRI_SOCKET=$sock
export CRI_PAUSE_IMAGE=$PAUSE_IMAGE
export CRI_TEST_IMAGE=$TEST_IMAGE
export CRI_RUNTIME_ROOTS="$dir/capsa-root $dir/runc-root $dir/runc-runc-root $dir/capsa-runc-root"
EOF
}

# Pids of the shims this containerd started (their -address is our socket).
our_shims() {
  local sock=$1 p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -q -- "-address $sock " && echo "${p#/proc/}"
  done
  return 0
}

stop() {
  local dir=$1 sock=$1/containerd.sock
  [ -f "$dir/config.toml" ] || die "$dir is not a cri-env dir"
  local pid=""
  [ -f "$dir/containerd.pid" ] && pid=$(cat "$dir/containerd.pid")
  # Every call bounded: a hung shim must not hang the teardown (its process is killed below).
  c() { timeout 20 ctr -a "$sock" -n "$NS" "$@"; }
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && timeout 20 ctr -a "$sock" version >/dev/null 2>&1; then
    local t rc
    for t in $(c tasks ls -q 2>/dev/null); do
      c tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    for t in $(c tasks ls -q 2>/dev/null); do
      for _ in $(seq 1 20); do
        rc=0 && c tasks delete "$t" >/dev/null 2>&1 || rc=$?
        { [ $rc = 0 ] || [ $rc = 124 ]; } && break   # 124: timed out, hung
        sleep 0.2
      done
    done
    for t in $(c containers ls -q 2>/dev/null); do
      c containers delete "$t" >/dev/null 2>&1 || true
    done
  fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  local s
  for s in $(our_shims "$sock"); do kill -9 "$s" 2>/dev/null || true; done
  { grep -F " $dir/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir"
  log "stopped, $dir removed"
}

case ${1:-} in
  start) start ;;
  stop) [ $# -eq 2 ] || die "usage: cri-env.sh stop DIR"; stop "$2" ;;
  pause) [ $# -eq 2 ] || die "usage: cri-env.sh pause FILE"; build_pause "$2" ;;
  *) sed -n '2,35p' "$0" >&2; exit 2 ;;
esac
