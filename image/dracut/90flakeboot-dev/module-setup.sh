#!/bin/bash
# dracut module (image/modules.sh copies it into the base tree): the development mode's writable
# root. The development boot entry (image/build.sh: the UKIs' profile @1) has
# `systemd.volatile=overlay` on its command line; systemd's fstab-generator then pulls in
# systemd-volatile-root.service, which mounts an overlay over /sysroot: the read-only dm-verity
# squashfs below, a tmpfs above. Nothing written reaches a disk. A normal boot never starts it.

check() {
    # Only when asked for (image/modules.sh: --add).
    return 255
}

depends() {
    echo systemd
}

installkernel() {
    instmods overlay
}

install() {
    inst_multiple "$systemdutildir/systemd-volatile-root" \
        "$systemdsystemunitdir/systemd-volatile-root.service"
}
