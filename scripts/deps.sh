#!/usr/bin/env bash
# Installs the Debian packages Ocean needs to build, when they are missing:
# protoc for the .proto files; librocksdb-dev and libclang-dev to link
# rocksdb 0.21 against the system RocksDB (seconds instead of a 14-minute
# build from source). Extra package names may be given as arguments.
set -euo pipefail
need=()
for pkg in protobuf-compiler librocksdb-dev libclang-dev "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  printf '\n==> installing %s\n' "${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
