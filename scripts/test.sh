#!/usr/bin/env bash
# Runs Ocean's whole test suite. Installs what the tests need when it is
# missing (Debian packages), builds once, then runs every test with nextest.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -p ocean-master   # extra arguments go to nextest
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# Debian packages: protoc for the .proto files; librocksdb-dev and
# libclang-dev to link rocksdb 0.21 against the system RocksDB (seconds
# instead of a 14-minute build from source).
need=()
for pkg in protobuf-compiler librocksdb-dev libclang-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# CI on the same machine reuses one build outside the clone.
if [ "${CI:-}" = "true" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR=/var/tmp/ocean-ci-target
fi

log "format"
cargo fmt --all -- --check

log "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "build"
# The cluster tests start the real `ocean` binary.
cargo build --workspace --bins --locked

log "doc tests"
cargo test --workspace --doc --locked --quiet

log "test"
cargo nextest run --workspace --locked --no-fail-fast "$@"
