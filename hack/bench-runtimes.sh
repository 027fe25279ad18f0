#!/usr/bin/env bash
# bench-runtimes.sh - start-up benchmark of OCI runtimes side by side (a benchmark, not a
# test: it reports, it never fails on a figure).
#
# Usage (as root):  bash hack/bench-runtimes.sh [options] RUNTIME...
#   e.g.            RUNS=60 ROUNDS=4 bash hack/bench-runtimes.sh target/release/capsa crun runc
#
# RUNTIME is a path or a name on PATH. On a busybox bundle whose process is /bin/true
# (config from `runc spec`), hyperfine measures for each runtime:
#   run    RT run --bundle B <fresh id>          (waits for the process, deletes it)
#   c/s/d  RT create --bundle B <id> && RT start <id> && RT delete -f <id>
# and GNU time the peak RSS of `RT run` (its largest process). The table gives mean±sd,
# median, and each runtime's ratio to the FIRST one given.
#
# Options (or the environment variables named):
#   -r N  RUNS      timed runs per test and runtime (default 30)
#   -R N  ROUNDS    the runs split into N rounds, runtimes interleaved (A B C A B C ...) so a
#                   drift in background load hits all alike (default 1)
#   -w N  WARMUP    hyperfine warm-up runs per round (default 3)
#   -m N  RSS_RUNS  runs under GNU time for the RSS (default 10)
#   -c    COLD=1    drop the page cache before every timed run (sync; drop_caches 3): a
#                   start with nothing cached, as after boot; the drop is not timed
#   -o D  OUTDIR    hyperfine JSON and RSS samples (default: a new dir under
#                   $CAPSA_CACHE/bench, CAPSA_CACHE default /var/tmp/capsa-cache)
# All runtimes run in one environment (hack/bench-lib.sh bench_env): on a hybrid cgroup
# host, a private mount namespace without the cgroup2 mount (crun refuses hybrid hosts),
# under tini as subreaper, at nice -10. Installs its packages (hack/apt-need.sh).
set -euo pipefail
HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HACK/bench-lib.sh"
usage() { sed -n '2,28p' "$HACK/bench-runtimes.sh" >&2; exit "${1:-2}"; }
[ "$(id -u)" = 0 ] || { echo "bench-runtimes.sh: run as root" >&2; exit 1; }
[ -n "${BENCH_IN_ENV:-}" ] || bench_pkgs
bench_env "$HACK/bench-runtimes.sh" "$@"

RUNS=${RUNS:-30} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-3} RSS_RUNS=${RSS_RUNS:-10} OUTDIR=${OUTDIR:-}
COLD=${COLD:-0}
while getopts r:R:w:m:o:ch opt; do
  case $opt in
    c) COLD=1 ;;
    r) RUNS=$OPTARG ;; R) ROUNDS=$OPTARG ;; w) WARMUP=$OPTARG ;; m) RSS_RUNS=$OPTARG ;;
    o) OUTDIR=$OPTARG ;; h) usage 0 ;; *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
RTS=() NAMES=()
for a in "$@"; do
  p=$(rt_path "$a") || { echo "bench-runtimes.sh: no runtime $a" >&2; exit 1; }
  RTS+=("$p"); NAMES+=("$(basename "$a")")
done
if [ -z "$OUTDIR" ]; then mkdir -p "$BENCH_BASE"; OUTDIR=$(mktemp -d "$BENCH_BASE/runtimes-$(date +%Y%m%d-%H%M%S)-XXXX"); fi
mkdir -p "$OUTDIR"
B=$OUTDIR/bundle-true
make_bundle "$B" /bin/true
cd "$OUTDIR"
qb=$(printf %q "$B")

echo "# bench-runtimes $(date -Is)"
echo "host: $(uname -r), $(nproc) cpus, cgroups: $BENCH_HOST_CGROUPS"
load_report
echo "environment: $BENCH_CGROUP_ENV_USED (v1ns: private mount ns without the cgroup2 mount), tini -s, nice $(nice)"
echo "hyperfine $(hyperfine --version | cut -d' ' -f2): cold=$COLD warmup=$WARMUP runs=$RUNS rounds=$ROUNDS; rss runs=$RSS_RUNS; out=$OUTDIR"
echo

