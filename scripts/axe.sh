#!/usr/bin/env bash
# Puts axe-core's axe.min.js (the accessibility engine the dashboard's
# browser test injects into Chromium) at $CARGO_TARGET_DIR/axe/axe.min.js
# (target/axe/ without CARGO_TARGET_DIR). There is no npm registry here:
# the file comes from the axe-playwright-python wheel on PyPI, which
# bundles it, and is checked against the SHA-256 below before use.
# axe-core is MPL-2.0; the file keeps its licence header.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL_VERSION=0.1.8
# axe-core 4.12.1, as bundled by axe-playwright-python 0.1.8.
AXE_SHA256=84494fec757e4710dc751c8d7a636e457f4532f08f85c86dc9070133fbff53bc

out="${CARGO_TARGET_DIR:-target}/axe"
file="$out/axe.min.js"
if [ -f "$file" ] && echo "$AXE_SHA256  $file" | sha256sum -c --quiet - 2>/dev/null; then
  exit 0
fi
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
  "axe-playwright-python==$WHEEL_VERSION" -d "$tmp"
python3 - "$tmp" "$tmp/axe.min.js" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/axe_playwright_python-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as f:
    f.write(z.read("axe_playwright_python/axe.min.js"))
PY
if ! echo "$AXE_SHA256  $tmp/axe.min.js" | sha256sum -c --quiet -; then
  echo "axe.min.js from axe-playwright-python $WHEEL_VERSION: SHA-256 mismatch" >&2
  exit 1
fi
mv "$tmp/axe.min.js" "$file"
echo "axe-core: $file"
