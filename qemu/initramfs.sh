#!/bin/sh
# usage: initramfs.sh marker OUT.cpio.gz TOKEN
#        initramfs.sh demo   OUT.cpio.gz HOSTNAME
# Build a tiny busybox-static initramfs (about 1 MB) whose /init prints one line and powers off.
#
#  marker: `FLAKEBOOT-MARKER TOKEN:CLIENT cmdline=<...>`, CLIENT being the value of `fbt.marker=`
#          on the kernel command line (`none` without one): the hil-tests wait for this line.
#  demo:   a banner `Booted from flakeboot: host HOSTNAME` and the command line.
# Needs root (mknod of /dev/console and /dev/null: without /dev/console the kernel prints nothing
# from /init), busybox-static, cpio and gzip.
set -eu

kind=${1:?usage: initramfs.sh marker|demo OUT TOKEN|HOSTNAME}
out=${2:?usage: initramfs.sh marker|demo OUT TOKEN|HOSTNAME}
arg=${3:?usage: initramfs.sh marker|demo OUT TOKEN|HOSTNAME}

busybox=/bin/busybox
[ -x "$busybox" ] || busybox=/usr/bin/busybox
# A dynamically linked busybox would find no libc in the initramfs: the kernel would panic.
if ! "$busybox" --list 2>/dev/null | grep -qx poweroff ||
    ! LC_ALL=C ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable'; then
    echo "initramfs.sh: needs a static busybox at /bin/busybox (apt-get install busybox-static)" >&2
    exit 1
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/flakeboot-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM
mkdir -p "$root/bin" "$root/dev" "$root/proc"
cp "$busybox" "$root/bin/busybox"
for applet in sh mount cat echo poweroff sleep; do
    ln -s busybox "$root/bin/$applet"
done
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3

case $kind in
    marker)
        cat >"$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
cmdline=\$(cat /proc/cmdline)
client=none
for word in \$cmdline; do
    case \$word in fbt.marker=*) client=\${word#fbt.marker=} ;; esac
done
echo "FLAKEBOOT-MARKER $arg:\$client cmdline=\$cmdline"
poweroff -f
INIT
        ;;
    demo)
        cat >"$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc
echo
echo "=================================================================="
echo "  Booted from flakeboot: host $arg"
echo "  kernel command line: \$(cat /proc/cmdline)"
echo "  This demo system powers off in 5 seconds."
echo "=================================================================="
echo
sleep 5
poweroff -f
INIT
        ;;
    *)
        echo "initramfs.sh: unknown kind $kind (marker | demo)" >&2
        exit 1
        ;;
esac
chmod 755 "$root/init"

tmp="$out.tmp.$$"
(cd "$root" && find . | cpio -o -H newc --owner 0:0 --quiet | gzip -9) >"$tmp"
mv "$tmp" "$out"
