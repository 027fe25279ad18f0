#!/usr/bin/env bash
# image/bench.sh - capsa-image's benchmark (not a test): import+unpack side by side with
# `umoci unpack` in one run, and `bundle` of an already stored image.
#
#   1. the nginx test image (OCI layout from make-images.sh, 2 gzip layers)
#   2. a large generated layer: SIZE_MB (default 300) MiB of text in FILES (default 100000)
#      small files, as one gzip layer of an OCI layout
#   3. `capsa-image bundle` (overlay, no copying) of the stored nginx image
# Each import/unpack runs RUNS times (default 5; LARGE_RUNS, default 3, for the large layer),
# the two tools taking turns (ABBA order, so drifting load from other processes hits both
# alike), each into a directory of its own after `sync`. Nothing is deleted between runs:
# ext4's inode allocator skips inodes freed in the last minute, which would make every run
# after an `rm -rf` of the previous one pay for scanning past them. Reported: medians of wall
# time and of CPU time (user+sys, which the machine's other load disturbs less), and
# umoci/capsa ratios.
#
# Usage (as root): bash image/bench.sh   env: CAPSA_TEST_IMAGES (hack/make-images.sh OUTDIR,
#   default $CAPSA_CACHE/images, CAPSA_CACHE default /var/tmp/capsa-cache), BENCH_DIR
#   (default $CAPSA_CACHE/image-bench, wiped first),
#   CAPSA_IMAGE (a capsa-image binary to measure instead of building this tree's),
#   CAPSA_IMAGE_BASE (a second capsa-image, e.g. main's build: measured in the same rotation,
#   its medians and base/capsa ratios printed too, to tell a change's cost from the load)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${CAPSA_CACHE:-/var/tmp/capsa-cache}
IMAGES=${CAPSA_TEST_IMAGES:-$CACHE/images}
W=${BENCH_DIR:-$CACHE/image-bench}
RUNS=${RUNS:-5}
LARGE_RUNS=${LARGE_RUNS:-3}
SIZE_MB=${SIZE_MB:-300}
FILES=${FILES:-100000}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
need=()
command -v umoci >/dev/null || need+=(umoci)
command -v bc >/dev/null || need+=(bc)
[ -x /usr/bin/time ] || need+=(time)
[ ${#need[@]} -eq 0 ] || bash hack/apt-need.sh image/bench.sh "${need[@]}"
bash hack/make-images.sh "$IMAGES" >&2
if [ -n "${CAPSA_IMAGE:-}" ]; then CI=$CAPSA_IMAGE; else
  cargo build --release -j2 -p capsa-image >&2
  CI=$CARGO_TARGET_DIR/release/capsa-image
fi
BASE=${CAPSA_IMAGE_BASE:-}
rm -rf "$W"; mkdir -p "$W"

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ---------------------------------------------------------------- the large layer
L=$W/large
mkdir -p "$L/blobs/sha256" "$W/gen"
per_dir=1000
dirs=$(( FILES / per_dir ))
bytes=$(( SIZE_MB * 1024 * 1024 / FILES ))
echo "generating $FILES files of $bytes bytes in $dirs dirs" >&2
for d in $(seq 1 "$dirs"); do
  mkdir -p "$W/gen/d$d"
  head -c $(( bytes * per_dir * 3 / 4 )) /dev/urandom | base64 -w 76 | split -b "$bytes" -a 4 - "$W/gen/d$d/f"
done
tar --numeric-owner --owner=0 --group=0 -C "$W/gen" -cf "$W/large.tar" .
diff_id=$(sha256sum "$W/large.tar" | cut -d' ' -f1)
gzip -1 -n -c "$W/large.tar" > "$W/large.tar.gz"
layer=$(sha256sum "$W/large.tar.gz" | cut -d' ' -f1)
mv "$W/large.tar.gz" "$L/blobs/sha256/$layer"
put() { local d; d=$(printf '%s' "$1" | sha256sum | cut -d' ' -f1); printf '%s' "$1" > "$L/blobs/sha256/$d"; echo "$d $(printf '%s' "$1" | wc -c)"; }
read -r cd cs <<<"$(put '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]}}')"
read -r md ms <<<"$(put '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$cd"'","size":'"$cs"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$layer"'","size":'"$(stat -c %s "$L/blobs/sha256/$layer")"'}]}')"
printf '{"imageLayoutVersion":"1.0.0"}' > "$L/oci-layout"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"large"}}]}' "$md" "$ms" > "$L/index.json"
rm -f "$W/large.tar"  # gen/ stays until the end (see the note on freed inodes above)
echo "large layer: $(du -sh "$L/blobs/sha256/$layer" | cut -f1) gzip, $(du -sh "$W" | cut -f1) total" >&2

