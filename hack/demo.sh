#!/usr/bin/env bash
# demo.sh - the whole way from a registry to a process:
#   1. build the project (cargo build --release)
#   2. make a small OCI image from busybox-static (an OCI layout written here: layer tar,
#      config, manifest, index; nothing binary is committed to the repository)
#   3. start a local registry (Debian's docker-registry on 127.0.0.1), capsa-image push the
#      image there (from a publisher's store), capsa-image pull it into the demo's store, then
#      bundle (overlay: shared read-only layer + a writable layer)
#   4. run a container with the runtime; it writes /hello.txt
#   5. capsa-image commit of the container's writable layer into a new image
#   6. bundle the committed image and run it: it shows /hello.txt
#
# Usage (as root): bash hack/demo.sh
# Environment: RUNTIME   OCI runtime with the runc CLI (default target/release/capsa)
#              DEMO_DIR  work dir: store, bundles, image (wiped first, kept after; default a
#                        new dir, mktemp -d /var/tmp/capsa-demo.XXXXXX, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RUNTIME=${RUNTIME:-$CARGO_TARGET_DIR/release/capsa}
DEMO=${DEMO_DIR:-}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (overlay mounts, containers)"

# ---------------------------------------------------------------- packages
need=()
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
command -v sha256sum >/dev/null || need+=(coreutils)
command -v docker-registry >/dev/null || need+=(docker-registry)
if [ "$(basename "$RUNTIME")" = runc ] && ! command -v runc >/dev/null; then need+=(runc); fi
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  bash hack/apt-need.sh demo "${need[@]}"
fi

# ---------------------------------------------------------------- 1. build
say "1. cargo build --release"
cargo build --release -j2
CI=$CARGO_TARGET_DIR/release/capsa-image
[ -x "$CI" ] || die "no $CI"
command -v "$RUNTIME" >/dev/null || die "runtime $RUNTIME not found (set RUNTIME=runc to use runc)"

# ---------------------------------------------------------------- clean start, cleanup on exit
paths() { STORE=$DEMO/store B1=$DEMO/bundle-write B2=$DEMO/bundle-show RTROOT=$DEMO/runtime-root; }
cleanup() {
  registry_stop
  for id in capsa-demo-write capsa-demo-show; do
    "$RUNTIME" --root "$RTROOT" delete -f "$id" >/dev/null 2>&1 || true
  done
  for b in "$B1" "$B2"; do
    [ -d "$b" ] && "$CI" --store "$STORE" rm "$b" >/dev/null 2>&1 || true
  done
}
# the registry: docker-registry on a free 127.0.0.1 port, its storage in $DEMO/registry
REG_PID=
registry_start() {
  REG_PORT=5000
  while (exec 3<>"/dev/tcp/127.0.0.1/$REG_PORT") 2>/dev/null; do REG_PORT=$((REG_PORT + 1)); done
  mkdir -p "$DEMO/registry"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$DEMO/registry/data" "$REG_PORT" > "$DEMO/registry/config.yml"
  docker-registry serve "$DEMO/registry/config.yml" > "$DEMO/registry/log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REG_PORT") 2>/dev/null && return 0
    kill -0 "$REG_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$DEMO/registry/log" >&2; die "docker-registry did not start"
}
registry_stop() {
  [ -n "$REG_PID" ] || return 0
  kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; REG_PID=
}
if [ -n "$DEMO" ]; then
  KEEP=1
  paths
  if [ -d "$DEMO" ]; then cleanup; rm -rf "$DEMO"; fi
else
  KEEP=0
  DEMO=$(mktemp -d /var/tmp/capsa-demo.XXXXXX)
  paths
fi
finish() {
  cleanup
  # our own dir, unless something is still mounted under it
  if [ "$KEEP" = 0 ] && ! grep -qF " $DEMO/" /proc/self/mounts; then rm -rf "$DEMO"; fi
}
trap finish EXIT
mkdir -p "$DEMO/image" "$RTROOT"

