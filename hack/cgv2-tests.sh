#!/usr/bin/env bash
# cgv2-tests.sh: runs the cgroup integration tests (and any others named) inside a
# throw-away QEMU VM with a pure cgroup v2 hierarchy (hack/cgv2-vm.sh).
#
# Usage: bash hack/cgv2-tests.sh [TEST-FILE...] [-- TEST-FILTER/HARNESS ARGS]
#   TEST-FILE   integration/tests/<name>.rs to run, or <name>:F1,F2 for only its tests
#               whose name contains F1 or F2 (default: cgroups exec events rootless devices
#               podman_rootless:delegated,slirp4netns: limits, update, pause, ps, events,
#               OOM, delegation and the eBPF device rules on pure cgroup v2, and rootless
#               podman in a delegated subtree and with slirp4netns (the VM's
#               /dev/net/tun is open to users, the host's is not))
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

tests=() extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --) shift; extra=("$@"); break ;;
    *) tests+=("$1"); shift ;;
  esac
done
[ ${#tests[@]} -gt 0 ] || tests=(cgroups exec events rootless devices podman_rootless:delegated,slirp4netns)

[ -x "$RT" ] || { echo "cgv2-tests: runtime $RT not found (cargo build --release, or set CAPSA_RUNTIME)" >&2; exit 1; }
bash hack/test-deps.sh

# The guest hides the host's /tmp, /run and /var/tmp behind fresh tmpfs: copy the
# runtime and the test binaries into the shared dir (same basenames: the tests
# tell capsa from runc by the runtime's name).
stage="$ROOT/target/cgv2-vm"
rm -rf "$stage" && mkdir -p "$stage/bin"
cp "$RT" "$stage/$(basename "$RT")"
RT="$stage/$(basename "$RT")"

bins=()
for spec in "${tests[@]}"; do
  t=${spec%%:*} filter=
  [ "$t" = "$spec" ] || filter=${spec#*:}
  b=$(cargo test -j2 -p integration --test "$t" --no-run --message-format=json 2>/dev/null |
    jq -r --arg t "$t" 'select(.reason == "compiler-artifact" and .target.name == $t and .executable != null) | .executable' | tail -1)
  [ -n "$b" ] && [ -x "$b" ] || { echo "cgv2-tests: could not build test $t" >&2; exit 1; }
  cp "$b" "$stage/bin/$t"
  printf '%s' "${filter//,/ }" > "$stage/bin/$t.filter"
  bins+=("$stage/bin/$t")
done

# One guest command: every binary, serially (the VM has few vCPUs), rc = worst.
# tun for slirp4netns (rootless podman's network), open to users as udev's default rule
# makes it (the guest has no udev; its devtmpfs node is 0600).
guest='modprobe -q tun && chmod 0666 /dev/net/tun || true; rc=0; for b in "$@"; do echo "== $b" >&2; "$b" --test-threads=1 $(cat "$b.filter") $CGV2_EXTRA || rc=1; done; exit $rc'
echo "cgv2-tests: ${tests[*]} against $RT in a cgroup v2 VM" >&2
exec bash hack/cgv2-vm.sh "$ROOT" -- env CAPSA_RUNTIME="$RT" CGV2_EXTRA="${extra[*]:-}" \
  bash -c "$guest" cgv2 "${bins[@]}"
