#!/usr/bin/env bash
# Installs what flakeboot's build, tests and demo need on Debian 12 (as root). Idempotent.
#   scripts/install-deps.sh          everything the test suite needs
#   scripts/install-deps.sh demo     only what the demo needs
#   scripts/install-deps.sh image    only what image/build.sh needs
set -euo pipefail

demo=(qemu-system-x86 ipxe-qemu ipxe ovmf busybox-static cpio iproute2 curl ca-certificates nix-bin git)
image=(mmdebstrap cryptsetup-bin squashfs-tools dosfstools mtools fdisk zstd binutils e2fsprogs openssl osslsigncode sbsigntool)
tests=("${demo[@]}" "${image[@]}" nftables python3 bsdutils dnsmasq-base kea-admin isc-dhcp-client udhcpc bind9-dnsutils tftp-hpa tcpdump nix-bin git kea-dhcp4-server tftpd-hpa nginx-light wrk chromium chromium-driver wireguard-go wireguard-tools prometheus openssh-server openssh-client python3-venv)

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

# virt-fw-vars, from PyPI's virt-firmware (Debian 12 has no package): the image tests enroll the
# image's UEFI Secure Boot certificate in an OVMF variable store with it.
vfw=/opt/flakeboot/virt-firmware
if [ -z "${1:-}" ] && [ ! -x "$vfw/bin/virt-fw-vars" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "flakeboot: $vfw is missing (virt-firmware, for the image tests); run as root to install it" >&2
    exit 1
  fi
  echo "==> installing virt-firmware into $vfw (pip)"
  # In place (a venv's scripts name its path); the script appears once pip has installed all.
  rm -rf "$vfw"
  python3 -m venv "$vfw"
  "$vfw/bin/pip" install -q --disable-pip-version-check 'virt-firmware==26.10'
fi

if ! command -v cargo >/dev/null; then
  echo "flakeboot: cargo is not installed: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
if [ -z "${1:-}" ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
