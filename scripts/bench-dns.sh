#!/usr/bin/env bash
# DNS benchmarks of issue 6 (docs/benchmarks.md, "DNS (issue 6)"): installs
# dnsperf and Knot DNS, builds the release binaries, and runs
# `ocean-bench dns`: freshness (RUNNING to A record served, p99) and
# throughput (dnsperf against Ocean's DNS and Knot serving the same 10,000
# tasks' records, same query file, alternately). Extra arguments go to
# `ocean-bench dns` (e.g. --tasks 1000 --seconds 5 --rounds 1).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh dnsperf knot
cargo build --release --bins
# Knot is started by the benchmark itself on a free loopback port.
exec "${CARGO_TARGET_DIR:-target}/release/ocean-bench" dns "$@"
