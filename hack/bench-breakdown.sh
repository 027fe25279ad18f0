#!/usr/bin/env bash
# bench-breakdown.sh - where `run` of /bin/true spends its time, step by step, for each
# runtime side by side (a benchmark: it reports, it never fails on a figure).
#
# Usage (as root):  bash hack/bench-breakdown.sh [-n RUNS] RUNTIME...
#   e.g.            bash hack/bench-breakdown.sh target/release/capsa crun runc
#
# Each run is traced with `strace --seccomp-bpf -f -ttt` limited to a few marker
# syscalls, so only those stop the runtime (the other syscalls run at full speed); the
# times between markers are the steps below, and the table gives each step's median over
# RUNS runs (default 20), in ms:
#   start     the runtime's execve to the clone of the container's init: process start,
#             the exe seal (capsa: execveat of the sealed binary), config parse, state
#             dir, cgroup preparation
#   place     the init's clone to its first mount: cgroup placement, the first sync
#   mounts    first mount to pivot_root: propagation, the rootfs bind, the config's mounts,
#             /dev, the runtime's hooks
#   finalize  pivot_root to capset: masked and read-only paths, hostname, rlimits, ...
#   exec      capset to the execve of /bin/true: user, seccomp, the last sync, start
#   workload  /bin/true's execve to its exit
#   teardown  its exit to the runtime's: reaping, cgroup and state removal
# and the whole, untraced (hyperfine, the same runs' median), for scale; then the system
# calls of one `run` (strace -f -c over every process of the runtime and the container's
# init; the median of 5 runs; /bin/true's own calls included, the same for all). A runtime whose
# trace lacks a marker (e.g. no capset) shows "-" there and folds the time into the next.
# Runs in the benchmarks' environment (hack/bench-lib.sh bench_env).
set -euo pipefail
HACK=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HACK/bench-lib.sh"
[ "$(id -u)" = 0 ] || { echo "bench-breakdown.sh: run as root" >&2; exit 1; }
[ -n "${BENCH_IN_ENV:-}" ] || { bench_pkgs; bash "$HACK/apt-need.sh" bench strace; }
bench_env "$HACK/bench-breakdown.sh" "$@"

RUNS=${RUNS:-20}
while getopts n:h opt; do
  case $opt in
    n) RUNS=$OPTARG ;; *) sed -n '2,26p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,26p' "$0" >&2; exit 2; }
mkdir -p "$BENCH_BASE"
OUT=$(mktemp -d "$BENCH_BASE/breakdown-$(date +%Y%m%d-%H%M%S)-XXXX")
B=$OUT/bundle-true
make_bundle "$B" /bin/true

# steps of one trace: "start place mounts finalize exec workload teardown" in ms
steps() {
  awk '
    function t(s) { return s * 1000 }
    NR == 1 { top = $1 }
    {
      pid = $1; time = $2; call = $3; sub(/\(.*/, "", call)
      if (call == "execve" && pid == top && !t0) t0 = t(time)
      else if ((call == "clone" || call == "clone3") && !tclone && $0 ~ /CLONE_NEW/) tclone = t(time)
      else if (call == "mount" && tclone && !tmount && pid != top) tmount = t(time)
      else if (call == "pivot_root" && !tpivot) tpivot = t(time)
      else if (call == "capset" && !tcap) tcap = t(time)
      else if (call == "execve" && $0 ~ /"\/bin\/true"/ && !texec) texec = t(time)
      else if (call == "exit_group" && texec && pid != top && !texit) texit = t(time)
      else if (call == "exit_group" && pid == top) tend = t(time)
      else if ($0 ~ /\+\+\+ exited/ && pid == top) tend = t(time)
    }
    END {
      n = split("t0 tclone tmount tpivot tcap texec texit tend", names, " ")
      v[1]=t0; v[2]=tclone; v[3]=tmount; v[4]=tpivot; v[5]=tcap; v[6]=texec; v[7]=texit; v[8]=tend
      prev = v[1]; out = ""
      for (i = 2; i <= n; i++) {
        if (v[i] == 0) { out = out " -"; continue }
        out = out sprintf(" %.3f", v[i] - prev); prev = v[i]
      }
      print substr(out, 2)
    }'
}

echo "# bench-breakdown $(date -Is)"
echo "host: $(uname -r), $(nproc) cpus, cgroups: $BENCH_HOST_CGROUPS; runs: $RUNS; out: $OUT"
load_report
echo
printf '%-10s %8s %8s %8s %8s %8s %8s %8s %10s\n' runtime start place mounts finalize exec workload teardown untraced
markers=execve,execveat,clone,clone3,mount,pivot_root,capset,exit_group
for rt in "$@"; do
  p=$(rt_path "$rt"); name=$(basename "$rt")
  root=$OUT/root-$name
  : > "$OUT/$name.steps"
  for i in $(seq "$RUNS"); do
    strace --seccomp-bpf -f -ttt -qq -e trace="$markers" -o "$OUT/$name.trace" \
      "$p" --root "$root" run --bundle "$B" "bd$i-$$" >/dev/null 2>&1 || true
    steps < "$OUT/$name.trace" >> "$OUT/$name.steps"
  done
  cleanup_ids "$p" bd
  # `run` deletes the container when it exits: one id serves every run.
  hyperfine -N -w 3 -r "$RUNS" --export-json "$OUT/$name.json" \
    "$p --root $root run --bundle $B hf-$$" >/dev/null 2>&1
  whole=$(jq -r '.results[0].median * 1000 | . * 1000 | round / 1000' "$OUT/$name.json")
  cols=()
  for c in 1 2 3 4 5 6 7; do
    cols+=("$(awk -v c="$c" '$c != "-" {print $c}' "$OUT/$name.steps" | median)")
  done
  printf '%-10s %8s %8s %8s %8s %8s %8s %8s %10s\n' "$name" "${cols[@]}" "$whole"
done

echo
printf '%-10s %10s\n' runtime syscalls
for rt in "$@"; do
  p=$(rt_path "$rt"); name=$(basename "$rt")
  root=$OUT/root-$name
  for i in 1 2 3 4 5; do
    strace -f -c -qq -o "$OUT/$name.count" "$p" --root "$root" run --bundle "$B" "sc$i-$$" \
      >/dev/null 2>&1 || true
    awk '$NF == "total" {print $4}' "$OUT/$name.count"
  done | median | xargs printf '%-10s %10s\n' "$name"
  cleanup_ids "$p" sc
done
