#!/usr/bin/env bash
# runc-bats.sh - runc's own integration tests (bats files of a runc source tree) against a
# runtime, inside the cgroup v2 VM (hack/cgv2-vm.sh), where CRIU works.
#
# Usage (as root):
#   RUNC_SRC=DIR bash hack/runc-bats.sh [--init KIND] RUNTIME [BATS-FILE...]
#     RUNC_SRC   a runc source tree at the tag to test against (e.g. a `git clone --branch
#                v1.1.5 https://github.com/opencontainers/runc`); nothing of runc's is part
#                of this repository, nor copied into it: its tests/integration and
#                contrib/cmd/recvtty are used from a stage under target/ (gitignored)
#     RUNTIME    the runtime binary (target/release/capsa, $(command -v runc))
#     BATS-FILE  files of tests/integration (default: checkpoint.bats)
#     --init     the VM's PID 1 (shell, or systemd: then RUNC_USE_SYSTEMD=1 as well)
#
# Offline: the busybox image runc's get-images.sh would download is made here from
# busybox-static (the tests read it as testdata/busybox-amd64.tar.xz), and recvtty is
# built from runc's vendored sources with Debian's Go (golang-go, installed if missing).
# Environment: CGV2VM_TIMEOUT (default here 2400), BATS_FILTER (bats -f: a regex of the
# test names to run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
die() { echo "runc-bats: $*" >&2; exit 1; }
init=shell
[ "${1:-}" = --init ] && { init=${2:?--init needs a kind}; shift 2; }
[ $# -ge 1 ] || die "usage: RUNC_SRC=DIR bash hack/runc-bats.sh [--init KIND] RUNTIME [BATS-FILE...]"
RT=$(realpath -e "$1") || die "no runtime $1"; shift
files=("$@"); [ ${#files[@]} -gt 0 ] || files=(checkpoint.bats)
SRC=${RUNC_SRC:?set RUNC_SRC to a runc source tree (see the header)}
[ -f "$SRC/tests/integration/helpers.bash" ] || die "$SRC is not a runc source tree"
bash hack/apt-need.sh runc-bats bats golang-go criu busybox-static jq iproute2 xz-utils
export CGV2VM_TIMEOUT=${CGV2VM_TIMEOUT:-2400}

# The guest hides /tmp, /run and /var/tmp: stage everything under the shared dir.
stage=$ROOT/target/runc-bats
rm -rf "$stage/src/tests" && mkdir -p "$stage/src" "$stage/bin" "$stage/go"
cp -a "$SRC/tests" "$stage/src/"
if [ ! -x "$stage/src/contrib/cmd/recvtty/recvtty" ]; then
  (cd "$SRC" && GOFLAGS=-mod=vendor GOCACHE=$stage/go/cache GOPATH=$stage/go \
    go build -o "$stage/src/contrib/cmd/recvtty/recvtty" ./contrib/cmd/recvtty) ||
    die "cannot build recvtty from $SRC"
fi
# The runtime under its own name (the tests print it), outside the hidden dirs.
cp "$RT" "$stage/bin/$(basename "$RT")"
td=$stage/src/tests/integration/testdata
if [ ! -s "$td/busybox-amd64.tar.xz" ]; then
  d=$(mktemp -d)
  mkdir -p "$d/bin" "$d/etc" "$d/tmp" "$d/proc" "$d/sys" "$d/dev" "$d/root"
  cp /bin/busybox "$d/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$d/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$d/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$d/etc/group"
  tar --numeric-owner --owner=0 --group=0 -C "$d" -cJf "$td/busybox-amd64.tar.xz" .
  rm -rf "$d"
fi
# get-images.sh fetches a Debian rootfs too (only some other files use it): a stand-in.
[ -e "$td/debian-amd64.tar.xz" ] || cp "$td/busybox-amd64.tar.xz" "$td/debian-amd64.tar.xz"

sd=() filter=()
[ "$init" = systemd ] && sd=(RUNC_USE_SYSTEMD=1)
[ -n "${BATS_FILTER:-}" ] && filter=(-f "$BATS_FILTER")
echo "runc-bats: ${files[*]} of $SRC against $RT in the VM (init: $init)" >&2
cd "$stage/src/tests/integration"
exec bash "$ROOT/hack/cgv2-vm.sh" --init "$init" "$ROOT" -- \
  env RUNC="$stage/bin/$(basename "$RT")" "${sd[@]}" PATH="$PATH" \
  bats -t "${filter[@]}" "${files[@]}"
