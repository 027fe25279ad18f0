#!/usr/bin/env bash
# cgv2-vm.sh - run a command as root inside a throw-away QEMU VM whose kernel (Debian 12's
# 6.1) runs a pure cgroup v2 hierarchy with every controller enabled.
#
# Usage (as root):  bash hack/cgv2-vm.sh [--init KIND] DIR -- COMMAND [ARG...]
#                   bash hack/cgv2-vm.sh --install-only
#
#   DIR      a host directory shared read-write into the guest at the same path (9p). The
#            rest of the guest's root is the host's root, read-only, under a tmpfs overlay:
#            every host tool and the cargo-built binaries are there, and what the guest
#            writes outside DIR vanishes with it. /tmp, /run and /var/tmp are fresh tmpfs in
#            the guest: they hide the host's files there, except DIR itself.
#   COMMAND  runs as root in the guest, in the caller's cwd (else DIR), with the caller's
#            environment and stdin /dev/null; its stdout and stderr are this script's, and
#            its exit status is this script's. 124: CGV2VM_TIMEOUT expired; 125: the VM
#            itself failed (the console's tail is printed).
#   --init KIND  what runs as the guest's PID 1: shell (default), a busybox sh that mounts
#            the usual file systems, runs COMMAND and powers off; systemd, the host's
#            systemd with D-Bus, COMMAND run by a oneshot service once basic.target and
#            dbus.socket are up (fstab, getty and multi-user.target's services left out).
#            Each kind is one write_init_KIND function below.
#   --cgroup MODE  the guest's cgroup hierarchy: v2 (default, pure cgroup v2), or, with
#            --init systemd only (systemd mounts them), hybrid (v1 controllers under
#            /sys/fs/cgroup/<c>, cgroup2 at /sys/fs/cgroup/unified, as this CI host) or
#            legacy (v1 only, systemd's own name=systemd hierarchy)
#
# Guest (v2): cgroup_no_v1=all, cgroup2 at /sys/fs/cgroup (nsdelegate, memory_recursiveprot),
# every controller in the root's cgroup.subtree_control; bpffs, devpts, mqueue, hugetlbfs;
# lo up, no other network; modprobe works against the guest kernel's modules.
#
# Nothing is installed system-wide: the first run (flock-ed; ~20 s and ~520 MB) does
# `apt-get download` of qemu-system-x86 and the libraries this host lacks, seabios,
# busybox-static and the kernel, unpacks them with dpkg-deb -x into the cache and builds a
# small initramfs. dpkg's state is never touched.
#
# Environment:
#   CGV2VM_HOME     the cache (default $CAPSA_CACHE/vm, CAPSA_CACHE default
#                   /var/tmp/capsa-cache)
#   CGV2VM_ACCEL    auto|kvm|tcg (auto: kvm when /dev/kvm is backed by VMX/SVM, else tcg)
#   CGV2VM_CPUS     vCPUs (default: kvm = host cores; tcg = host cores - 1, at least 1)
#   CGV2VM_MEM      guest RAM in MiB (default 2048; the guest's tmpfs live in it)
#   CGV2VM_TIMEOUT  seconds before the VM is killed (default 0: none)
#   CGV2VM_APPEND   more guest kernel command line
#   CGV2VM_VERBOSE=1  kernel console and init trace on stderr
#   CGV2VM_KEEP=1     keep the per-run dir (console.log, ctl/) for debugging
set -euo pipefail

H=${CGV2VM_HOME:-${CAPSA_CACHE:-/var/tmp/capsa-cache}/vm}
STAMP=capsa-vm-1   # change when the cache's layout or the initramfs changes
# the unpacked libraries: some packages (libnl) still ship theirs under /lib
QLIB=$H/prefix/usr/lib/x86_64-linux-gnu:$H/prefix/lib/x86_64-linux-gnu
die() { echo "cgv2-vm: $*" >&2; exit 125; }
log() { echo "cgv2-vm: $*" >&2; }
usage() { sed -n '2,24p' "$0" >&2; exit 2; }

