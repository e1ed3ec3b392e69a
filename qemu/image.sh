#!/bin/sh
# usage: image.sh DISK TAP MAC SERIAL [EXTRA_QEMU_ARGS...]
# Boot a built appliance image (image/build.sh) in QEMU: q35, OVMF in pflash with a writable
# variable store, the image as a virtio disk, its LAN port on an existing tap device, the serial
# console to SERIAL (a file path, appended to, so a restarted VM's console follows the last
# one's; `-` for stdout, or `terminal`).
# The VM reboots in place (no -no-reboot): rollbacks are reboots. The disk is used directly
# (make a copy first to keep the built image pristine).
# Environment: QEMU_ACCEL (tcg | kvm; default tcg), QEMU_MEM (MiB, 1024), QEMU_SMP (2),
# QEMU_VARS (the OVMF variable store; created from OVMF_VARS when missing; default SERIAL.vars.fd),
# OVMF_CODE / OVMF_VARS (firmware images), QEMU_SECURE_BOOT=1 (OVMF's Secure Boot build, with
# SMM; OVMF_VARS should then be a store with the image's certificate enrolled, as
# image/test-artifacts.sh makes: ovmf-vars-secboot.fd).
# Extra arguments are passed to QEMU, e.g. an update disk for the update-disk hook:
#   -drive if=none,id=upd,format=raw,readonly=on,file=BUNDLE.tar
#   -device virtio-blk-pci,drive=upd,serial=flakeboot-update
# The script execs QEMU: the caller's PID is QEMU's.
set -eu

usage="usage: image.sh DISK TAP MAC SERIAL [EXTRA_QEMU_ARGS...]"
[ $# -ge 4 ] || { echo "$usage" >&2; exit 2; }
disk=$1 tap=$2 mac=$3 serial=$4
shift 4

accel=${QEMU_ACCEL:-tcg}
[ "$accel" = tcg ] && accel=tcg,thread=multi
ovmf_code=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
machine=q35
if [ "${QEMU_SECURE_BOOT:-0}" = 1 ]; then
  # The Secure Boot build keeps its variables in SMM-only flash, so the OS cannot rewrite them.
  ovmf_code=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.secboot.fd}
  machine=q35,smm=on
  set -- -global driver=cfi.pflash01,property=secure,value=on -global ICH9-LPC.disable_s3=1 "$@"
fi
ovmf_vars=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

case $serial in
    -) vars=${QEMU_VARS:?QEMU_VARS must name the OVMF variable store}; set -- -display none -serial stdio "$@" ;;
    terminal) vars=${QEMU_VARS:-$disk.vars.fd}; set -- -nographic -serial stdio "$@" ;;
    *) vars=${QEMU_VARS:-$serial.vars.fd}
       set -- -display none -chardev "file,id=console,path=$serial,append=on" -serial chardev:console "$@" ;;
esac
[ -e "$vars" ] || cp "$ovmf_vars" "$vars"

# With two vCPUs OVMF now and then hangs after a warm reset under TCG on a loaded host, waiting
# for its second vCPU (image/README.md); the image tests pass -no-reboot and start a new QEMU
# for each boot.
# ICH9-LPC.noreboot=false: the q35 chipset's TCO watchdog may reset the machine, like a real
# board's (QEMU's default pins it to "no reboot"); the image arms it (systemd's watchdog).
exec qemu-system-x86_64 -machine "$machine" -accel "$accel" -cpu max -smp "${QEMU_SMP:-2}" \
    -m "${QEMU_MEM:-1024}" -nodefaults -global ICH9-LPC.noreboot=false \
    -drive "if=pflash,format=raw,readonly=on,file=$ovmf_code" \
    -drive "if=pflash,format=raw,file=$vars" \
    -drive "if=virtio,format=raw,file=$disk" \
    -netdev "tap,id=lan,ifname=$tap,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=lan,mac=$mac,romfile=" \
    "$@"
