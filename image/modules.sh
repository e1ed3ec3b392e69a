#!/usr/bin/env bash
# Run by base.sh as an mmdebstrap customize hook:   image/modules.sh ROOT
# Makes the appliance's kernel modules cheap to load, then rebuilds the initrd from them:
# - Debian 13 ships every module xz-compressed (Debian 12 did not). Each load then decompresses
#   in the kernel; under QEMU's TCG that made the image boot about twice as slow as the Debian 12
#   image. The squashfs root is zstd-compressed anyway, so the modules are stored uncompressed.
# - The appliance is a headless wired router: drivers for graphics, sound, cameras, radios,
#   Bluetooth, InfiniBand and sensors are left out (udev would load some of them for nothing).
#   Wired NICs, storage, USB, HID, filesystems, netfilter and WireGuard stay.
set -euo pipefail
root="$1"
for kdir in "$root"/usr/lib/modules/*/; do
  kver="$(basename "$kdir")"
  k="$kdir/kernel"
  rm -rf "$k/drivers/gpu" "$k/drivers/media" "$k/drivers/infiniband" "$k/drivers/iio" \
    "$k/drivers/comedi" "$k/drivers/staging" "$k/drivers/net/wireless" "$k/drivers/bluetooth" \
    "$k/sound" "$k/net/bluetooth" "$k/net/mac80211" "$k/net/wireless"
  find "$kdir" -name '*.ko.xz' -print0 | xargs -0 -r -n 64 -P 2 xz -d
  chroot "$root" depmod -a "$kver"
  echo "==> modules for $kver: $(find "$kdir" -name '*.ko' | wc -l) kept, uncompressed; initrd rebuilt" >&2
  chroot "$root" dracut --force --kver "$kver" "/boot/initrd.img-$kver" >&2
done
