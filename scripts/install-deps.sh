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

# Debian 13's iPXE (the binaries the appliance image serves, 1.21.1+git20250501): the tests serve
# it where Debian 12's 2019 build behaves differently (its ipxe.efi never returns to UEFI firmware
# after `exit`). Architecture `all`, no dependencies: unpacked, not installed.
ipxe13=/opt/flakeboot/ipxe-trixie
if [ -z "${1:-}" ] && [ ! -f "$ipxe13/ipxe.efi" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "flakeboot: $ipxe13 is missing (Debian 13's iPXE, for the tests); run as root to install it" >&2
    exit 1
  fi
  echo "==> unpacking Debian 13's ipxe into $ipxe13"
  apt13="$(mktemp -d)"
  mkdir -p "$apt13/lists/partial" "$apt13/cache/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" > "$apt13/sources.list"
  T=(-o "Dir::Etc::sourcelist=$apt13/sources.list" -o Dir::Etc::sourceparts=- \
     -o "Dir::State::Lists=$apt13/lists" -o "Dir::Cache=$apt13/cache" -o APT::Sandbox::User=root)
  apt-get "${T[@]}" update -qq
  (cd "$apt13" && apt-get "${T[@]}" download -qq ipxe)
  dpkg -x "$apt13"/ipxe_*.deb "$apt13/x"
  rm -rf "$ipxe13.tmp" && mkdir -p "$ipxe13.tmp"
  cp -L "$apt13"/x/usr/lib/ipxe/{ipxe.efi,snponly.efi,undionly.kpxe} "$ipxe13.tmp/"
  rm -rf "$ipxe13" && mv "$ipxe13.tmp" "$ipxe13"
  rm -rf "$apt13"
fi

if ! command -v cargo >/dev/null; then
  echo "flakeboot: cargo is not installed: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
if [ -z "${1:-}" ] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
