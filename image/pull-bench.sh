#!/usr/bin/env bash
# image/pull-bench.sh - capsa-image pull's benchmark (not a test): the nginx test image
# (make-images.sh's, 2 gzip layers) pulled from one local registry (Debian's docker-registry on
# 127.0.0.1, plain HTTP) by four tools side by side in one run, each into an empty store:
#   capsa-image pull + bundle        (download, verify, unpack; then the overlay bundle)
#   skopeo copy + umoci unpack       (registry -> OCI layout -> bundle rootfs)
#   podman pull                      (overlay storage driver, private root)
#   ctr images pull                  (a private containerd 1.6; unpacks into its overlayfs
#                                     snapshotter; ctr's own CPU only, the daemon does the work)
# RUNS rounds (default 5); each round runs the four in a rotated order (so drifting load
# hits all alike), after `sync`. Reported: median wall time (and user+sys CPU of the
# command and its children), and each tool's ratio to capsa-image.
#
# Usage (as root): bash image/pull-bench.sh   env: CAPSA_TEST_IMAGES (make-images.sh OUTDIR,
#   default /var/tmp/capsa-test-images; hack/image-test.sh builds it), BENCH_DIR (default
#   /var/tmp/capsa-pull-bench), RUNS, CAPSA_IMAGE (a binary to measure instead of building)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
IMAGES=${CAPSA_TEST_IMAGES:-/var/tmp/capsa-test-images}
W=${BENCH_DIR:-/var/tmp/capsa-pull-bench}
RUNS=${RUNS:-5}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
bash hack/apt-need.sh image/pull-bench.sh docker-registry skopeo umoci podman containerd bc time
[ -f "$IMAGES/images.json" ] || { echo "no test images in $IMAGES: run hack/image-test.sh first" >&2; exit 1; }
if [ -n "${CAPSA_IMAGE:-}" ]; then CI=$CAPSA_IMAGE; else
  cargo build --release -j2 -p capsa-image >&2
  CI=$CARGO_TARGET_DIR/release/capsa-image
fi

REG_PID= CTRD_PID=
cleanup() {
  [ -z "$CTRD_PID" ] || { kill "$CTRD_PID" 2>/dev/null; wait "$CTRD_PID" 2>/dev/null || true; }
  [ -z "$REG_PID" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$W" /run/capsa-pull-bench
}
trap cleanup EXIT
cleanup
mkdir -p "$W" /run/capsa-pull-bench

free_port() { local p=$1; while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done; echo "$p"; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# ---------------------------------------------------------------- the registry
PORT=$(free_port 5200)
printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$W/registry" "$PORT" > "$W/registry.yml"
docker-registry serve "$W/registry.yml" > "$W/registry.log" 2>&1 & REG_PID=$!
wait_port "$PORT" || { cat "$W/registry.log"; exit 1; }
REF=127.0.0.1:$PORT/bench/nginx:bookworm
skopeo copy --quiet --dest-tls-verify=false "oci:$IMAGES/test-nginx:bookworm" "docker://$REF"
printf '' > "$W/registries.conf"
export CONTAINERS_REGISTRIES_CONF=$W/registries.conf
printf '{"default":[{"type":"insecureAcceptAnything"}]}' > "$W/policy.json"

# ---------------------------------------------------------------- the four tools
t_capsa() {
  "$CI" --store "$1/store" pull --plain-http -q "$REF" &&
  "$CI" --store "$1/store" bundle "$REF" "$1/bundle"
}
t_skopeo_umoci() {
  skopeo copy --quiet --src-tls-verify=false "docker://$REF" "oci:$1/oci:t" &&
  umoci unpack --image "$1/oci:t" "$1/bundle"
}
t_podman() {
  podman --root "$1/podman" --runroot "/run/capsa-pull-bench/$(basename "$1")" \
    --storage-driver overlay pull --quiet --tls-verify=false --signature-policy "$W/policy.json" "$REF"
}
t_ctr() { ctr -a "$1/ctrd/sock" -n bench images pull --plain-http "$REF"; }
ctrd_start() { # a fresh containerd for one run (its start is not timed)
  mkdir -p "$1/ctrd"
  printf 'version = 2\nroot = "%s/root"\nstate = "/run/capsa-pull-bench/c-%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s/sock"\n' \
    "$1/ctrd" "$(basename "$1")" "$1/ctrd" > "$1/ctrd/config.toml"
  containerd --config "$1/ctrd/config.toml" 2> "$1/ctrd/log" & CTRD_PID=$!
  for _ in $(seq 200); do ctr -a "$1/ctrd/sock" version >/dev/null 2>&1 && return 0; sleep 0.05; done
  cat "$1/ctrd/log"; return 1
}
ctrd_stop() { kill "$CTRD_PID"; wait "$CTRD_PID" 2>/dev/null || true; CTRD_PID=; }

measure() { # name dir
  local name=$1 d=$2
  mkdir -p "$d"; sync
  /usr/bin/time -f '%e %U %S' -o "$d.t" bash -c "$(declare -f "t_$name"); CI='$CI' REF='$REF' W='$W' t_$name '$d'" >/dev/null 2>"$d.err" ||
    { cat "$d.err" >&2; echo "$name failed" >&2; exit 1; }
  awk '{print $1 >> "'"$W/$name.walls"'"; print $2 + $3 >> "'"$W/$name.cpus"'"}' "$d.t"
}
TOOLS=(capsa skopeo_umoci podman ctr)
echo "# $(date -u +%FT%TZ) $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), runs=$RUNS (median), $CI"
for i in $(seq 1 "$RUNS"); do
  for k in 0 1 2 3; do
    name=${TOOLS[$(( (i + k) % 4 ))]}
    d=$W/$name-$i
    if [ "$name" = ctr ]; then ctrd_start "$d"; fi
    measure "$name" "$d"
    if [ "$name" = ctr ]; then ctrd_stop; fi
  done
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cw=$(median < "$W/capsa.walls")
for name in "${TOOLS[@]}"; do
  w=$(median < "$W/$name.walls"); c=$(median < "$W/$name.cpus")
  printf '%-14s wall %6.2f s (%.2fx capsa-image)  cpu %6.2f s   walls: %s\n' "$name" "$w" \
    "$(echo "$w / $cw" | bc -l)" "$c" "$(tr '\n' ' ' < "$W/$name.walls")"
done
echo "# load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