# ---------------------------------------------------------------------------- install
# The initramfs: load the modules needed to reach the root (virtio, 9p, overlay, the
# serial ports), assemble root = overlay(host root read-only, tmpfs), mount DIR and the
# control dir, then switch_root to the init script chosen by --init (ctl/init).
build_initramfs() { # KVER
  local kver=$1 st=$H/initrd.stage mods=$H/kernel/lib/modules/$1
  rm -rf "$st"; mkdir -p "$st"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,mnt,newroot,lib/modules}
  cp "$H/prefix/bin/busybox" "$st/bin/busybox"
  declare -A seen=(); local order=() m
  visit() { # a module after its dependencies
    local m=$1 line d
    [ -n "${seen[$m]:-}" ] && return 0; seen[$m]=1
    line=$(grep -E "(^|/)${m}\.ko(\.[gx]z|\.zst)?:" "$mods/modules.dep" | head -1) || true
    [ -n "$line" ] || return 0   # built in
    for d in ${line#*:}; do d=${d##*/}; visit "${d%%.ko*}"; done
    order+=("${line%%:*}")
  }
  for m in virtio_pci 9pnet_virtio 9p overlay virtio_console virtio-rng; do visit "$m"; done
  : > "$st/modules.load"
  for m in "${order[@]}"; do
    mkdir -p "$st/lib/modules/$(dirname "$m")"
    cp "$mods/$m" "$st/lib/modules/$m"
    echo "$m" >> "$st/modules.load"
  done
  echo "$kver" > "$st/kver"
  echo "$mods" > "$st/moddir"
  cat > "$st/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
grep -q 'cgv2vm.verbose=1' /proc/cmdline && set -x
fail() { echo "cgv2-vm stage 1: $*" >&2; echo 1 > /proc/sys/kernel/sysrq; sleep 1; echo o > /proc/sysrq-trigger; }
while read -r m; do insmod "/lib/modules/$m" || fail "insmod $m"; done < /modules.load
P9="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /mnt/lower /mnt/rw
mount -t 9p -o "$P9,ro,cache=loose" cgv2root /mnt/lower || fail "mount the host root"
mount -t tmpfs -o mode=755 tmpfs /mnt/rw && mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot \
  || fail "overlay root"
R=/newroot
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/tmp
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs $R/run
[ -d $R/var/tmp ] && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/var/tmp
mkdir -p $R/run/cgv2vm/ctl
mount -t 9p -o "$P9" cgv2ctl $R/run/cgv2vm/ctl || fail "mount ctl"
DIR=$(cat $R/run/cgv2vm/ctl/dir)
mkdir -p "$R$DIR"
mount -t 9p -o "$P9,cache=mmap" cgv2dir "$R$DIR" || fail "mount $DIR"
cp /bin/busybox $R/run/cgv2vm/busybox
# the guest kernel's modules: bound from the host-root share (the cache may be under a
# path the guest's tmpfs hide)
KVER=$(cat /kver)
mkdir -p "$R/lib/modules/$KVER" && mount --bind "/mnt/lower$(cat /moddir)" "$R/lib/modules/$KVER"
for a in modprobe insmod rmmod lsmod depmod modinfo; do
  ln -s busybox $R/run/cgv2vm/$a
  [ -e $R/usr/sbin/$a ] || [ -e $R/sbin/$a ] || ln -s /run/cgv2vm/busybox $R/usr/sbin/$a
done
echo /run/cgv2vm/modprobe > /proc/sys/kernel/modprobe
mount --move /proc $R/proc
mount --move /sys $R/sys
mount --move /dev $R/dev
exec switch_root $R /run/cgv2vm/busybox sh /run/cgv2vm/ctl/init
EOF
  chmod +x "$st/init"
  (cd "$st" && find . | LC_ALL=C sort | "$H/prefix/bin/busybox" cpio -o -H newc 2>/dev/null) |
    gzip -1 > "$H/initrd.img.new"
  mv "$H/initrd.img.new" "$H/initrd.img"
  rm -rf "$st"
}

