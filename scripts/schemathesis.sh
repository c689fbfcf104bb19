#!/usr/bin/env bash
# Installs schemathesis (PyPI, pinned) into a virtualenv at
# $CARGO_TARGET_DIR/schemathesis (target/schemathesis without
# CARGO_TARGET_DIR), where tests/tests/openapi.rs finds it. A venv keeps
# it off the system Python (Debian 12's pip refuses system installs).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=4.32.5

venv="${CARGO_TARGET_DIR:-target}/schemathesis"
if [ -x "$venv/bin/st" ] && "$venv/bin/st" --version 2>/dev/null | grep -q "$VERSION"; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
"$venv/bin/st" --version
