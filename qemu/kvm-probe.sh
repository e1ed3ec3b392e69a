#!/bin/sh
# usage: kvm-probe.sh VMLINUZ [CACHE_DIR]
# Print `kvm` when QEMU really boots a Linux kernel with KVM here, else `tcg`.
#
# /dev/kvm existing proves nothing: a restricted nested KVM makes QEMU abort, or run real-mode
# code and then hang in the kernel. So this boots the test kernel (no initrd: it panics, and
# -no-reboot ends QEMU) and waits for its first console line. About a second when KVM works; at
# most PROBE_TIMEOUT seconds (default 8) when it does not. With CACHE_DIR the answer is kept
# there until the machine reboots (accel-<boot id>), so a test run or a demo pays for it once.
set -eu

kernel=${1:?usage: kvm-probe.sh VMLINUZ [CACHE_DIR]}
cache=${2:-}

if [ ! -c /dev/kvm ]; then
    echo tcg
    exit 0
fi

if [ -n "$cache" ]; then
    cached="$cache/accel-$(cat /proc/sys/kernel/random/boot_id)"
    case $(cat "$cached" 2>/dev/null || true) in
        kvm | tcg)
            cat "$cached"
            exit 0
            ;;
    esac
fi

answer=tcg
if timeout "${PROBE_TIMEOUT:-8}" qemu-system-x86_64 -accel kvm -machine pc -cpu host \
    -nodefaults -display none -no-reboot -m 128 \
    -kernel "$kernel" -append "console=ttyS0 panic=-1" \
    -serial stdio </dev/null 2>/dev/null | grep -q -m1 'Linux version'; then
    answer=kvm
fi
if [ -n "$cache" ]; then
    mkdir -p "$cache"
    echo "$answer" >"$cached"
fi
echo "$answer"