install() {
  mkdir -p "$H"
  exec 9>"$H/.lock"; flock 9
  if [ "$(head -1 "$H/.installed" 2>/dev/null)" = "$STAMP" ]; then exec 9>&-; return 0; fi
  [ "$(id -u)" = 0 ] || die "must run as root"
  command -v apt-get >/dev/null || die "needs a Debian host (apt-get)"
  local t0=$SECONDS kimg extra pkgs f kver off miss
  log "installing into $H (one time: apt-get download + dpkg-deb -x, nothing system-wide)"
  apt-cache show qemu-system-x86 busybox-static linux-image-amd64 >/dev/null 2>&1 ||
    apt-get -o DPkg::Lock::Timeout=1200 update -qq || die "apt-get update failed"
  # the metapackage's versioned kernel
  kimg=$(apt-cache depends --no-recommends --no-suggests linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
  [ -n "$kimg" ] || die "cannot resolve linux-image-amd64"
  # qemu and the libraries this host lacks (apt's resolver decides; nothing is installed)
  extra=$(apt-get -s -o Debug::NoLocking=1 install --no-install-recommends qemu-system-x86 2>/dev/null |
    awk '$1 == "Inst" {print $2}') || true
  pkgs=$(printf '%s\n' qemu-system-x86 qemu-system-common qemu-system-data seabios busybox-static \
    xz-utils "$kimg" $extra | grep -vE '^(systemd|udev|libsystemd|libudev|initramfs-tools|linux-base)' |
    sort -u)
  rm -rf "$H/debs" "$H/prefix" "$H/kernel"; mkdir -p "$H/debs" "$H/prefix" "$H/kernel"
  # shellcheck disable=SC2086
  (cd "$H/debs" && apt-get -o APT::Sandbox::User=root download -q $pkgs >/dev/null) ||
    die "apt-get download failed: $pkgs"
  for f in "$H"/debs/*.deb; do
    case ${f##*/} in
      linux-image-*) dpkg-deb -x "$f" "$H/kernel" ;;
      *) dpkg-deb -x "$f" "$H/prefix" ;;
    esac
  done
  rm -rf "$H/debs"
  kver=$(cd "$H/kernel/boot" && ls vmlinuz-* | sed 's/^vmlinuz-//' | sort -V | tail -1)
  [ -n "$kver" ] || die "no kernel in $kimg"
  "$H/prefix/bin/busybox" depmod -b "$H/kernel" "$kver"   # dpkg's postinst would
  # An uncompressed vmlinux boots through its PVH note: no in-guest XZ decompression
  # (~3.5 s under TCG).
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$H/kernel/boot/vmlinuz-$kver" | head -1 | cut -d: -f1) || true
  if [ -n "$off" ]; then
    tail -c +$((off + 1)) "$H/kernel/boot/vmlinuz-$kver" |
      LD_LIBRARY_PATH=$QLIB "$H/prefix/usr/bin/xz" -dc 2>/dev/null \
      > "$H/kernel/vmlinux-$kver" || true   # xz complains about the trailing bytes
    [ "$(head -c 4 "$H/kernel/vmlinux-$kver" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
      rm -f "$H/kernel/vmlinux-$kver"
  fi
  [ -x "$H/prefix/usr/bin/qemu-system-x86_64" ] || die "qemu not unpacked"
  miss=$(LD_LIBRARY_PATH=$QLIB ldd "$H/prefix/usr/bin/qemu-system-x86_64" |
    grep 'not found' || true)
  [ -z "$miss" ] || die "qemu's libraries missing: $miss"
  build_initramfs "$kver"
  printf '%s\nkernel %s\n' "$STAMP" "$kver" > "$H/.installed"
  log "installed kernel $kver in $((SECONDS - t0)) s"
  exec 9>&-
}

# ---------------------------------------------------------------------------- inits
# Each writes $RUN/ctl/init, the script PID 1 runs (busybox sh); it runs ctl/cmd (the
# command, with ctl/env), writes its status to ctl/status and powers the guest off. An
# init that hands PID 1 over (systemd) exec's it and runs ctl/cmd from a unit instead.

