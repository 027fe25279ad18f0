#!/usr/bin/env bash
# containerd-env.sh - a private containerd (Debian's 1.6) beside, never instead of, the
# system one: its own config, root and state dirs, sockets and log, all under CTRD_DIR;
# overlayfs snapshotter; the CRI plugin disabled (ctr does not need it).
#
# Usage (as root):
#   CTRD_DIR=DIR bash hack/containerd-env.sh start   start unless already up; prints the
#                                                    socket path on stdout, logs on stderr
#   CTRD_DIR=DIR bash hack/containerd-env.sh stop    kill and delete its tasks and
#                                                    containers, stop it, unmount leftovers
#   CTRD_DIR=DIR bash hack/containerd-env.sh status  socket, pid, version (exit 1: not up)
#
# Environment:
#   CTRD_DIR        required: config.toml, containerd.sock(.ttrpc), containerd.log, .pid,
#                   root/, state/, bin/. Keep it short: a socket path has at most 107 bytes.
#   CTRD_EXTRA_PATH dirs put first on containerd's PATH (default CTRD_DIR/bin). containerd
#                   resolves runtime io.containerd.NAME.v2 to containerd-shim-NAME-v2 on its
#                   PATH, so a shim dropped into CTRD_DIR/bin is the one `ctr run --runtime
#                   io.containerd.NAME.v2` uses.
#   CTRD_LOG_LEVEL  default info
# Needs containerd, ctr and runc (hack/test-deps.sh installs them).
set -euo pipefail
log() { printf '[containerd-env] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ -n "${CTRD_DIR:-}" ] || die "set CTRD_DIR to the private containerd's directory"
DIR=$(realpath -m "$CTRD_DIR")
SOCK=$DIR/containerd.sock
PIDF=$DIR/containerd.pid
LOGF=$DIR/containerd.log
CONF=$DIR/config.toml
[ ${#SOCK} -lt 100 ] || die "socket path too long (${#SOCK} bytes): $SOCK"

running() {
  [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null &&
    [ -S "$SOCK" ] && ctr -a "$SOCK" version >/dev/null 2>&1
}

write_config() {
  mkdir -p "$DIR"/{root,state,bin}
  cat > "$CONF.tmp" <<EOF
# private containerd (hack/containerd-env.sh)
version = 2
root = "$DIR/root"
state = "$DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$DIR/debug.sock"
  level = "${CTRD_LOG_LEVEL:-info}"
[metrics]
  address = ""

[plugins]
  # the default, /opt/containerd, would be created on the host
  [plugins."io.containerd.internal.v1.opt"]
    path = "$DIR/opt"
  [plugins."io.containerd.snapshotter.v1.overlayfs"]
    root_path = "$DIR/root/overlayfs"
EOF
  mv "$CONF.tmp" "$CONF"
}

start() {
  if running; then echo "$SOCK"; return 0; fi
  local b
  for b in containerd ctr runc; do
    command -v "$b" >/dev/null || die "$b not installed (bash hack/test-deps.sh)"
  done
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
  if [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null; then
    log "pid $(cat "$PIDF") alive but not answering: stopping it"
    kill "$(cat "$PIDF")"; sleep 1
  fi
  rm -f "$SOCK" "$SOCK.ttrpc" "$DIR/debug.sock" "$PIDF"
  write_config
  local path="${CTRD_EXTRA_PATH:-$DIR/bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  setsid env PATH="$path" containerd --config "$CONF" >>"$LOGF" 2>&1 </dev/null &
  echo $! > "$PIDF"
  local _
  for _ in $(seq 1 200); do
    if ctr -a "$SOCK" version >/dev/null 2>&1; then
      log "up: pid $(cat "$PIDF"), socket $SOCK, log $LOGF"
      echo "$SOCK"; return 0
    fi
    kill -0 "$(cat "$PIDF")" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$LOGF" >&2
  die "containerd did not come up"
}

stop() {
  if running; then
    local ns t c C rc
    # Every call bounded: a hung shim must not hang the teardown.
    for ns in $(timeout 20 ctr -a "$SOCK" namespaces ls -q 2>/dev/null); do
      C=(timeout 20 ctr -a "$SOCK" -n "$ns")
      for t in $("${C[@]}" tasks ls -q 2>/dev/null); do
        "${C[@]}" tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true
      done
      for t in $("${C[@]}" tasks ls -q 2>/dev/null); do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
          rc=0 && "${C[@]}" tasks delete "$t" >/dev/null 2>&1 || rc=$?
          { [ $rc = 0 ] || [ $rc = 124 ]; } && break   # 124: timed out, hung
          sleep 0.3
        done
      done
      for c in $("${C[@]}" containers ls -q 2>/dev/null); do
        "${C[@]}" containers delete "$c" >/dev/null 2>&1 || true
      done
    done
  fi
  if [ -f "$PIDF" ]; then
    local pid; pid=$(cat "$PIDF")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$PIDF"
  fi
  rm -f "$SOCK" "$SOCK.ttrpc" "$DIR/debug.sock"
  # snapshot mounts left by a task that was not deleted cleanly, deepest first
  { grep -F " $DIR/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  status)
    if running; then echo "socket $SOCK pid $(cat "$PIDF") $(ctr -a "$SOCK" version | grep -m1 Version)"
    else echo "not running"; exit 1; fi ;;
  *) sed -n '2,21p' "$0" >&2; exit 2 ;;
esac
