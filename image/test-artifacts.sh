#!/usr/bin/env bash
# The images the hil-tests boot (hil-tests/scenarios/tests/image_*.rs), rebuilt only when an
# input changed (the flakeboot binary, image/, the board file):
#   image/test-artifacts.sh OUTDIR
# OUTDIR/flakeboot-0.1.0-qemu-x86_64.img                 the appliance image (slot A)
# OUTDIR/flakeboot-0.1.0+update-qemu-x86_64.bundle.tar   a good update (another version)
# OUTDIR/flakeboot-0.1.0+update-qemu-x86_64.delta-from-0.1.0.bundle.tar  the same as a delta
# OUTDIR/flakeboot-0.1.0+broken-qemu-x86_64.bundle.tar   a bad update: its daemon exits 1
# OUTDIR/ovmf-vars-secboot.fd                            OVMF variables, its UEFI key enrolled
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${1:?usage: image/test-artifacts.sh OUTDIR}"
board=qemu-x86_64
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
# A test runs this with cargo's variables for the test set (CARGO_MANIFEST_DIR, CARGO_PKG_*...);
# build scripts that watch one (ring's watches CARGO_MANIFEST_DIR) would make this build redo what
# test.sh's own build did, about 3 minutes.
for v in $(compgen -e | grep -E '^CARGO_(MANIFEST_|PKG_|CRATE_|BIN_|PRIMARY_|TARGET_TMPDIR)' || true); do
  unset "$v"
done
(cd "$root" && cargo build --release --locked -q -p flakeboot -p flakeboot-board)
# The code layout that keeps the idle RSS small still names this build's functions.
"$root/scripts/startup-order.sh" check "$root/target/release/flakeboot"
key="$(cd "$root" && { find image -path image/out -prune -o -path image/cache -prune -o -type f -print; \
  echo "board/$board.toml"; echo target/release/flakeboot; echo target/release/flakeboot-board; } \
  | sort | xargs sha256sum | sha256sum | cut -c1-16)"
if [ "$(cat "$out/.key" 2>/dev/null)" = "$key" ]; then
  echo "test images are up to date ($key)"
  exit 0
fi
rm -f "$out/.key" "$out"/*.img "$out"/*.tar "$out"/*.zst
t0=$(date +%s)
export FLAKEBOOT_NO_CARGO=1
# The tests boot the raw image: no compressed copy (about 230 MiB of disk saved).
export FLAKEBOOT_NO_ZST=1
FLAKEBOOT_OUT="$out" "$here/build.sh" "$board"
t1=$(date +%s)
FLAKEBOOT_OUT="$out" FLAKEBOOT_VERSION=0.1.0+update FLAKEBOOT_NO_IMAGE=1 \
  FLAKEBOOT_DELTA_FROM="$out/flakeboot-0.1.0-$board.bundle.tar" "$here/build.sh" "$board"
printf '#!/bin/sh\necho "flakeboot: broken test build" >&2\nexit 1\n' > "$out/broken-flakeboot"
chmod +x "$out/broken-flakeboot"
FLAKEBOOT_OUT="$out" FLAKEBOOT_VERSION=0.1.0+broken FLAKEBOOT_BIN="$out/broken-flakeboot" \
  FLAKEBOOT_NO_IMAGE=1 "$here/build.sh" "$board"
rm -rf "$out"/work-*
# An OVMF variable store with the image's UEFI certificate as PK, KEK and db (and nothing else)
# and Secure Boot on: the tests boot the image with it enforcing (qemu/image.sh,
# QEMU_SECURE_BOOT=1). The owner GUID is flakeboot's own, any fixed one does.
owner=6c1f2b9e-3d4a-4e5f-9a0b-7c8d9e0f1a2b
"${VIRT_FW_VARS:-/opt/flakeboot/virt-firmware/bin/virt-fw-vars}" --input /usr/share/OVMF/OVMF_VARS_4M.fd \
  --output "$out/ovmf-vars-secboot.fd" --set-pk "$owner" "$out/uefi-db.pem" \
  --add-kek "$owner" "$out/uefi-db.pem" --add-db "$owner" "$out/uefi-db.pem" --secure-boot >/dev/null
echo "HIL-TIMING image build $((t1 - t0))s, all test images $(( $(date +%s) - t0 ))s"
echo "$key" > "$out/.key"
