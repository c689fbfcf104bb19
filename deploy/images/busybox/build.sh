#!/usr/bin/env bash
# Builds a tiny image from local files only (no registry, no base image):
# Debian's static busybox (`apt-get install busybox-static`) with one symlink
# per applet, so `sh`, `sleep`, `nc`, `httpd`... all work.
#
#   deploy/images/busybox/build.sh [IMAGE]      # default ocean/busybox:latest
#
# Idempotent: an existing image is kept (FORCE=1 rebuilds it).
set -euo pipefail

image="${1:-ocean/busybox:latest}"
busybox="${BUSYBOX:-/bin/busybox}"

if [ "${FORCE:-}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image: already built"
  exit 0
fi
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  echo "needs a static busybox at $busybox: apt-get install busybox-static" >&2
  exit 1
fi

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/etc"
cp "$busybox" "$ctx/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$ctx/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$ctx/rootfs/etc/passwd"
echo 'root:x:0:' > "$ctx/rootfs/etc/group"
chmod 1777 "$ctx/rootfs/tmp"
# `docker import` of the root filesystem: no builder and no base image needed.
old="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
tar --numeric-owner --owner=0 --group=0 -C "$ctx/rootfs" -c . |
  docker import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$image" >/dev/null
# A rebuild must not leave the previous image behind, untagged.
if [ -n "$old" ] && [ "$old" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
  docker rmi "$old" >/dev/null 2>&1 || true
fi
echo "$image: built"
