#!/usr/bin/env bash
# fuzz.sh: builds the fuzz targets in fuzz/ (cargo-fuzz layout, libFuzzer) and runs each for
# FUZZ_SECONDS (default 120); exits non-zero on any crash, printing the reproducer.
#
#   config  config.json: parse + every check `capsa create` makes before touching the system
#   layer   capsa-image's layer unpacker on any byte stream, over a small lower layer:
#           no panic, nothing written outside the layer dir
#   layer_umoci  the same unpacker against `umoci unpack` as the oracle: layers decoded from
#           the input; where umoci succeeds capsa-image must give the same tree (or refuse
#           with one of its deliberate refusals, docs/image.md)
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 120)
#   FUZZ_TARGETS   targets to run (default "config layer layer_umoci")
#   FUZZ_SANITIZER address (default) or none: ASan catches memory errors in unsafe code and
#                  costs about 2x in executions per second
#   CAPSA          a built capsa binary for the seeds (default target/release/capsa, built
#                  if missing)
# Only the stable toolchain is needed: cargo-fuzz passes nightly -Z flags (-Zsanitizer), which
# RUSTC_BOOTSTRAP=1 allows on stable; stable's rust-std ships the ASan runtime for
# x86_64-unknown-linux-gnu.
# Installs (idempotently): g++ (libfuzzer-sys builds libFuzzer), python3 (seed generator),
# util-linux (unshare), umoci (layer_umoci's oracle), and cargo-fuzz (`cargo install --locked`).
# The corpora grow in fuzz/corpus/<target> (kept between runs, not committed); seeds are
# generated into fuzz/seeds on every run; crashes land in fuzz/artifacts/<target>/.
# Each target runs in a private mount namespace where / is read-only and /tmp a private
# tmpfs: a bug that writes outside the layer dir cannot damage the host, and the layer
# target's checks still see it. The fuzz dir (binaries, seeds, corpus, artifacts) stays
# writable at its own path, also when the clone lives under /tmp. Needs root (the
# unpacker chowns and makes device nodes).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
seconds=${FUZZ_SECONDS:-120}
targets=${FUZZ_TARGETS:-config layer layer_umoci}
sanitizer=${FUZZ_SANITIZER:-address}

[ "$(id -u)" = 0 ] || { echo "fuzz.sh: must run as root" >&2; exit 1; }

bash hack/apt-need.sh fuzz.sh g++ python3 util-linux umoci
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi

capsa=${CAPSA:-$repo/target/release/capsa}
if [ ! -x "$capsa" ]; then
  (unset CARGO_TARGET_DIR; cargo build --release --locked -p capsa)
  capsa=$repo/target/release/capsa
fi

# The fuzz project is its own workspace with its own target dir (never CARGO_TARGET_DIR's:
# the instrumented build must not mix with the normal one).
triple=$(rustc -vV | sed -n 's/^host: //p')
echo "fuzz.sh: building the targets (sanitizer: $sanitizer)" >&2
RUSTC_BOOTSTRAP=1 cargo fuzz build --fuzz-dir fuzz --target-dir fuzz/target \
  --sanitizer "$sanitizer" --debug-assertions
bindir=fuzz/target/$triple/release

rm -rf fuzz/seeds
python3 fuzz/gen-seeds.py "$capsa" fuzz/seeds >&2

failed=()
for t in $targets; do
  corpus=fuzz/corpus/$t
  artifacts=fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  log=$(mktemp)
  echo "fuzz.sh: running $t for ${seconds}s" >&2
  rc=0
  # private mount namespace: the fuzz dir stays writable, /tmp is a fresh tmpfs, everything
  # else on / is read-only. The new /tmp is put together aside (on a dir in the fuzz dir),
  # with the fuzz dir bound back at its own path when it lives under /tmp, then moved onto
  # /tmp: mounting a tmpfs straight on /tmp would hide a clone there.
  unshare --mount --propagation private -- bash -c '
    set -e
    fuzz=$1 stage=$1/target/sandbox-tmp; shift
    mount --bind "$fuzz" "$fuzz"
    mkdir -p "$stage"
    mount -t tmpfs -o mode=1777 fuzz-tmp "$stage"
    case $fuzz in
      /tmp/*) mkdir -p "$stage/${fuzz#/tmp/}"; mount --bind "$fuzz" "$stage/${fuzz#/tmp/}" ;;
    esac
    mount --move "$stage" /tmp
    mount -o remount,bind,ro /
    cd "$fuzz/.."
    exec "$@"' _ "$repo/fuzz" \
    "$bindir/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -dict="fuzz/seeds/$t.dict" -artifact_prefix="$artifacts/" \
      "$corpus" "fuzz/seeds/$t" >"$log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log" >&2 || true
  if [ "$rc" != 0 ]; then
    failed+=("$t")
    tail -n 60 "$log" >&2
    for a in $(grep -o "$artifacts/[a-z-]*-[0-9a-f]*" "$log" | sort -u); do
      echo "fuzz.sh: $t crashed; reproducer $a (base64):" >&2
      base64 "$a" >&2
      echo "fuzz.sh: reproduce with: $repo/$bindir/$t $repo/$a" >&2
      echo "    (or: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $t $a)" >&2
    done
  fi
  rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no crash in: $targets (${seconds}s each)" >&2
