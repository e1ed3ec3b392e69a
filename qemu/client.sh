#!/bin/sh
# usage: client.sh bios|uefi|uefi-pxe TAP MAC SERIAL [EXTRA_QEMU_ARGS...]
# Run one diskless netboot client on an existing tap device. The one place the hil-tests and the
# demo get their QEMU command lines from.
#
#   bios      SeaBIOS (-machine pc), virtio-net with QEMU's iPXE option ROM; graphics=off makes
#             SeaBIOS (and so iPXE) print on the serial console too
#   uefi      OVMF (-machine q35), virtio-net with the iPXE EFI option ROM
#   uefi-pxe  OVMF with `romfile=` empty: the firmware's own PXE client (needs TFTP ipxe.efi)
#
# SERIAL: a file path (the console is written there), `-` (console on stdout, for a harness that
# reads and timestamps it), or `terminal` (-nographic on this terminal; Ctrl-C ends QEMU).
# Environment: QEMU_ACCEL (tcg | kvm; default tcg: see qemu/kvm-probe.sh), QEMU_MEM (MiB, 512),
# QEMU_VARS (the writable OVMF variable store to create; default SERIAL.vars.fd, required when
# SERIAL is not a file), OVMF_CODE / OVMF_VARS (firmware images), QEMU_NIC_BOOTINDEX (uefi: the
# NIC's bootindex, for a local disk passed with a later one).
# The script execs QEMU: the caller's PID is QEMU's, so ending that PID ends the VM.
# -no-reboot: QEMU exits when the guest powers off or panics (panic=-1).
set -eu

usage="usage: client.sh bios|uefi|uefi-pxe TAP MAC SERIAL [EXTRA_QEMU_ARGS...]"
[ $# -ge 4 ] || { echo "$usage" >&2; exit 2; }
kind=$1 tap=$2 mac=$3 serial=$4
shift 4

accel=${QEMU_ACCEL:-tcg}
mem=${QEMU_MEM:-512}
ovmf_code=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
ovmf_vars=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

case $serial in
    -) set -- -display none -serial stdio "$@" ;;
    terminal) set -- -nographic -serial stdio "$@" ;;
    *) set -- -display none -serial "file:$serial" "$@" ;;
esac

case $kind in
    bios)
        set -- -machine pc,graphics=off -device "virtio-net-pci,netdev=n0,mac=$mac" "$@"
        ;;
    uefi | uefi-pxe)
        case $serial in
            - | terminal) vars=${QEMU_VARS:?QEMU_VARS must name the OVMF variable store to create} ;;
            *) vars=${QEMU_VARS:-$serial.vars.fd} ;;
        esac
        cp "$ovmf_vars" "$vars"
        nic="virtio-net-pci,netdev=n0,mac=$mac"
        [ "$kind" = uefi-pxe ] && nic="$nic,romfile="
        # With a local disk given a later bootindex, the NIC first: OVMF orders its boot
        # options by bootindex (it ignores -boot).
        [ -n "${QEMU_NIC_BOOTINDEX:-}" ] && nic="$nic,bootindex=$QEMU_NIC_BOOTINDEX"
        set -- -machine q35 \
            -drive "if=pflash,format=raw,readonly=on,file=$ovmf_code" \
            -drive "if=pflash,format=raw,file=$vars" \
            -device "$nic" "$@"
        ;;
    *)
        echo "$usage" >&2
        exit 2
        ;;
esac

exec qemu-system-x86_64 -accel "$accel" -m "$mem" -smp 1 -nodefaults -no-reboot -boot n \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" "$@"