# shell: busybox sh as PID 1 (its `wait` reaps orphans); mounts what systemd would.
write_init_shell() {
  cat > "$RUN/ctl/init" <<'EOF'
B=/run/cgv2vm/busybox
grep -q 'cgv2vm.verbose=1' /proc/cmdline && set -x
$B mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup
for c in $($B cat /sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "cgv2-vm: cannot enable $c" >&2
done
$B mount -t bpf -o mode=700 bpf /sys/fs/bpf
$B mount -t securityfs -o nosuid,nodev,noexec securityfs /sys/kernel/security 2>/dev/null
$B mkdir -p /dev/pts /dev/shm /dev/mqueue /dev/hugepages
$B mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts /dev/pts
$B ln -sf pts/ptmx /dev/ptmx
$B mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
$B mount -t mqueue mqueue /dev/mqueue
$B mount -t hugetlbfs hugetlbfs /dev/hugepages
$B ln -sf /proc/self/fd /dev/fd
$B ln -sf /proc/self/fd/0 /dev/stdin
$B ln -sf /proc/self/fd/1 /dev/stdout
$B ln -sf /proc/self/fd/2 /dev/stderr
$B hostname cgv2vm
$B ip link set lo up
OUT=/dev/null ERR=/dev/console
for p in /sys/class/virtio-ports/*; do
  case $($B cat "$p/name" 2>/dev/null) in
    cgv2vm.stdout) OUT=/dev/${p##*/} ;;
    cgv2vm.stderr) ERR=/dev/${p##*/} ;;
  esac
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
/bin/bash /run/cgv2vm/ctl/cmd </dev/null >"$OUT" 2>"$ERR" &
wait $!
echo $? > /run/cgv2vm/ctl/status
$B sync
$B poweroff -f
EOF
}

# systemd: the host's /lib/systemd/systemd as PID 1 (with D-Bus), booted into a target of
# our own that pulls only sysinit/basic, dbus.socket and one oneshot service running the
# command (no fstab: the root is the overlay; no getty, no host services of
# multi-user.target). The service writes the status and powers off like the shell init.
write_init_systemd() {
  cat > "$RUN/ctl/init" <<'EOF'
B=/run/cgv2vm/busybox
grep -q 'cgv2vm.verbose=1' /proc/cmdline && set -x
SD=/lib/systemd/systemd
if [ ! -x $SD ]; then
  echo "cgv2-vm: --init systemd: no $SD on the host (apt-get install systemd)" >/dev/console
  $B poweroff -f
fi
U=/etc/systemd/system
$B mkdir -p $U
$B cat > $U/cgv2vm.target <<'UNIT'
[Unit]
Description=cgv2-vm: the command under systemd
Requires=basic.target dbus.socket cgv2vm-cmd.service
After=basic.target dbus.socket
AllowIsolate=yes
UNIT
$B cat > $U/cgv2vm-cmd.service <<'UNIT'
[Unit]
Description=cgv2-vm: the command
Requires=dbus.socket
After=basic.target dbus.socket dbus.service
[Service]
Type=oneshot
TimeoutStartSec=infinity
ExecStart=/bin/sh /run/cgv2vm/cmd-unit.sh
UNIT
$B cat > /run/cgv2vm/cmd-unit.sh <<'RUN'
B=/run/cgv2vm/busybox
OUT=/dev/null ERR=/dev/console
for p in /sys/class/virtio-ports/*; do
  case $($B cat "$p/name" 2>/dev/null) in
    cgv2vm.stdout) OUT=/dev/${p##*/} ;;
    cgv2vm.stderr) ERR=/dev/${p##*/} ;;
  esac
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb
/bin/bash /run/cgv2vm/ctl/cmd </dev/null >"$OUT" 2>"$ERR"
echo $? > /run/cgv2vm/ctl/status
$B sync
$B poweroff -f
RUN
$B hostname cgv2vm
# The host root carries /.dockerenv, so systemd believes it runs in a container and then
# reads its switches from PID 1's argv, not /proc/cmdline: pass the kernel's on.
exec $SD --unit=cgv2vm.target $($B tr ' ' '\n' < /proc/cmdline | $B grep -E '^(systemd\.|fstab=)')
EOF
}

