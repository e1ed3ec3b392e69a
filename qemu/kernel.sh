#!/bin/sh
# usage: kernel.sh CACHE_DIR
# Fetch the pinned Debian kernel once into CACHE_DIR and print the path of its vmlinuz.
#
# The pin is here and only here (the Rust harness and demo.sh both call this script). The package
# is downloaded with `apt-get download`, only boot/vmlinuz-* is kept, and its sha256 must match.
# To move the pin: `apt-cache policy linux-image-6.1.0-*-amd64`, pick a version, update the three
# values below and the hash this script prints on mismatch.
set -eu

KERNEL_PACKAGE=linux-image-6.1.0-50-amd64
KERNEL_VERSION=6.1.176-1
KERNEL_SHA256=d8808aa4ca188560da1e6d749dcb930c87a5fd8b11ebff1f3fa6d728af35203d

cache=${1:?usage: kernel.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
out="$cache/vmlinuz-$KERNEL_VERSION"

verified() {
    [ -f "$out" ] && [ "$(sha256sum "$out" | cut -d' ' -f1)" = "$KERNEL_SHA256" ]
}

if verified; then
    echo "$out"
    exit 0
fi

# One fetch at a time when several tests start together.
exec 9>"$cache/.kernel.lock"
flock 9
if verified; then
    echo "$out"
    exit 0
fi

work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
(
    cd "$work"
    # A machine whose package lists were never fetched (or were cleaned) knows no such package:
    # refresh them once before giving up.
    if ! apt-get download -q -o APT::Sandbox::User=root "$KERNEL_PACKAGE=$KERNEL_VERSION" >&2 &&
        ! { apt-get update -qq >&2 &&
            apt-get download -q -o APT::Sandbox::User=root "$KERNEL_PACKAGE=$KERNEL_VERSION" >&2; }; then
        echo "kernel.sh: cannot download $KERNEL_PACKAGE=$KERNEL_VERSION (is apt's package list" \
            "current? run apt-get update; if the mirror dropped this version, pick one from" \
            "'apt-cache policy linux-image-amd64' and update the pin in qemu/kernel.sh)" >&2
        exit 1
    fi
    dpkg -x ./*.deb root
)
vmlinuz=$(find "$work/root/boot" -name 'vmlinuz-*' -type f 2>/dev/null | head -n1)
if [ -z "$vmlinuz" ]; then
    echo "kernel.sh: $KERNEL_PACKAGE has no boot/vmlinuz-*" >&2
    exit 1
fi
got=$(sha256sum "$vmlinuz" | cut -d' ' -f1)
if [ "$got" != "$KERNEL_SHA256" ]; then
    echo "kernel.sh: sha256 mismatch for $KERNEL_PACKAGE=$KERNEL_VERSION vmlinuz:" \
        "expected $KERNEL_SHA256, got $got. Refusing to use it; if the new package is" \
        "legitimate, update KERNEL_SHA256 in qemu/kernel.sh" >&2
    exit 1
fi
mv "$vmlinuz" "$out"
echo "$out"
