#!/usr/bin/env bash
# Builds an image of Ocean itself from a built `ocean` binary, with no
# registry and no base image: a root filesystem holding `ocean`,
# `ocean-task-wrapper`, the shared libraries `ldd` lists for them (glibc,
# Debian's librocksdb and its compressors) and a static busybox (tasks run
# through /bin/sh), imported with `docker import`.
#
#   cargo build --release --bins
#   deploy/images/ocean/build.sh [IMAGE]        # default ocean/ocean:dev
#
# BIN_DIR picks the binaries (default $CARGO_TARGET_DIR/release, else
# target/release). Idempotent: the image carries the binary's hash in the
# label io.ocean.binary and is rebuilt only when the binary changed
# (FORCE=1 rebuilds anyway).
set -euo pipefail
cd "$(dirname "$0")/../../.."

image="${1:-ocean/ocean:dev}"
bin_dir="${BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}"
busybox="${BUSYBOX:-/bin/busybox}"
ocean="$bin_dir/ocean"
wrapper="$bin_dir/ocean-task-wrapper"

for f in "$ocean" "$wrapper"; do
  [ -x "$f" ] || { echo "no $f: build it first (cargo build --release --bins)" >&2; exit 1; }
done
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "needs a static busybox at $busybox: apt-get install busybox-static" >&2
  exit 1
fi

hash="$(cat "$ocean" "$wrapper" | sha256sum | cut -c1-16)"
if [ "${FORCE:-}" != 1 ] &&
  [ "$(docker image inspect -f '{{index .Config.Labels "io.ocean.binary"}}' "$image" 2>/dev/null || true)" = "$hash" ]; then
  echo "$image: already built from these binaries"
  exit 0
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/bin" "$root/tmp" "$root/etc" "$root/var/lib/ocean"
# Debug info is most of a debug build's size; the image does not need it.
strip --strip-debug -o "$root/usr/local/bin/ocean" "$ocean"
strip --strip-debug -o "$root/usr/local/bin/ocean-task-wrapper" "$wrapper"
# Every library the binaries load, at the path the loader looks for it.
libs="$(for f in "$ocean" "$wrapper"; do
  ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u)"
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"

old="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
  docker import \
    --change 'ENV PATH=/usr/local/bin:/bin' \
    --change "LABEL io.ocean.binary=$hash" \
    --change 'ENTRYPOINT ["/usr/local/bin/ocean"]' \
    - "$image" >/dev/null
# The previous build lost its tag: do not leave it behind as a dangling image.
if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
  docker rmi "$old" >/dev/null 2>&1 || true
fi
echo "$image: built ($hash)"
