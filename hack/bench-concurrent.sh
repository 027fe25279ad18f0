#!/usr/bin/env bash
# bench-concurrent.sh - the cost of N containers created and started at once, then deleted
# at once, per runtime, side by side (a benchmark, not a test).
#
# Usage (as root):  bash hack/bench-concurrent.sh [-n N] [-k REPS] [-o OUTDIR] RUNTIME...
#   e.g.            bash hack/bench-concurrent.sh -n 50 target/release/capsa crun runc
#
# Container process: /bin/sleep 30 (busybox bundle, config from `runc spec`). Each
# repetition (after one warm-up):
#   up      wall time until all N `RT create --bundle B id && RT start id` returned
#   running how many of them `RT state` reports running
#   steady  memory used (MemTotal - MemAvailable) with all running, minus the baseline
#   ctr-cg  the sum of the containers' own memory cgroups (v1 memory.usage_in_bytes)
#   del     wall time until all N `RT delete -f id` returned
#   after   memory used 2 s after the deletes, minus the baseline (leaks)
# Defaults: N=50, REPS=3, OUTDIR a new dir under $CAPSA_CACHE/bench (CAPSA_CACHE default
# /var/tmp/capsa-cache). Same environment as hack/bench-runtimes.sh (hack/bench-lib.sh).
set -euo pipefail
HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HACK/bench-lib.sh"
usage() { sed -n '2,20p' "$HACK/bench-concurrent.sh" >&2; exit "${1:-2}"; }
[ "$(id -u)" = 0 ] || { echo "bench-concurrent.sh: run as root" >&2; exit 1; }
[ -n "${BENCH_IN_ENV:-}" ] || bench_pkgs
bench_env "$HACK/bench-concurrent.sh" "$@"

N=${N:-50} REPS=${REPS:-3} OUTDIR=${OUTDIR:-}
while getopts n:k:o:h opt; do
  case $opt in
    n) N=$OPTARG ;; k) REPS=$OPTARG ;; o) OUTDIR=$OPTARG ;; h) usage 0 ;; *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
if [ -z "$OUTDIR" ]; then mkdir -p "$BENCH_BASE"; OUTDIR=$(mktemp -d "$BENCH_BASE/concurrent-$(date +%Y%m%d-%H%M%S)-XXXX"); fi
mkdir -p "$OUTDIR"
B=$OUTDIR/bundle-sleep
make_bundle "$B" /bin/sleep 30

used_kb() { awk '/^MemTotal:/ {t=$2} /^MemAvailable:/ {a=$2} END {print t-a}' /proc/meminfo; }
now() { date +%s.%N; }

echo "# bench-concurrent $(date -Is): N=$N reps=$REPS"
echo "host: $(uname -r), $(nproc) cpus, cgroups: $BENCH_HOST_CGROUPS, environment: $BENCH_CGROUP_ENV_USED, nice $(nice)"
load_report
echo
echo "| runtime | rep | up s | del s | running | steady MiB | ctr-cg MiB | after MiB |"
echo "|---|---|---|---|---|---|---|---|"
ri=0
for arg in "$@"; do
  ri=$((ri + 1))
  rt=$(rt_path "$arg") || { echo "bench-concurrent.sh: no runtime $arg" >&2; exit 1; }
  name=$(basename "$arg")
  for rep in $(seq 0 "$REPS"); do   # rep 0 warms up
    pfx="cc${ri}r${rep}x$$-"
    sync; sleep 1
    base=$(used_kb)
    t0=$(now)
    for j in $(seq 1 "$N"); do
      { "$rt" create --bundle "$B" "$pfx$j" && "$rt" start "$pfx$j"; } >/dev/null 2>>"$OUTDIR/err-$ri" &
    done
    wait
    t1=$(now)
    sleep 1
    steady=$(used_kb) running=0 cgkb=0
    for j in $(seq 1 "$N"); do
      read -r st pid < <("$rt" state "$pfx$j" 2>/dev/null | jq -r '"\(.status) \(.pid)"' || echo "x 0")
      [ "$st" = running ] || continue
      running=$((running + 1))
      cg=$(sed -n 's/^[0-9]*:memory://p' "/proc/$pid/cgroup" 2>/dev/null)
      f=/sys/fs/cgroup/memory$cg/memory.usage_in_bytes
      if [ -n "$cg" ] && [ "$cg" != / ] && [ -r "$f" ]; then cgkb=$((cgkb + $(cat "$f") / 1024)); fi
    done
    t2=$(now)
    for j in $(seq 1 "$N"); do "$rt" delete -f "$pfx$j" >/dev/null 2>>"$OUTDIR/err-$ri" & done
    wait
    t3=$(now)
    sleep 2
    after=$(used_kb)
    cleanup_ids "$rt" "$pfx"
    [ "$rep" = 0 ] && continue
    awk -v n="$name" -v r="$rep" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v t3="$t3" -v run="$running" \
      -v N="$N" -v b="$base" -v s="$steady" -v a="$after" -v cg="$cgkb" 'BEGIN {
      printf "| %s | %d | %.3f | %.3f | %d/%d | %.1f | %.1f | %.1f |\n",
        n, r, t1 - t0, t3 - t2, run, N, (s - b) / 1024, cg / 1024, (a - b) / 1024 }'
  done
done
echo
echo "memory figures are system-wide (MemTotal - MemAvailable): noisy when other work runs."
echo "raw data and errors (err-N, if any): $OUTDIR"