# ---------------------------------------------------------------- import + unpack
run() { # out-prefix cmd... : appends wall and user+sys seconds to out-prefix.{wall,cpu}
  local out=$1; shift
  sync
  /usr/bin/time -f '%e %U %S' -o "$out.t" "$@" >/dev/null
  awk '{print $1 > "'"$out.wall"'"; print $2 + $3 > "'"$out.cpu"'"}' "$out.t"
  cat "$out.wall" >> "$out.walls"; cat "$out.cpu" >> "$out.cpus"
}
bench() { # name layout tag runs
  local name=$1 layout=$2 tag=$3 runs=$4 i d
  rm -f "$W"/t-*
  for i in $(seq 1 "$runs"); do
    d=$W/$tag-$i; mkdir -p "$d"
    if [ $((i % 2)) = 1 ]; then
      run "$W/t-capsa" "$CI" --store "$d/store" import "$layout" --name bench
      [ -z "$BASE" ] || run "$W/t-base" "$BASE" --store "$d/base" import "$layout" --name bench
      run "$W/t-umoci" umoci unpack --image "$layout:$tag" "$d/umoci"
    else
      run "$W/t-umoci" umoci unpack --image "$layout:$tag" "$d/umoci"
      [ -z "$BASE" ] || run "$W/t-base" "$BASE" --store "$d/base" import "$layout" --name bench
      run "$W/t-capsa" "$CI" --store "$d/store" import "$layout" --name bench
    fi
  done
  local cw uw cc uc
  cw=$(median < "$W/t-capsa.walls"); uw=$(median < "$W/t-umoci.walls")
  cc=$(median < "$W/t-capsa.cpus"); uc=$(median < "$W/t-umoci.cpus")
  printf '%-26s wall: capsa-image %6.2f s  umoci %6.2f s  umoci/capsa %.2fx | cpu: capsa-image %6.2f s  umoci %6.2f s  %.2fx\n' \
    "$name" "$cw" "$uw" "$(echo "$uw / $cw" | bc -l)" "$cc" "$uc" "$(echo "$uc / $cc" | bc -l)"
  echo "  walls capsa: $(tr '\n' ' ' < "$W/t-capsa.walls")  umoci: $(tr '\n' ' ' < "$W/t-umoci.walls")"
  echo "  cpus  capsa: $(tr '\n' ' ' < "$W/t-capsa.cpus")  umoci: $(tr '\n' ' ' < "$W/t-umoci.cpus")"
  if [ -n "$BASE" ]; then
    local bw bc
    bw=$(median < "$W/t-base.walls"); bc=$(median < "$W/t-base.cpus")
    printf '%-26s wall: base %6.2f s  base/capsa %.2fx | cpu: base %6.2f s  base/capsa %.2fx\n' \
      "  base: $BASE" "$bw" "$(echo "$bw / $cw" | bc -l)" "$bc" "$(echo "$bc / $cc" | bc -l)"
    echo "  walls base: $(tr '\n' ' ' < "$W/t-base.walls")  cpus base: $(tr '\n' ' ' < "$W/t-base.cpus")"
  fi
}
echo "# $(date -u +%FT%TZ) $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), runs=$RUNS/$LARGE_RUNS (median), $CI"
bench "nginx (2 layers)" "$IMAGES/test-nginx" bookworm "$RUNS"
bench "large (${SIZE_MB} MiB, $FILES files)" "$L" large "$LARGE_RUNS"
echo "# load at the end $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- bundle of a stored image
rm -rf "$W/store"
"$CI" --store "$W/store" import "$IMAGES/test-nginx" --name nginx >/dev/null
: > "$W/t-bundle"
for i in $(seq 1 10); do
  t0=$(now); "$CI" --store "$W/store" bundle nginx "$W/b$i" >/dev/null; t1=$(now)
  echo "($t1 - $t0) * 1000" | bc >> "$W/t-bundle"
done
for i in $(seq 1 10); do "$CI" --store "$W/store" rm "$W/b$i" >/dev/null; done
printf '%-22s capsa-image bundle (overlay) median of 10: %.1f ms\n' "nginx" "$(median < "$W/t-bundle")"
rm -rf "$W"