# ---------------------------------------------------------------- 2. an OCI image by hand
say "2. make an OCI image layout from busybox-static in $DEMO/image"
R=$DEMO/rootfs
mkdir -p "$R"/{bin,etc,root,tmp,proc,sys,dev,var/www}
chmod 1777 "$R/tmp"; chmod 700 "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$R/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$R/etc/group"
L=$DEMO/image
mkdir -p "$L/blobs/sha256"
tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@1700000000 -C "$R" -cf "$DEMO/layer.tar" .
diff_id=$(sha256sum "$DEMO/layer.tar" | cut -d' ' -f1)
gzip -n -c "$DEMO/layer.tar" > "$DEMO/layer.tar.gz"
layer=$(sha256sum "$DEMO/layer.tar.gz" | cut -d' ' -f1)
mv "$DEMO/layer.tar.gz" "$L/blobs/sha256/$layer"
put() { # json -> prints "digest size", stores the blob
  local d; d=$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)
  printf '%s' "$1" > "$L/blobs/sha256/$d"; echo "$d $(printf '%s' "$1" | wc -c)"
}
config='{"architecture":"amd64","os":"linux","created":"2023-11-14T22:13:20Z","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"capsa demo"}},"rootfs":{"type":"layers","diff_ids":["sha256:'$diff_id'"]},"history":[{"created":"2023-11-14T22:13:20Z","created_by":"hack/demo.sh: busybox-static"}]}'
read -r cd cs <<<"$(put "$config")"
manifest='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$cd'","size":'$cs'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'$layer'","size":'$(stat -c %s "$L/blobs/sha256/$layer")'}]}'
read -r md ms <<<"$(put "$manifest")"
printf '{"imageLayoutVersion":"1.0.0"}' > "$L/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"localhost/demo/busybox:1"}}]}' "$md" "$ms" > "$L/index.json"
rm -rf "$R" "$DEMO/layer.tar"

# ---------------------------------------------------------------- 3. registry: push, pull, bundle
say "3. local registry: capsa-image push, then pull + bundle (store $STORE)"
"$CI" --store "$DEMO/publisher" import "$L"
registry_start
IMAGE=127.0.0.1:$REG_PORT/demo/busybox:1
"$CI" --store "$DEMO/publisher" push --plain-http localhost/demo/busybox:1 "$IMAGE"
"$CI" --store "$STORE" pull --plain-http "$IMAGE"
"$CI" --store "$STORE" bundle "$IMAGE" "$B1" -- \
  /bin/sh -c 'echo "hello from a committed container" > /hello.txt && echo "wrote /hello.txt"'
"$CI" --store "$STORE" ls

# ---------------------------------------------------------------- 4. run, write a file
say "4. $RUNTIME run: the container writes /hello.txt"
"$RUNTIME" --root "$RTROOT" run --bundle "$B1" capsa-demo-write </dev/null || die "run failed"
"$RUNTIME" --root "$RTROOT" delete -f capsa-demo-write >/dev/null 2>&1 || true
"$CI" --store "$STORE" ls

# ---------------------------------------------------------------- 5. commit
say "5. capsa-image commit: the writable layer becomes a new image layer"
"$CI" --store "$STORE" commit "$B1" localhost/demo/hello:1 -m "demo: wrote /hello.txt"
"$CI" --store "$STORE" rm "$B1"
"$CI" --store "$STORE" images
"$CI" --store "$STORE" history localhost/demo/hello:1

# ---------------------------------------------------------------- 6. run the committed image
say "6. bundle + run the committed image: cat /hello.txt"
"$CI" --store "$STORE" bundle localhost/demo/hello:1 "$B2" -- /bin/cat /hello.txt
out=$("$RUNTIME" --root "$RTROOT" run --bundle "$B2" capsa-demo-show </dev/null) || die "run failed"
"$RUNTIME" --root "$RTROOT" delete -f capsa-demo-show >/dev/null 2>&1 || true
echo "$out"
"$CI" --store "$STORE" rm "$B2" >/dev/null
[ "$out" = "hello from a committed container" ] || die "unexpected output: $out"
say "demo passed: registry -> pull -> bundle -> container -> commit -> image -> container (runtime: $RUNTIME)"
