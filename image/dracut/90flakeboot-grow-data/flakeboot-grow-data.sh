#!/bin/sh
# The data partition (PARTLABEL=data; /var, with the Nix store on it) takes the rest of the disk.
# The image file is only as large as the board's disk.data_mib: written to a larger disk, the
# space after it is unused until this runs. It runs in the initrd at every boot; once the
# partition reaches the disk's end it finds nothing to do.
set -eu
part=$(readlink -f /dev/disk/by-partlabel/data)
name=${part##*/}
# The disk is the partition's parent in sysfs (/sys/devices/.../block/vda/vda6).
diskdir=$(readlink -f "/sys/class/block/$name/..")
disk=/dev/${diskdir##*/}
n=$(cat "/sys/class/block/$name/partition")
start=$(cat "/sys/class/block/$name/start")
size=$(cat "/sys/class/block/$name/size")
total=$(blockdev --getsz "$disk")
# 512-byte sectors after the partition, less the backup GPT (33 sectors) and alignment slack.
free=$(( total - start - size - 2048 ))
if [ "$free" -lt $(( 64 * 2048 )) ]; then
  echo "flakeboot-grow-data: $part fills $disk ($(( size / 2048 )) MiB)"
  exit 0
fi
# The writes go through a private node of the disk: udev watches /dev/vda and, when a writer
# closes it, has the kernel re-read the whole partition table, which for a moment takes away the
# partition dm-verity is about to open (seen: "verity: Data device lookup failed (-EBUSY)").
majmin=$(cat "/sys/class/block/${disk##*/}/dev")
# In /dev: /run is mounted nodev in the initrd.
node=/dev/.flakeboot-grow-data.disk
rm -f "$node"
mknod -m 600 "$node" b "${majmin%%:*}" "${majmin##*:}"
trap 'rm -f "$node"' EXIT
# Move the backup GPT to the disk's end (the image put it at the end of the image), then give the
# data partition everything up to it; the kernel is told about this one partition only.
sfdisk --quiet --no-reread --no-tell-kernel --relocate gpt-bak-std "$node"
echo ", +" | sfdisk --quiet --no-reread --no-tell-kernel -N "$n" "$node"
partx --update --nr "$n" "$node"
echo "flakeboot-grow-data: $part grown from $(( size / 2048 )) MiB to $(( $(cat "/sys/class/block/$name/size") / 2048 )) MiB ($disk)"
