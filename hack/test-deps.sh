#!/usr/bin/env bash
# test-deps.sh: installs, idempotently, every Debian package the integration tests need.
#   busybox-static  the rootfs of every test bundle (/bin/busybox + applet symlinks)
#   runc            the reference runtime the suite is validated against
#   containerd      containerd + ctr for the runc-shim test (private instance via
#                   hack/containerd-env.sh)
#   crun            the second reference runtime (benchmarks)
#   podman buildah conmon netavark aardvark-dns slirp4netns catatonit uidmap
#                   podman driving the runtime (integration/tests/podman.rs, private set-up
#                   by hack/podman-env.sh)
#   docker.io       dockerd and docker driving the runtime through containerd's runc shim
#                   (integration/tests/docker.rs: a private dockerd on a private containerd)
#   jq file util-linux bsdutils procps iproute2  used by scripts and by tests (unshare,
#                   nsenter, ps, script)
#   strace          fault injection: a delayed clone in integration/tests/races.rs
#   protobuf-compiler  protoc, for the CRI client (integration/cri), which the lint tier's
#                   clippy --all-targets builds
#   criu iptables   checkpoint/restore (integration/tests/checkpoint.rs), run in the VM tier:
#                   Debian's criu 3.17 fails `criu check` on kernels newer than it knows;
#                   CRIU locks the container's network with iptables-restore
#   bats            runc's own checkpoint.bats, run in the VM (hack/runc-bats.sh)
#   umoci           the reference unpacker capsa-image's unpack is compared with (Debian 12:
#                   0.4.7; image/tests/differential.rs, the fuzz tier's layer-umoci target)
# It also creates the unprivileged user of integration/tests/rootless.rs (capsa-rootless,
# no login, no home) with subordinate ids 400000-465535 in /etc/subuid and /etc/subgid for
# newuidmap/newgidmap (package uidmap); the test creates it the same way when missing.
# Safe to run repeatedly: apt runs only when something is missing. Needs root.
set -euo pipefail

rootless_user() {
  local user=capsa-rootless
  id -u "$user" >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$user"
  local f
  for f in /etc/subuid /etc/subgid; do
    grep -q "^$user:" "$f" 2>/dev/null && continue
    # A last line without its newline would swallow ours.
    [ -s "$f" ] && [ -n "$(tail -c1 "$f")" ] && echo >>"$f"
    echo "$user:400000:65536" >>"$f"
  done
}

pkgs=(busybox-static runc crun containerd jq file util-linux bsdutils procps iproute2 tar gzip coreutils strace
      protobuf-compiler criu iptables bats umoci podman buildah conmon netavark aardvark-dns
      slirp4netns catatonit uidmap docker.io)
# busybox (dynamic) and busybox-static conflict: the tests need the static one at /bin/busybox.
bash "$(dirname "$0")/apt-need.sh" test-deps "${pkgs[@]}"
rootless_user
