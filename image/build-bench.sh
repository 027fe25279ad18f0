#!/usr/bin/env bash
# image/build-bench.sh - capsa-image build's benchmark (not a test): one multi-step Dockerfile
# (FROM the busybox test image; COPY of a 400-file tree and of 8 MiB of random data, five
# RUN steps writing ~20 MiB and ~600 files, config-only steps) built side by side in one run by
#   capsa-image build   (RUN steps by capsa; overlay bundles; gzip layers)
#   podman build        (buildah inside podman, RUN steps by runc; overlay storage driver,
#                        private root; --layers, the default: one image per step, as ours)
# each cold (--no-cache: every step runs) and warm (the same build again: every step from
# the cache), RUNS rounds (default 5), the two tools in a rotated order each round, after
# `sync`. Reported: median wall time and user+sys CPU of the command and its children (podman
# runs no daemon, so that is all its work), and podman/capsa-image ratios. Not the same work
# per layer: capsa-image writes each new layer as a gzip blob (ready to push or export) and
# moves the step's upper dir into its store; podman keeps layers uncompressed in
# containers-storage and compresses them only when it pushes or saves.
#
# Usage (as root): bash image/build-bench.sh
#   env: CAPSA_TEST_IMAGES (hack/make-images.sh OUTDIR, default $CAPSA_CACHE/images,
#        CAPSA_CACHE default /var/tmp/capsa-cache), BENCH_DIR (default
#        $CAPSA_CACHE/build-bench, wiped first), RUNS, CAPSA_IMAGE and CAPSA (binaries to
#        measure instead of building this tree's release ones)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CACHE=${CAPSA_CACHE:-/var/tmp/capsa-cache}
IMAGES=${CAPSA_TEST_IMAGES:-$CACHE/images}
W=${BENCH_DIR:-$CACHE/build-bench}
RUNS=${RUNS:-5}
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
bash hack/apt-need.sh image/build-bench.sh podman buildah runc conmon netavark time
[ -f "$IMAGES/images.json" ] || bash hack/make-images.sh "$IMAGES" >&2
if [ -z "${CAPSA_IMAGE:-}" ] || [ -z "${CAPSA:-}" ]; then
  cargo build --release -j2 -p capsa-image -p capsa >&2
fi
CI=${CAPSA_IMAGE:-$CARGO_TARGET_DIR/release/capsa-image}
RT=${CAPSA:-$CARGO_TARGET_DIR/release/capsa}

cleanup() {
  if [ -n "${CONTAINERS_CONF:-}" ]; then podman rmi -a -f >/dev/null 2>&1 || true; fi
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
cleanup
mkdir -p "$W/ctx/src"

# ---------------------------------------------------------------- the context
for d in $(seq 1 20); do
  mkdir -p "$W/ctx/src/d$d"
  for f in $(seq 1 20); do printf 'file %s/%s\n' "$d" "$f" > "$W/ctx/src/d$d/f$f.txt"; done
done
head -c $((8 << 20)) /dev/urandom > "$W/ctx/big.bin"
cat > "$W/ctx/Dockerfile" <<'EOF'
FROM localhost/test-busybox:latest
ARG N=200
ENV APP=/app
WORKDIR /app
COPY src/ /app/src/
RUN for i in $(seq 1 $N); do echo "line $i" > /app/gen-$i.txt; done
RUN head -c 16777216 /dev/zero | tr '\0' 'x' > /app/blob
COPY big.bin /app/big.bin
RUN mkdir tree && cd tree && for d in $(seq 1 20); do mkdir d$d; for f in $(seq 1 20); do echo $d$f > d$d/f$f; done; done
RUN rm /app/gen-1.txt && sha256sum /app/big.bin > /app/big.sum
RUN chown -R nobody /app/tree
LABEL bench=build
USER nobody
CMD ["ls", "/app"]
EOF

# ---------------------------------------------------------------- the two tools
"$CI" --store "$W/store" import "$IMAGES/test-busybox" --name localhost/test-busybox:latest >/dev/null
eval "$(PODMAN_DIR="$W/podman" bash hack/podman-env.sh)"
podman load -q -i "$IMAGES/test-busybox-latest.docker.tar" >/dev/null

t_capsa() { # cold|warm
  local nc=; [ "$1" = cold ] && nc=--no-cache
  "$CI" --store "$W/store" build -q $nc --network none --runtime "$RT" -t localhost/bench:capsa "$W/ctx"
}
t_podman() {
  local nc=; [ "$1" = cold ] && nc=--no-cache
  podman build -q $nc --network none --runtime runc -t localhost/bench:podman "$W/ctx"
}

measure() { # tool cold|warm run
  local d=$W/t-$1-$2-$3
  sync
  /usr/bin/time -f '%e %U %S' -o "$d.t" bash -c "$(declare -f "t_$1"); CI='$CI' RT='$RT' W='$W' t_$1 $2" \
    >"$d.out" 2>"$d.err" || { cat "$d.out" "$d.err" >&2; echo "$1 $2 failed" >&2; exit 1; }
  awk '{print $1 >> "'"$W/$1-$2.walls"'"; print $2 + $3 >> "'"$W/$1-$2.cpus"'"}' "$d.t"
}

# one build of each first (not timed): both start from a warm page cache and base image
t_capsa cold >/dev/null
t_podman cold >/dev/null

TOOLS=(capsa podman)
echo "# $(date -u +%FT%TZ) $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), runs=$RUNS (median)"
echo "# $("$CI" --version), $("$RT" --version | head -1), $(podman --version), $(runc --version | head -1)"
for i in $(seq 1 "$RUNS"); do
  for k in 0 1; do
    t=${TOOLS[$(( (i + k) % 2 ))]}
    measure "$t" cold "$i"
    measure "$t" warm "$i"
  done
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# a/b as "N.NNx"; time(1) counts in 0.01 s, so a 0 is "<0.01 s", not a ratio
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%6.2fx", a / b; else printf "   n/a" }'; }
for mode in cold warm; do
  cw=$(median < "$W/capsa-$mode.walls"); cc=$(median < "$W/capsa-$mode.cpus")
  for t in "${TOOLS[@]}"; do
    w=$(median < "$W/$t-$mode.walls"); c=$(median < "$W/$t-$mode.cpus")
    printf '%-5s %-7s wall %6.2f s (%s capsa-image)  cpu %6.2f s (%s)   walls: %s\n' \
      "$mode" "$t" "$w" "$(ratio "$w" "$cw")" "$c" "$(ratio "$c" "$cc")" \
      "$(tr '\n' ' ' < "$W/$t-$mode.walls")"
  done
done
echo "# load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
