#!/bin/sh
# mmdebstrap --customize-hook of image/base.sh: the kernel's modules, trimmed and uncompressed,
# and the initrd made again from them (with flakeboot's dracut module):   image/modules.sh ROOT
# Debian 13's kernel ships its modules xz-compressed and kmod has the kernel decompress them
# (finit_module): under TCG that took minutes of a boot and stalled CPUs (RCU stall warnings in
# xz_dec_run). Uncompressed, squashfs (zstd) compresses them instead. Drivers a headless LAN
# appliance never needs go (graphics, sound, media, wireless, Bluetooth, InfiniBand, staging,
# industrial I/O): the firmware's framebuffer console is built in.
set -eu
root=$1
here=$(cd "$(dirname "$0")" && pwd)
# flakeboot's own dracut modules (image/dracut/): the data partition grows in the initrd, and the
# development mode's overlay root. Added here, not in dracut.conf: the kernel package's own dracut
# run comes before this hook.
cp -r "$here/dracut/90flakeboot-grow-data" "$here/dracut/90flakeboot-dev" "$root/usr/lib/dracut/modules.d/"
for dir in "$root"/usr/lib/modules/*/; do
  kver=$(basename "$dir")
  k="$dir/kernel"
  for d in drivers/gpu sound drivers/media drivers/net/wireless drivers/bluetooth net/bluetooth \
    net/mac80211 net/wireless drivers/infiniband drivers/staging drivers/iio drivers/comedi \
    drivers/isdn; do
    rm -rf "${k:?}/$d"
  done
  find "$k" -name '*.ko.xz' -exec xz -d {} +
  chroot "$root" depmod -a "$kver"
  chroot "$root" dracut -q -f --add "flakeboot-grow-data flakeboot-dev" "/boot/initrd.img-$kver" "$kver"
done