# ---------------------------------------------------------------------------- run
INIT=shell INSTALL_ONLY=0 CGMODE=v2
while [ $# -gt 0 ]; do
  case $1 in
    --install-only) INSTALL_ONLY=1; shift ;;
    --init) INIT=${2:?--init needs a kind}; shift 2 ;;
    --init=*) INIT=${1#--init=}; shift ;;
    --cgroup) CGMODE=${2:?--cgroup needs a mode}; shift 2 ;;
    --cgroup=*) CGMODE=${1#--cgroup=}; shift ;;
    -h|--help) usage ;;
    *) break ;;
  esac
done
declare -F "write_init_$INIT" >/dev/null || die "unknown --init kind: $INIT (known: shell, systemd)"
# The kernel's and systemd's switches for each hierarchy (systemd 252 mounts a v1 or hybrid
# layout itself; the shell init mounts cgroup2 only).
case $CGMODE in
  v2) CGAPPEND="cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" ;;
  hybrid) CGAPPEND="systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=0" ;;
  legacy) CGAPPEND="systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1" ;;
  *) die "unknown --cgroup mode: $CGMODE (known: v2, hybrid, legacy)" ;;
esac
[ "$CGMODE" = v2 ] || [ "$INIT" = systemd ] || die "--cgroup $CGMODE needs --init systemd (the shell init mounts cgroup v2 only)"
if [ $INSTALL_ONLY = 1 ]; then install; exit 0; fi
[ $# -ge 3 ] && [ "$2" = -- ] || usage
install

DIR=$(realpath -e -- "$1") || die "no such directory: $1"
[ -d "$DIR" ] || die "not a directory: $DIR"
[ "$DIR" != / ] || die "refusing to share / read-write"
shift 2

KVER=$(sed -n 's/^kernel //p' "$H/.installed")
KERNEL=$H/kernel/vmlinux-$KVER
[ -f "$KERNEL" ] || KERNEL=$H/kernel/boot/vmlinuz-$KVER
QEMU=$H/prefix/usr/bin/qemu-system-x86_64

ACCEL=${CGV2VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
  ACCEL=tcg
  if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then ACCEL=kvm; fi
fi
case $ACCEL in
  kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
  tcg) ACCEL_ARGS=(-accel tcg,thread=multi -cpu max) ;;
  *) die "CGV2VM_ACCEL must be auto, kvm or tcg" ;;
esac
# Under TCG leave one host core to qemu's I/O thread (9p): with as many vCPUs as cores on a
# loaded 2-core host the guest stalled for minutes.
NCPU=$(nproc)
[ "$ACCEL" = tcg ] && NCPU=$((NCPU - 1))
[ "$NCPU" -ge 1 ] || NCPU=1
[ "$NCPU" -le 8 ] || NCPU=8
CPUS=${CGV2VM_CPUS:-$NCPU}
MEM=${CGV2VM_MEM:-2048}

