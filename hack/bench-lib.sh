# bench-lib.sh - helpers sourced by hack/bench-runtimes.sh and hack/bench-concurrent.sh.
# shellcheck shell=bash

HACK=${HACK:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
# where results (and the bundles made for them) go unless -o names a dir
BENCH_BASE=${BENCH_BASE:-${CAPSA_CACHE:-/var/tmp/capsa-cache}/bench}

# the packages the benchmarks use (runc for `runc spec`: every runtime gets one config)
bench_pkgs() {
  bash "$HACK/apt-need.sh" bench hyperfine jq time tini util-linux busybox-static runc procps
}

# bench_env SCRIPT ARGS...: re-exec SCRIPT once inside
#  * a private mount namespace where, on a hybrid host whose cgroup2 mount has
#    controllers, /sys/fs/cgroup/unified is lazily unmounted: crun 1.8 refuses such hosts,
#    and without that mount every runtime sees the same plain v1 (the host's own mounts
#    are untouched);
#  * tini -s (subreaper), so orphans are reaped at once, as containerd's shim would;
#  * nice -n $BENCH_NICE (default -10): other work on the machine disturbs less.
# BENCH_CGROUP_ENV=host skips the unmount (crun then fails on such hosts).
bench_env() {
  local self=$1; shift
  [ -n "${BENCH_IN_ENV:-}" ] && return 0
  local mode=${BENCH_CGROUP_ENV:-auto}
  if [ "$mode" = auto ]; then
    mode=host
    if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] &&
       [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] &&
       [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
      mode=v1ns
    fi
  fi
  BENCH_HOST_CGROUPS=$(cgroup_desc)
  BENCH_NICE=${BENCH_NICE:--10}
  export BENCH_IN_ENV=1 BENCH_CGROUP_ENV_USED=$mode BENCH_HOST_CGROUPS BENCH_NICE
  if [ "$mode" = v1ns ]; then
    exec nice -n "$BENCH_NICE" unshare --mount --propagation private -- tini -s -g -- \
      bash -c 'umount -l /sys/fs/cgroup/unified && exec bash "$@"' bash "$self" "$@"
  fi
  exec nice -n "$BENCH_NICE" tini -s -g -- bash "$self" "$@"
}

cgroup_desc() {
  case $(stat -fc %T /sys/fs/cgroup 2>/dev/null) in
    cgroup2fs) echo "cgroup v2 (unified)" ;;
    tmpfs)
      if [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
        echo "hybrid (v1 + cgroup2 at /sys/fs/cgroup/unified: '$(cat /sys/fs/cgroup/unified/cgroup.controllers)')"
      else
        echo "cgroup v1"
      fi ;;
    *) echo unknown ;;
  esac
}

# make_bundle DIR ARG...: a busybox-static bundle whose process is ARG..., with the config
# `runc spec` writes (terminal off), the same for every runtime measured.
make_bundle() {
  local dir=$1 tmp l; shift
  mkdir -p "$dir/rootfs"/{bin,proc,dev,sys,tmp}
  install -m 0755 /bin/busybox "$dir/rootfs/bin/busybox"
  for l in sh true echo sleep; do ln -sfn busybox "$dir/rootfs/bin/$l"; done
  tmp=$(mktemp -d)
  (cd "$tmp" && runc spec)
  jq --argjson a "$(printf '%s\n' "$@" | jq -R . | jq -sc .)" \
    '.process.args = $a | .process.terminal = false' "$tmp/config.json" > "$dir/config.json"
  rm -rf "$tmp"
}

# absolute path of a runtime given as a path or a name on PATH
rt_path() {
  local p; p=$(command -v "$1" 2>/dev/null || true)
  case $p in /*) echo "$p" ;; *) realpath -e "$1" ;; esac
}
rt_version() { "$1" --version 2>/dev/null | head -1 | tr -s ' '; }

# median and max of numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
maxof() { sort -n | tail -1; }

# how busy the CPUs are right now (1 s of /proc/stat): timings under load include contention
load_report() {
  local a b busy
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat); sleep 1
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  busy=$(echo "$a $b" | awk '{u=$3-$1; i=$4-$2; printf "%.0f", (u+i) ? 100*u/(u+i) : 0}')
  echo "cpu busy before start: ${busy}% of $(nproc) cpus (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  [ "$busy" -le 15 ] || echo "WARNING: the machine is busy: the timings include contention"
}

# delete every container of runtime RT whose id starts with PREFIX
cleanup_ids() {
  local id
  for id in $("$1" list -q 2>/dev/null | awk -v p="$2" 'index($1, p) == 1 {print $1}'); do
    "$1" delete -f "$id" >/dev/null 2>&1 || true
  done
}
