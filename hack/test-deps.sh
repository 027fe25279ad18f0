#!/usr/bin/env bash
# test-deps.sh: installs, idempotently, every Debian package the integration tests need.
#   busybox-static  the rootfs of every test bundle (/bin/busybox + applet symlinks)
#   runc            the reference runtime the suite is validated against
#   containerd      containerd + ctr for the runc-shim test (private instance via
#                   ../shared/tools/containerd-env.sh)
#   crun            the second reference runtime (benchmarks)
#   podman buildah conmon netavark aardvark-dns slirp4netns catatonit uidmap
#                   podman driving the runtime (integration/tests/podman.rs, private set-up
#                   by ../shared/tools/podman-env.sh)
#   jq file util-linux bsdutils procps iproute2  used by scripts and by tests (unshare,
#                   nsenter, ps, script)
# Safe to run repeatedly: apt runs only when something is missing. Needs root.
set -euo pipefail

pkgs=(busybox-static runc crun containerd jq file util-linux bsdutils procps iproute2 tar gzip coreutils
      podman buildah conmon netavark aardvark-dns slirp4netns catatonit uidmap)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
# busybox (dynamic) and busybox-static conflict: the tests need the static one at /bin/busybox.
if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: all present (${pkgs[*]})" >&2
  exit 0
fi
echo "test-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=1200 update -qq
apt-get -o DPkg::Lock::Timeout=1200 install -y -qq --no-install-recommends "${missing[@]}" >&2
