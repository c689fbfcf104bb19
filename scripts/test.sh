#!/usr/bin/env bash
# Runs Ocean's whole test suite. Installs what the tests need when it is
# missing (Debian packages), builds once, then runs every test with nextest.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -p ocean-master   # extra arguments go to nextest
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# python3: the agent tests use it for memory and fork-bomb tasks; busybox-static:
# the container images the Docker tests build from local files (deploy/images);
# docker.io and docker-compose: the engine and the compose cluster test;
# chromium and chromium-driver: the dashboard's browser test
# (tests/tests/dashboard_browser.rs), which fails in CI without them.
./scripts/deps.sh python3 python3-venv busybox-static docker.io docker-compose chromium chromium-driver nftables keepalived redis-server mariadb-server mariadb-backup prometheus tmux

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# CI on the same machine reuses one build outside the clone.
if [ "${CI:-}" = "true" ] && [ -z "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR=/var/tmp/ocean-ci-target
fi

# axe-core for the dashboard's accessibility audit (from PyPI, SHA-256
# checked); the browser test fails in CI without it.
log "axe-core"
./scripts/axe.sh

# schemathesis (PyPI, pinned) in a venv under the target dir: the OpenAPI
# contract test (tests/tests/openapi.rs) fails in CI without it.
log "schemathesis"
./scripts/schemathesis.sh

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

# A short, bounded cargo-fuzz run of every target over its committed corpus
# (docs/fuzzing.md): in CI, or when asked with OCEAN_FUZZ=1.
if [ "${CI:-}" = "true" ] || [ -n "${OCEAN_FUZZ:-}" ]; then
  log "fuzz"
  OCEAN_FUZZ_CGU="${OCEAN_FUZZ_CGU:-16}" OCEAN_FUZZ_DEV="${OCEAN_FUZZ_DEV:-1}" \
    ./scripts/fuzz.sh "${OCEAN_FUZZ_SECONDS:-10}"
fi
