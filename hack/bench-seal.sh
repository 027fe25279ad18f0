#!/usr/bin/env bash
# bench-seal.sh - what the CVE-2019-5736 seal costs capsa's start-up, alone (a benchmark,
# not a test).
#
# Usage (as root):  bash hack/bench-seal.sh [bench-runtimes options] CAPSA [RUNTIME...]
#   e.g.            RUNS=40 ROUNDS=4 bash hack/bench-seal.sh target/dist/capsa crun
#
# One hack/bench-runtimes.sh invocation with the same capsa binary twice:
#   capsa            from its own path: create/run/exec re-exec themselves from a detached,
#                    lower-only overlayfs view of the binary (the seal, see docs/security.md)
#   capsa-presealed  a hard link to it reached through a read-only, lower-only overlayfs
#                    mounted here (in a private mount namespace): the binary already runs
#                    from a sealed view, so it does not re-exec
# so the difference between the two rows is the seal's whole cost (the detached mount,
# the second execve, its teardown); other RUNTIMEs (e.g. crun) run beside them for scale.
set -euo pipefail
HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$(id -u)" = 0 ] || { echo "bench-seal.sh: run as root" >&2; exit 1; }

opts=()
while [ $# -gt 0 ] && [[ $1 == -* ]]; do
  case $1 in
    -c) opts+=("$1"); shift ;;
    -[rRwmo]) opts+=("$1" "$2"); shift 2 ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
done
[ $# -ge 1 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
capsa=$(realpath "$1"); shift

# The hard link must live on the binary's filesystem; the overlay shows only its dir.
work=$(mktemp -d "$(dirname "$capsa")/.bench-seal.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/lower" "$work/empty" "$work/sealed"
ln "$capsa" "$work/lower/capsa-presealed"

unshare -m --propagation private bash -c '
  set -euo pipefail
  work=$1 hack=$2; shift 2
  mount -t overlay overlay -o "ro,lowerdir=$work/lower:$work/empty" "$work/sealed"
  bash "$hack/bench-runtimes.sh" "$@"
' _ "$work" "$HACK" "${opts[@]}" "$capsa" "$work/sealed/capsa-presealed" "$@"
