#!/usr/bin/env bash
# podman-env.sh - a private, daemonless podman configuration: storage, run dir, tmp dir,
# networks and events all under PODMAN_DIR; nothing in /var/lib/containers, /etc/containers
# or the system's network config is touched. Works without systemd and journald.
#
# Usage (as root):
#   eval "$(PODMAN_DIR=DIR bash hack/podman-env.sh)"   writes DIR's config, prints the
#                                                      exports CONTAINERS_CONF and
#                                                      CONTAINERS_STORAGE_CONF
#   podman --runtime /path/to/capsa run --rm localhost/IMAGE echo hi
#
# Environment:
#   PODMAN_DIR      required: containers.conf, storage.conf, storage/ run/ tmp/ networks/
#   PODMAN_RUNTIME  default OCI runtime (default runc)
#   PODMAN_DRIVER   overlay (default) or vfs (forced when PODMAN_DIR is on overlayfs)
#   PODMAN_CONTAINER_ENV  optional VAR=value put into every container's environment (the
#                   tests' tag, so a container left behind can be found)
#
# Rootless (run as the user, with HOME and XDG_RUNTIME_DIR of its own): the same files;
# podman then keeps images and containers under ~/.local/share/containers and its run
# root under $XDG_RUNTIME_DIR/containers (whatever storage.conf says), and that run root
# must be shorter than 50 characters.
# Needs podman, conmon, netavark and runc (hack/test-deps.sh installs them).
#
# What is configured and why:
#   cgroup_manager = "cgroupfs"  PID 1 need not be systemd
#   events_logger = "file"       no journald needed
#   netns = "none"               no bridge or firewall rules by accident; tests that need a
#                                network ask for --network host
#   default_ulimits              only without CAP_SYS_RESOURCE in the bounding set (see below)
set -euo pipefail
die() { echo "[podman-env] ERROR: $*" >&2; exit 1; }
[ -n "${PODMAN_DIR:-}" ] || die "set PODMAN_DIR to the private podman's directory"
DIR=$(realpath -m "$PODMAN_DIR")
RT=${PODMAN_RUNTIME:-runc}
DRIVER=${PODMAN_DRIVER:-overlay}
command -v podman >/dev/null || die "podman not installed (bash hack/test-deps.sh)"

mkdir -p "$DIR"/{storage,run,tmp,networks}
# Rootful podman puts RLIMIT_NOFILE=1048576 and RLIMIT_NPROC=<pid_max> into every spec.
# Raising a hard limit needs CAP_SYS_RESOURCE; where the bounding set lacks it every
# runtime fails to set them, so cap them at the caller's own hard limits.
ULIMITS=""
capbnd=$(awk '/^CapBnd/ {print $2}' /proc/self/status)
if [ $(( 0x$capbnd >> 24 & 1 )) = 0 ]; then
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu); pidmax=$(cat /proc/sys/kernel/pid_max)
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pidmax" ]; then nproc=$pidmax; fi
  ULIMITS="default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
fi
[ "$(findmnt -no FSTYPE --target "$DIR" 2>/dev/null)" = overlay ] && DRIVER=vfs
cat > "$DIR/storage.conf" <<EOF
[storage]
driver = "$DRIVER"
graphroot = "$DIR/storage"
runroot = "$DIR/run"
EOF
cat > "$DIR/containers.conf" <<EOF
[containers]
netns = "none"
${PODMAN_CONTAINER_ENV:+env = [\"$PODMAN_CONTAINER_ENV\"]}
$ULIMITS
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "$DIR/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$DIR/events.log"
tmp_dir = "$DIR/tmp"
runtime = "$RT"
conmon_path = ["/usr/bin/conmon", "/usr/libexec/podman/conmon"]
# the runtimes podman passes --log-format=json to (it decides by the binary's name)
runtime_supports_json = ["crun", "runc", "capsa"]
# the runtimes that take --cgroup-manager disabled (podman --cgroups=disabled); the key is
# runtime_supports_nocgroup (singular) in podman 4.3, an unknown key is ignored
runtime_supports_nocgroup = ["crun", "krun", "capsa"]

[engine.runtimes]
runc = ["/usr/bin/runc", "/usr/sbin/runc"]
crun = ["/usr/bin/crun"]
EOF
echo "export CONTAINERS_CONF=$DIR/containers.conf CONTAINERS_STORAGE_CONF=$DIR/storage.conf"
