#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, builds, runs every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
