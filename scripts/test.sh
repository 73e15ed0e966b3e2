#!/usr/bin/env bash
# Runs the whole test suite: unit, engine, and end-to-end tests against the real
# binaries. One build profile (release) for everything, so RocksDB compiles once.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --release --workspace --locked "$@"