RUN=$(mktemp -d "${TMPDIR:-/tmp}/capsa-vm-run.XXXXXX")
QPID='' CATS=''
cleanup() {
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null || true
  # shellcheck disable=SC2086
  [ -n "$CATS" ] && kill $CATS 2>/dev/null || true
  if [ "${CGV2VM_KEEP:-0}" = 1 ]; then log "kept $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$RUN/ctl"
printf '%s\n' "$DIR" > "$RUN/ctl/dir"
"write_init_$INIT"

# the command, from the caller's cwd, with the caller's environment
{
  while IFS= read -r -d '' kv; do
    name=${kv%%=*}
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    case $name in PWD|OLDPWD|SHLVL|_|HOSTNAME|CGV2VM_*|BASH_FUNC_*) continue ;; esac
    printf 'export %s=%q\n' "$name" "${kv#*=}"
  done < <(env -0)
  echo 'export CGV2VM=1'
  printf 'cd -- %q 2>/dev/null || cd -- %q\n' "$PWD" "$DIR"
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$RUN/ctl/cmd"

APPEND="console=ttyS0 loglevel=4 panic=-1 oops=panic mitigations=off $CGAPPEND"
APPEND+=" rdinit=/init tsc=reliable no_timer_check"
# for --init systemd: the host's fstab and GPT partitions are not the guest's
APPEND+=" fstab=no systemd.gpt_auto=no systemd.firstboot=no"
FIFOS=("$RUN/stdout.fifo" "$RUN/stderr.fifo")
if [ "${CGV2VM_VERBOSE:-0}" = 1 ]; then
  SERIAL=(-chardev "file,id=con,path=${RUN//,/,,}/console.fifo" -serial chardev:con)
  APPEND+=" cgv2vm.verbose=1"
  FIFOS+=("$RUN/console.fifo")
else
  SERIAL=(-serial "file:$RUN/console.log")
  APPEND+=" quiet"
fi
APPEND+=" ${CGV2VM_APPEND:-}"
QARGS=(
  -nodefaults -no-user-config -display none -no-reboot
  -L "$H/prefix/usr/share/qemu" -L "$H/prefix/usr/share/seabios"
  -machine q35 "${ACCEL_ARGS[@]}" -smp "$CPUS" -m "$MEM"
  -kernel "$KERNEL" -initrd "$H/initrd.img" -append "$APPEND"
  "${SERIAL[@]}"
  -fsdev "local,id=fsroot,path=/,security_model=passthrough,readonly=on,multidevs=remap"
  -device virtio-9p-pci,fsdev=fsroot,mount_tag=cgv2root
  -fsdev "local,id=fsdir,path=${DIR//,/,,},security_model=passthrough,multidevs=remap"
  -device virtio-9p-pci,fsdev=fsdir,mount_tag=cgv2dir
  -fsdev "local,id=fsctl,path=${RUN//,/,,}/ctl,security_model=none"
  -device virtio-9p-pci,fsdev=fsctl,mount_tag=cgv2ctl
  -device virtio-rng-pci
  -device virtio-serial-pci,id=vser
  -chardev "file,id=cout,path=${RUN//,/,,}/stdout.fifo"
  -device virtserialport,bus=vser.0,nr=1,chardev=cout,name=cgv2vm.stdout
  -chardev "file,id=cerr,path=${RUN//,/,,}/stderr.fifo"
  -device virtserialport,bus=vser.0,nr=2,chardev=cerr,name=cgv2vm.stderr
)
# qemu writes the guest's stdout/stderr into FIFOs that cats copy to our own fds (reopening
# /proc/self/fd/N would get a new offset and clobber a log file our caller appends to).
mkfifo "${FIFOS[@]}"
cat "$RUN/stdout.fifo" &
CATS=$!
cat "$RUN/stderr.fifo" >&2 &
CATS="$CATS $!"
if [ "${CGV2VM_VERBOSE:-0}" = 1 ]; then cat "$RUN/console.fifo" >&2 & CATS="$CATS $!"; fi
TO=()
[ "${CGV2VM_TIMEOUT:-0}" != 0 ] && TO=(timeout --foreground -k 5 "$CGV2VM_TIMEOUT")
set +e
LD_LIBRARY_PATH=$QLIB "${TO[@]}" "$QEMU" "${QARGS[@]}" </dev/null &
QPID=$!
wait $QPID
QRC=$?
QPID=
for f in "${FIFOS[@]}"; do exec {fd}<>"$f"; exec {fd}>&-; done   # unblock a cat qemu never opened
# shellcheck disable=SC2086
wait $CATS
CATS=
set -e
[ -s "$RUN/ctl/status" ] && exit "$(cat "$RUN/ctl/status")"
[ "$QRC" = 124 ] && { log "timed out after ${CGV2VM_TIMEOUT}s"; exit 124; }
log "the VM ended without an exit status (qemu rc=$QRC); console tail:"
tail -n 40 "$RUN/console.log" >&2 2>/dev/null || true
exit 125
