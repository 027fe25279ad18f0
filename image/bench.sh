#!/usr/bin/env bash
# image/bench.sh - capsa-image's benchmark (not a test): import+unpack side by side with
# `umoci unpack` in one run, and `bundle` of an already stored image.
#
#   1. the nginx test image (OCI layout from make-images.sh, 2 gzip layers)
#   2. a large generated layer: SIZE_MB (default 300) MiB of text in FILES (default 100000)
#      small files, as one gzip layer of an OCI layout
#   3. `capsa-image bundle` (overlay, no copying) of the stored nginx image
# Each import/unpack runs RUNS times (default 3), alternating the two tools, each into a
# fresh directory, after `sync`; the median is reported with the ratio.
#
# Usage (as root): bash image/bench.sh   env: CAPSA_TEST_IMAGES (make-images.sh OUTDIR,
#   default /var/tmp/capsa-test-images), BENCH_DIR (default /var/tmp/capsa-image-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
IMAGES=${CAPSA_TEST_IMAGES:-/var/tmp/capsa-test-images}
W=${BENCH_DIR:-/var/tmp/capsa-image-bench}
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-300}
FILES=${FILES:-100000}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
command -v umoci >/dev/null || { apt-get update -qq && apt-get install -y -qq umoci >/dev/null; }
[ -f "$IMAGES/images.json" ] || bash "$ROOT/../shared/tools/make-images.sh" "$IMAGES" >&2
cargo build --release -j2 -p capsa-image >&2
CI=$CARGO_TARGET_DIR/release/capsa-image
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
rm -rf "$W/gen" "$W/large.tar"
echo "large layer: $(du -sh "$L/blobs/sha256/$layer" | cut -f1) gzip, $(du -sh "$W" | cut -f1) total" >&2

# ---------------------------------------------------------------- import + unpack
bench() { # name layout tag
  local name=$1 layout=$2 tag=$3 i t0 t1
  : > "$W/t-capsa"; : > "$W/t-umoci"
  for i in $(seq 1 "$RUNS"); do
    rm -rf "$W/store" "$W/umoci"; sync
    t0=$(now); "$CI" --store "$W/store" import "$layout" --name bench >/dev/null; t1=$(now)
    echo "$t1 - $t0" | bc >> "$W/t-capsa"
    rm -rf "$W/store" "$W/umoci"; sync
    t0=$(now); umoci unpack --image "$layout:$tag" "$W/umoci" >/dev/null; t1=$(now)
    echo "$t1 - $t0" | bc >> "$W/t-umoci"
  done
  local c u
  c=$(median < "$W/t-capsa"); u=$(median < "$W/t-umoci")
  printf '%-22s capsa-image import %6.2f s   umoci unpack %6.2f s   umoci/capsa = %.2fx\n' \
    "$name" "$c" "$u" "$(echo "$u / $c" | bc -l)"
}
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
echo "# $(date -u +%FT%TZ) $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), runs=$RUNS (median)"
bench "nginx (2 layers)" "$IMAGES/test-nginx" bookworm
bench "large (${SIZE_MB} MiB, $FILES files)" "$L" large

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
