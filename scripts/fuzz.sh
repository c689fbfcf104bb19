#!/usr/bin/env bash
# Builds Ocean's cargo-fuzz (libFuzzer) targets and runs each for a bounded
# time over its committed corpus. See docs/fuzzing.md.
#
#   ./scripts/fuzz.sh             # every target, 10 s each
#   ./scripts/fuzz.sh 600         # every target, 10 minutes each
#   ./scripts/fuzz.sh 60 dns_query raft_envelope
#
# Stable toolchain: built with `--sanitizer none` (the address sanitizer
# needs the nightly-only `-Zsanitizer`; our crates deny unsafe code, and
# libFuzzer's coverage instrumentation and panics-as-crashes work on
# stable). New inputs go to a scratch directory, never into the committed
# corpus; a crash fails the script and leaves its input under
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(job_spec agent_message dns_query raft_envelope)
fi

log() { printf '\n==> %s\n' "$*"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# Outside the main build's profiles: the instrumented build has its own
# flags, and sharing a directory would rebuild both in turn.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
# CI builds with more codegen units: a third of the build time, and fuzzing
# for seconds does not need the fastest code. Runs by hand keep cargo-fuzz's
# default (1) unless OCEAN_FUZZ_CGU says otherwise.
cgu=()
if [ -n "${OCEAN_FUZZ_CGU:-}" ]; then
  cgu=(--codegen-units "$OCEAN_FUZZ_CGU")
fi
# OCEAN_FUZZ_DEV=1 (CI): unoptimised, instrumented build. Seconds of
# fuzzing over the committed corpus do not need speed, and an optimised
# build from nothing took over half an hour on the 2-core machine.
if [ -n "${OCEAN_FUZZ_DEV:-}" ]; then
  cgu+=(--dev)
fi

log "fuzz build (${targets[*]})"
start=$(date +%s)
for t in "${targets[@]}"; do
  (cd fuzz && cargo fuzz build --sanitizer none "${cgu[@]}" --target-dir "$target_dir" "$t")
done
echo "built in $(( $(date +%s) - start )) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  log "fuzz $t for ${seconds} s"
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  # -timeout: an input slower than 10 s is a finding (a hang), as is one
  # that takes over 2 GiB.
  (cd fuzz && cargo fuzz run --sanitizer none "${cgu[@]}" --target-dir "$target_dir" "$t" \
      "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" 2>"$scratch/$t.log") || {
    tail -n 40 "$scratch/$t.log"
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  }
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec' "$scratch/$t.log" || true
done
