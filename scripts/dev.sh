#!/usr/bin/env bash
# Builds Ocean (installing what the build needs when missing) and runs
# `ocean dev`: an all-in-one single-node cluster on http://127.0.0.1:7700.
# Arguments go to `ocean dev` (for example --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release --bin ocean
exec ./target/release/ocean dev "$@"
