#!/bin/sh
# usage: kernel-modules.sh CACHE_DIR OUT_DIR
# Copy virtio_net and the modules it needs (virtio, virtio_ring, virtio_pci*, failover,
# net_failover), and netconsole with configfs, from the kernel package qemu/kernel.sh pins into
# OUT_DIR (cached in CACHE_DIR).
set -eu
cache=${1:?usage: kernel-modules.sh CACHE_DIR OUT_DIR}
out=${2:?usage: kernel-modules.sh CACHE_DIR OUT_DIR}
eval "$(grep -E '^KERNEL_(PACKAGE|VERSION)=' "$(dirname "$0")/kernel.sh")"
mods="$cache/modules-$KERNEL_VERSION"
if [ ! -f "$mods/netconsole.ko" ]; then
    exec 9>"$cache/.modules.lock"
    flock 9
    if [ ! -f "$mods/netconsole.ko" ]; then
        work=$(mktemp -d "$cache/.modules.XXXXXX")
        trap 'rm -rf "$work"' EXIT INT TERM
        (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$KERNEL_PACKAGE=$KERNEL_VERSION" >&2)
        dpkg-deb --fsys-tarfile "$work"/*.deb | tar x -C "$work" --wildcards \
            '*/virtio_net.ko' '*/virtio.ko' '*/virtio_ring.ko' '*/virtio_pci*.ko' \
            '*/failover.ko' '*/net_failover.ko' '*/netconsole.ko' '*/configfs.ko'
        rm -rf "$mods.tmp" "$mods"
        mkdir -p "$mods.tmp"
        find "$work" -name '*.ko' -exec cp {} "$mods.tmp/" \;
        mv "$mods.tmp" "$mods"
    fi
fi
mkdir -p "$out"
cp "$mods"/*.ko "$out/"
