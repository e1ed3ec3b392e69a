#!/bin/bash
# dracut module (image/base.sh copies it into the base tree): in the initrd, before anything
# uses the data partition, it takes the rest of the disk (flakeboot-grow-data.sh).

check() {
    # Only when asked for (image/dracut.conf: add_dracutmodules).
    return 255
}

depends() {
    echo systemd
}

install() {
    inst_multiple sfdisk partx blockdev readlink cat mknod rm
    inst_script "$moddir/flakeboot-grow-data.sh" /usr/lib/flakeboot/grow-data
    inst_simple "$moddir/flakeboot-grow-data.service" "$systemdsystemunitdir/flakeboot-grow-data.service"
    $SYSTEMCTL -q --root "$initdir" add-wants initrd.target flakeboot-grow-data.service
}
