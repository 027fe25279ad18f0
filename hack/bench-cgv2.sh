#!/usr/bin/env bash
# bench-cgv2.sh - a start-up benchmark in the pure cgroup v2 VM (hack/cgv2-vm.sh), crun's
# home, side by side (a benchmark, not a test).
#
# Usage (as root):  bash hack/bench-cgv2.sh [SCRIPT [OPTIONS...] --] RUNTIME...
#   e.g.            RUNS=20 ROUNDS=4 bash hack/bench-cgv2.sh crun target/dist/capsa runc
#                   bash hack/bench-cgv2.sh bench-concurrent.sh -n 50 -- crun target/dist/capsa
#
# SCRIPT is one of hack/bench-runtimes.sh (the default), bench-concurrent.sh,
# bench-breakdown.sh; RUNS, ROUNDS, ... pass through the environment.
# Every RUNTIME binary is first copied into the guest's /tmp (a tmpfs) and run from there:
# the guest's root is the host's, shared over 9p, and a binary on 9p is not what a host
# runs from. It also changes what is measured: capsa's exe seal mounts an overlayfs over
# the binary's directory, and over 9p under emulation that mount costs about 1.5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-cgv2.sh: run as root" >&2; exit 1; }

script=bench-runtimes.sh opts=()
case ${1:-} in
  bench-*.sh)
    script=$1; shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    [ "${1:-}" = -- ] || { sed -n '2,15p' "$0" >&2; exit 2; }
    shift ;;
esac
[ $# -ge 1 ] || { sed -n '2,15p' "$0" >&2; exit 2; }
[ -f "hack/$script" ] || { echo "bench-cgv2.sh: no hack/$script" >&2; exit 2; }

rts=()
for rt in "$@"; do
  p=$(command -v "$rt" 2>/dev/null || true)
  case $p in /*) ;; *) p=$(realpath -e "$rt") ;; esac
  rts+=("$p")
done

# In the guest: copy each runtime to /tmp/bench-bin/<its name>, then run the script.
exec bash hack/cgv2-vm.sh "$PWD" -- bash -c '
  set -euo pipefail
  script=$1 nopts=$2; shift 2
  opts=("${@:1:$nopts}"); shift "$nopts"
  mkdir -p /tmp/bench-bin
  local_rts=()
  for p in "$@"; do
    cp "$p" "/tmp/bench-bin/$(basename "$p")"
    local_rts+=("/tmp/bench-bin/$(basename "$p")")
  done
  bash "hack/$script" "${opts[@]}" "${local_rts[@]}"
' _ "$script" "${#opts[@]}" "${opts[@]}" "${rts[@]}"
