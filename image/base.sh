#!/usr/bin/env bash
# Builds (or reuses) the cached Debian base tree of the appliance root:
#   image/base.sh            prints the cached tree's directory (building it on a cache miss)
# The cache key is the sha256 of packages.txt, dracut.conf, modules.sh, dracut/ and this script, so a
# code-only change reuses the tree (about 15 s) and a package change rebuilds it (3-5 min).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="$here/cache"
suite="${FLAKEBOOT_SUITE:-trixie}"
mirror="${FLAKEBOOT_MIRROR:-http://deb.debian.org/debian}"

key="$(cat "$here/packages.txt" "$here/dracut.conf" "$here/modules.sh" "$here/base.sh" \
  "$here"/dracut/*/* | sha256sum | cut -c1-16)"
tree="$cache/base-$key"
if [ -f "$tree/.complete" ]; then
  echo "$tree"
  exit 0
fi

mkdir -p "$cache"
rm -rf "$tree" "$tree.tmp"
include="$(grep -v '^#' "$here/packages.txt" | grep -v '^$' | paste -sd, -)"
echo "==> base tree (cache miss, key $key): mmdebstrap $suite" >&2
mmdebstrap --variant=minbase --include="$include" \
  --essential-hook="mkdir -p \"\$1/etc/dracut.conf.d\" && cp '$here/dracut.conf' \"\$1/etc/dracut.conf.d/flakeboot.conf\"" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook="'$here/modules.sh' \"\$1\"" \
  "$suite" "$tree.tmp" "$mirror" >&2
ls "$tree.tmp"/boot/vmlinuz-* "$tree.tmp"/boot/initrd.img-* >/dev/null
mv "$tree.tmp" "$tree"
touch "$tree/.complete"
# Older trees are garbage now.
find "$cache" -maxdepth 1 -name 'base-*' ! -name "base-$key" -exec rm -rf {} + 
echo "$tree"