n=${#RTS[@]}
OK=()
for i in $(seq 0 $((n - 1))); do
  echo "[$((i + 1))] ${RTS[i]} ($(rt_version "${RTS[i]}"))"
  if err=$("${RTS[i]}" run --bundle "$B" "bench${i}chk$$" 2>&1 >/dev/null); then OK[i]=1
  else OK[i]=0; echo "    FAILED its first run: $err" | head -5; fi
  cleanup_ids "${RTS[i]}" "bench${i}"
  : > "$OUTDIR/rss-$i.txt"
done
echo

per=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
PREP=()
[ "$COLD" = 1 ] && PREP=(--prepare 'sync; echo 3 > /proc/sys/vm/drop_caches')
for k in $(seq 1 "$ROUNDS"); do
  for i in $(seq 0 $((n - 1))); do
    [ "${OK[i]}" = 1 ] || continue
    q=$(printf %q "${RTS[i]}") p="bench${i}x"
    echo "## round $k/$ROUNDS: ${NAMES[i]}"
    hyperfine --style basic -i "${PREP[@]}" --warmup "$WARMUP" --runs "$per" --export-json "run-$i-$k.json" \
      -n "${NAMES[i]} run" "$q run --bundle $qb ${p}r\$\$" 2>&1 | grep -E 'Benchmark|Time|Range' | sed 's/^ */   /'
    hyperfine --style basic -i "${PREP[@]}" --warmup "$WARMUP" --runs "$per" --export-json "csd-$i-$k.json" \
      -n "${NAMES[i]} c/s/d" "$q create --bundle $qb ${p}c\$\$ && $q start ${p}c\$\$ && $q delete -f ${p}c\$\$" \
      2>&1 | grep -E 'Benchmark|Time|Range' | sed 's/^ */   /'
    if [ "$k" = 1 ]; then
      for m in $(seq 1 "$RSS_RUNS"); do
        /usr/bin/time -f '%M' -a -o "rss-$i.txt" "${RTS[i]}" run --bundle "$B" "${p}m$m" >/dev/null 2>&1 || true
      done
    fi
    cleanup_ids "${RTS[i]}" "$p"
  done
done
echo

# over all rounds, the runs that exited 0: mean sd median n (ms)
stats='[.[].results[0] | [.times, .exit_codes] | transpose[]] | map(select(.[1] == 0) | .[0] * 1000) | sort
  | length as $n | (add / $n) as $m
  | (if $n > 1 then (map((. - $m) * (. - $m)) | add / ($n - 1) | sqrt) else 0 end) as $sd
  | (if $n % 2 == 1 then .[($n - 1) / 2] else (.[$n / 2 - 1] + .[$n / 2]) / 2 end) as $md
  | "\($m) \($sd) \($md) \($n)"'
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "") print "-"; else printf "%.2f", a / b }'; }
f1() { awk -v a="$1" 'BEGIN { if (a == "") print "-"; else printf "%.1f", a }'; }
declare -a RM RS RMD RN CM CS CMD CN SM SX NZ
for i in $(seq 0 $((n - 1))); do
  [ "${OK[i]}" = 1 ] || continue
  read -r RM[i] RS[i] RMD[i] RN[i] < <(jq -rs "$stats" run-$i-*.json)
  read -r CM[i] CS[i] CMD[i] CN[i] < <(jq -rs "$stats" csd-$i-*.json)
  SM[i]=$(median < "rss-$i.txt") SX[i]=$(maxof < "rss-$i.txt")
  NZ[i]=$(jq -s '[.[].results[0].exit_codes[] | select(. != 0)] | length' run-$i-*.json csd-$i-*.json)
done
echo "## Results (ms; ratio = mean / ${NAMES[0]}'s mean; peak RSS in KiB)"
echo
echo "| runtime | version | run mean±sd | median | ratio | c/s/d mean±sd | median | ratio | RSS median/max | ratio | failed | n |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for i in $(seq 0 $((n - 1))); do
  if [ "${OK[i]}" != 1 ]; then echo "| ${NAMES[i]} | $(rt_version "${RTS[i]}") | FAILED |"; continue; fi
  echo "| ${NAMES[i]} | $(rt_version "${RTS[i]}") | $(f1 "${RM[i]}")±$(f1 "${RS[i]}") | $(f1 "${RMD[i]}") | $(ratio "${RM[i]}" "${RM[0]:-}") | $(f1 "${CM[i]}")±$(f1 "${CS[i]}") | $(f1 "${CMD[i]}") | $(ratio "${CM[i]}" "${CM[0]:-}") | ${SM[i]}/${SX[i]} | $(ratio "${SM[i]}" "${SM[0]:-}") | ${NZ[i]} | ${RN[i]}/${CN[i]} |"
done
echo
echo "failed: timed runs that exited non-zero (left out of the statistics); n: runs counted (run / c/s/d)."
echo "raw data: $OUTDIR"
