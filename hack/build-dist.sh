#!/usr/bin/env bash
# build-dist.sh - the binaries capsa ships: `capsa` and `containerd-shim-capsa-v2`, built
# with the `dist` profile (release, opt-level "z") and statically linked, into target/dist/.
#
# Usage:  bash hack/build-dist.sh        (prints the two paths)
#
# Why this build: start-up is system calls, not computation, and the kernel keeps a
# binary's text resident in large page-cache folios, so the resident set of every `capsa`
# process is about its whole text: opt-level "z" keeps it small. Static glibc spares the
# dynamic loader's work at each of capsa's two execs (it re-executes itself from a sealed
# view, CVE-2019-5736) and libc's shared pages. They are not position independent: a
# static-pie relocates its pointer tables at every start, which dirties 240 KiB and keeps
# another 190 KiB of read-only data resident (peak RSS of `run`: 3.1 MiB vs 3.6 MiB,
# docs/benchmarks.md). The cost is ASLR of the binary's own code and data (the stack, heap
# and mappings stay randomised); DIST_PIE=1 builds static-pie instead (docs/security.md).
# `--target` keeps crt-static off the build's proc-macros. docs/benchmarks.md measures these
# binaries; the integration and shim test tiers run them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
triple=$(rustc -vV | sed -n 's/^host: //p')
flags="-C target-feature=+crt-static"
[ "${DIST_PIE:-0}" = 1 ] || flags="$flags -C relocation-model=static"
RUSTFLAGS="${RUSTFLAGS:-} $flags" \
  cargo build --locked --profile dist --target "$triple" -p capsa -p containerd-shim-capsa-v2 >&2
mkdir -p "$CARGO_TARGET_DIR/dist"
for b in capsa containerd-shim-capsa-v2; do
  # a new inode each time: a running copy keeps its own
  cp "$CARGO_TARGET_DIR/$triple/dist/$b" "$CARGO_TARGET_DIR/dist/.$b.tmp"
  mv "$CARGO_TARGET_DIR/dist/.$b.tmp" "$CARGO_TARGET_DIR/dist/$b"
  echo "$CARGO_TARGET_DIR/dist/$b"
done
