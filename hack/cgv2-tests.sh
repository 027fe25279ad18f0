#!/usr/bin/env bash
# cgv2-tests.sh: runs the cgroup integration tests (and any others named) inside a
# throw-away QEMU VM with a pure cgroup v2 hierarchy (hack/cgv2-vm.sh).
#
# Usage: bash hack/cgv2-tests.sh [--init KIND] [--cgroup MODE] [TEST-FILE[:F1,F2]...] [-- HARNESS ARGS]
#   TEST-FILE   integration/tests/<name>.rs to run; <name>:F1,F2 for only its tests whose
#               name contains F1 or F2 (default: cgroups exec events rootless devices
#               podman_rootless:delegated,slirp4netns checkpoint podman:checkpoint: limits,
#               update, pause, ps, events, OOM, delegation and the eBPF device rules on pure
#               cgroup v2, rootless podman in a delegated subtree and with slirp4netns (the
#               VM's /dev/net/tun is open to users, the host's is not); checkpoint/restore
#               with CRIU, which works on the guest's kernel, and through podman)
#   --init KIND the guest's PID 1 (hack/cgv2-vm.sh): `systemd` for the systemd cgroup
#               driver's tests (default list then: systemd)
#   --cgroup MODE the guest's hierarchy (hack/cgv2-vm.sh): v2 (default); hybrid or legacy
#               (cgroup v1 controllers, with --init systemd) for the systemd driver on v1
# In the guest CAPSA_REQUIRE_CRIU=1 and, under systemd, CAPSA_REQUIRE_SYSTEMD=1: a test
# that would skip for want of CRIU or systemd fails instead.
# Environment:
#   CAPSA_RUNTIME       runtime under test (default <repo>/target/release/capsa);
#                       e.g. CAPSA_RUNTIME=$(command -v runc) to validate the tests
#   CGV2VM_TIMEOUT      seconds before the VM is killed (default here 2400)
# The test binaries are built on the host (the VM is software-emulated and slow);
# the guest sees the host's root read-only, so it runs them and the runtime in place.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RT=${CAPSA_RUNTIME:-$ROOT/target/release/capsa}
export CGV2VM_TIMEOUT=${CGV2VM_TIMEOUT:-2400}

tests=() extra=() init=shell cgmode=v2
while [ $# -gt 0 ]; do
  case $1 in
    --init) init=${2:?--init needs a kind}; shift 2 ;;
    --cgroup) cgmode=${2:?--cgroup needs a mode}; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) tests+=("$1"); shift ;;
  esac
done
if [ ${#tests[@]} -eq 0 ]; then
  case $init in
    systemd) tests=(systemd) ;;
    *) tests=(cgroups exec events rootless devices podman_rootless:delegated,slirp4netns
              checkpoint podman:checkpoint) ;;
  esac
fi
require=(CAPSA_REQUIRE_CRIU=1)
[ "$init" = systemd ] && require+=(CAPSA_REQUIRE_SYSTEMD=1)

[ -x "$RT" ] || { echo "cgv2-tests: runtime $RT not found (cargo build --release, or set CAPSA_RUNTIME)" >&2; exit 1; }
bash hack/test-deps.sh

# The guest hides the host's /tmp, /run and /var/tmp behind fresh tmpfs: copy the
# runtime and the test binaries into the shared dir (same basenames: the tests
# tell capsa from runc by the runtime's name).
stage="$ROOT/target/cgv2-vm"
rm -rf "$stage" && mkdir -p "$stage/bin"
cp "$RT" "$stage/$(basename "$RT")"
RT="$stage/$(basename "$RT")"

bins=() built=()
for spec in "${tests[@]}"; do
  t=${spec%%:*} filter=
  [ "$t" = "$spec" ] || filter=${spec#*:}
  bins+=("$stage/bin/$t${filter:+:$filter}")
  [[ " ${built[*]} " == *" $t "* ]] && continue
  built+=("$t")
  b=$(cargo test -j2 -p integration --test "$t" --no-run --message-format=json 2>/dev/null |
    jq -r --arg t "$t" 'select(.reason == "compiler-artifact" and .target.name == $t and .executable != null) | .executable' | tail -1)
  [ -n "$b" ] && [ -x "$b" ] || { echo "cgv2-tests: could not build test $t" >&2; exit 1; }
  cp "$b" "$stage/bin/$t"
done

# One guest command: every binary (BIN or BIN:F1,F2), serially (the VM has few vCPUs),
# rc = worst. tun for slirp4netns (rootless podman's network), open to users as udev's
# default rule makes it (the guest has no udev; its devtmpfs node is 0600).
guest='modprobe -q tun && chmod 0666 /dev/net/tun || true
  rc=0; for b in "$@"; do f=; case $b in *:*) f=${b#*:}; f=${f//,/ }; b=${b%%:*} ;; esac
  echo "== $b $f" >&2; "$b" --test-threads=1 $f $CGV2_EXTRA || rc=1; done; exit $rc'
echo "cgv2-tests: ${tests[*]} against $RT in a VM (init: $init, cgroup: $cgmode)" >&2
exec bash hack/cgv2-vm.sh --init "$init" --cgroup "$cgmode" "$ROOT" -- env CAPSA_RUNTIME="$RT" "${require[@]}" \
  CGV2_EXTRA="${extra[*]:-}" bash -c "$guest" cgv2 "${bins[@]}"
