#!/usr/bin/env bash
# Installs what flakeboot's build, tests and demo need on Debian 12 (as root). Idempotent.
#   scripts/install-deps.sh          everything the test suite needs
#   scripts/install-deps.sh demo     only what the demo needs
#   scripts/install-deps.sh image    only what image/build.sh needs
set -euo pipefail

demo=(qemu-system-x86 ipxe-qemu ipxe ovmf busybox-static cpio iproute2 curl ca-certificates nix-bin git)
image=(mmdebstrap cryptsetup-bin squashfs-tools dosfstools mtools fdisk zstd binutils e2fsprogs openssl)
tests=("${demo[@]}" "${image[@]}" nftables python3 bsdutils dnsmasq-base kea-admin isc-dhcp-client udhcpc bind9-dnsutils tftp-hpa tcpdump nix-bin git kea-dhcp4-server tftpd-hpa nginx-light wrk chromium chromium-driver wireguard-go wireguard-tools prometheus openssh-server openssh-client)

want=("${tests[@]}")
[ "${1:-}" = demo ] && want=("${demo[@]}")
[ "${1:-}" = image ] && want=("${image[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "flakeboot: these Debian packages are missing: ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "==> installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "flakeboot: cargo is not installed: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
if [ -z "${1:-}" ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
