#!/usr/bin/env bash
# Builds the flakeboot appliance image (Debian 13 inside) for a board (as root, on Debian 12):
#   ./image/build.sh qemu-x86_64
# writes image/out/flakeboot-<version>-<board>.img (+ .img.zst) and the update bundle
# image/out/flakeboot-<version>-<board>.bundle.tar. Nothing is mounted and no loop device is
# used: squashfs + veritysetup + objcopy (UKI) + mtools (ESP) + sfdisk (GPT) + dd.
# Environment:
#   FLAKEBOOT_VERSION   image version (default: the workspace version); salts and UUIDs derive
#                       from it, so the same inputs give the same root hash
#   FLAKEBOOT_BIN       the daemon binary to package (default: cargo build --release)
#   FLAKEBOOT_OUT       output directory (default: image/out)
#   FLAKEBOOT_NO_IMAGE  set to 1 to write only the bundle (updates)
#   FLAKEBOOT_NO_CARGO  set to 1 when the release binaries are already built
#   FLAKEBOOT_NO_ZST    set to 1 to skip the compressed copy of the image (the tests boot the
#                       raw image; the .zst is what is published)
#   FLAKEBOOT_SIGNING_KEY  the ed25519 private key (PEM: `openssl genpkey -algorithm ed25519`)
#                       the bundle is signed with; the image accepts bundles signed by it.
#                       Without it a development key is used (made once in image/cache) and
#                       the image says "development build" on its console and dashboard
#   FLAKEBOOT_DELTA_FROM  a full bundle of an earlier version (its .bundle.tar): also write
#                       flakeboot-<version>-<board>.delta-from-<that version>.bundle.tar, which
#                       carries only what changed against it and installs only onto a slot
#                       running it (image/README.md)
#   FLAKEBOOT_ACCEPT_KEYS  more public keys (PEM files, space-separated) the image accepts, for
#                       moving to a new signing key
#   FLAKEBOOT_UEFI_KEY, FLAKEBOOT_UEFI_CERT  the RSA private key and X.509 certificate (PEM) that
#                       sign systemd-boot and the UKIs for UEFI Secure Boot (osslsigncode, the
#                       signing time SOURCE_DATE_EPOCH; checked with sbverify); enroll the
#                       certificate in the board's db. Without them a development pair is made
#                       once in image/cache (a development build either way when the bundle key
#                       is the development one)
# Beside the outputs, update-keys/ holds the public keys the image accepts (`flakeboot update
# apply --disk IMG --keys DIR` uses them offline) and uefi-db.pem the certificate to enroll.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
board_name="${1:?usage: image/build.sh BOARD (see board/*.toml)}"
board_file="$root/board/$board_name.toml"
[ -f "$board_file" ] || { echo "build.sh: no board file $board_file" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "build.sh: run as root (the base tree is built with mmdebstrap)" >&2; exit 1; }
# The Debian packages it needs, installed with apt-get when missing (as qemu/demo.sh does).
"$root/scripts/install-deps.sh" image
for t in mmdebstrap mksquashfs veritysetup objcopy mkfs.fat mcopy mmd sfdisk zstd mkfs.ext4 openssl osslsigncode sbverify; do
  command -v "$t" >/dev/null || { echo "build.sh: $t is missing: scripts/install-deps.sh installs it" >&2; exit 1; }
done
export MTOOLS_SKIP_CHECK=1 SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}"
t0=$(date +%s)

version="${FLAKEBOOT_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)}"
out="${FLAKEBOOT_OUT:-$here/out}"
mkdir -p "$out"

echo "==> binaries"
[ "${FLAKEBOOT_NO_CARGO:-0}" = 1 ] || (cd "$root" && cargo build --release --locked -q -p flakeboot -p flakeboot-board)
bin="${FLAKEBOOT_BIN:-$root/target/release/flakeboot}"
eval "$("$root/target/release/flakeboot-board" shell "$board_file")"
[ "$FB_BUILT" = true ] || { echo "build.sh: board $FB_BOARD is described but not buildable yet" >&2; exit 1; }

# Reproducible identities derived from the version.
derive() { printf 'flakeboot/%s/%s' "$version" "$1" | sha256sum | cut -c1-64; }
uuid_of() { local h; h="$(derive "$1")"; echo "${h:0:8}-${h:8:4}-4${h:13:3}-8${h:17:3}-${h:20:12}"; }
salt="$(derive verity-salt)"
size() { stat -c %s "$1"; }

echo "==> signing key"
signing_key="${FLAKEBOOT_SIGNING_KEY:-}"
development=0
if [ -z "$signing_key" ]; then
  development=1
  signing_key="$here/cache/development-signing-key.pem"
  if [ ! -s "$signing_key" ]; then
    mkdir -p "$here/cache"
    (umask 077 && openssl genpkey -algorithm ed25519 -out "$signing_key.tmp")
    mv "$signing_key.tmp" "$signing_key"
  fi
  echo "    no FLAKEBOOT_SIGNING_KEY: a development build, signed with $signing_key"
fi
[ -r "$signing_key" ] || { echo "build.sh: cannot read the signing key $signing_key" >&2; exit 1; }
key_name="$(basename "$signing_key" .pem)"
[ "$development" = 0 ] || key_name=development
keys="$out/update-keys"
rm -rf "$keys"
mkdir -p "$keys"
openssl pkey -in "$signing_key" -pubout -out "$keys/$key_name.pem" ||
  { echo "build.sh: $signing_key is not a private key openssl can read" >&2; exit 1; }
for extra in ${FLAKEBOOT_ACCEPT_KEYS:-}; do
  openssl pkey -pubin -in "$extra" -out "$keys/$(basename "$extra" .pem).pem" ||
    { echo "build.sh: FLAKEBOOT_ACCEPT_KEYS: $extra is not a public key" >&2; exit 1; }
done

echo "==> UEFI Secure Boot key"
uefi_key="${FLAKEBOOT_UEFI_KEY:-}" uefi_cert="${FLAKEBOOT_UEFI_CERT:-}"
if [ -z "$uefi_key" ] && [ -z "$uefi_cert" ]; then
  uefi_key="$here/cache/development-uefi-key.pem" uefi_cert="$here/cache/development-uefi-cert.pem"
  if [ ! -s "$uefi_cert" ]; then
    mkdir -p "$here/cache"
    # RSA 2048: the key type UEFI firmware verifies Authenticode signatures with.
    (umask 077 && openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -subj "/CN=flakeboot development UEFI key/" -keyout "$uefi_key.tmp" -out "$uefi_cert.tmp" 2>/dev/null)
    mv "$uefi_key.tmp" "$uefi_key"
    mv "$uefi_cert.tmp" "$uefi_cert"
  fi
  echo "    no FLAKEBOOT_UEFI_KEY: systemd-boot and the UKIs are signed with $uefi_cert"
fi
[ -r "$uefi_key" ] && [ -r "$uefi_cert" ] ||
  { echo "build.sh: FLAKEBOOT_UEFI_KEY and FLAKEBOOT_UEFI_CERT name a readable key and certificate, both or neither" >&2; exit 1; }
openssl x509 -in "$uefi_cert" -out "$out/uefi-db.pem" ||
  { echo "build.sh: $uefi_cert is not an X.509 certificate (PEM)" >&2; exit 1; }
# efi_sign SRC DEST: an Authenticode signature the firmware checks against its db. Its signing
# time is SOURCE_DATE_EPOCH (sbsign would put the current time in it): the same inputs and
# osslsigncode version give the same signed bytes.
efi_sign() {
  rm -f "$2"
  osslsigncode sign -h sha256 -certs "$uefi_cert" -key "$uefi_key" -time "$SOURCE_DATE_EPOCH" \
    -in "$1" -out "$2" >/dev/null 2>&1 || { echo "build.sh: osslsigncode could not sign $1" >&2; exit 1; }
  sbverify --cert "$uefi_cert" "$2" >/dev/null 2>&1 || { echo "build.sh: sbverify $2 failed" >&2; exit 1; }
}

echo "==> base tree"
tree="$("$here/base.sh")"
kver="$(basename "$(ls -d "$tree"/lib/modules/* | head -1)")"

work="$out/work-$FB_BOARD"
rm -rf "$work"
mkdir -p "$work"
echo "==> root tree (hard links into the cached base, version $version, kernel $kver)"
rootdir="$work/root"
cp -al "$tree" "$rootdir"
rm -f "$rootdir/.complete"
# Replace, never write through, a hard-linked file.
put() { # put SRC DEST MODE
  rm -f "$rootdir$2"; mkdir -p "$(dirname "$rootdir$2")"; cp "$1" "$rootdir$2"; chmod "$3" "$rootdir$2"
}
write() { # write DEST MODE  (content on stdin)
  rm -f "$rootdir$1"; mkdir -p "$(dirname "$rootdir$1")"; cat > "$rootdir$1"; chmod "$2" "$rootdir$1"
}
(cd "$here/rootfs" && find . -type f) | while read -r f; do
  put "$here/rootfs/$f" "${f#.}" "$(stat -c %a "$here/rootfs/$f")"
done
put "$bin" /usr/bin/flakeboot 755
echo "$version" | write /usr/lib/flakeboot/version 644
echo "$FB_BOARD" | write /usr/lib/flakeboot/board 644
for k in "$keys"/*.pem; do put "$k" "/usr/lib/flakeboot/update-keys/$(basename "$k")" 644; done
if [ "$development" = 1 ]; then
  echo "development build: updates are signed with a development key, not a release key" |
    write /usr/lib/flakeboot/development-build 644
fi
"$root/target/release/flakeboot-board" shell "$board_file" | write /usr/lib/flakeboot/board.env 644
put "$root/README.md" /usr/share/doc/flakeboot/README.md 644
# The board's WAN port (if it has one) is the config's [wan]: its address by DHCP
# (systemd-networkd, below); flakeboot firewalls it (only WireGuard answers there) and, in
# router mode, forwards the LAN to it with NAT.
wan_section=""
if [ -n "$FB_WAN" ]; then
  wan_section=$(printf '\n[wan]\ninterface = "%s"\nmode = "dhcp"\n' "$FB_WAN")
fi
write /usr/share/flakeboot/default.toml 644 <<TOML
# Generated by image/build.sh for board $FB_BOARD: proxy mode on the LAN port, beside the
# LAN's existing DHCP server. Edit /var/lib/flakeboot/flakeboot.toml (this file is its default).
state_dir = "/var/lib/flakeboot"

[lan]
interface = "$FB_LAN"

[dhcp]
mode = "proxy"
$wan_section
[ipxe]
dir = "/usr/lib/ipxe"

[nix]
# The store is on the data partition (the rest of the disk, grown at first boot in the initrd):
# collect garbage after builds and daily, and refuse a build that would start with less than
# this free.
gc = true
min_free = "128M"
TOML
write /etc/systemd/network/20-lan.network 644 <<NET
# The LAN port: an address from the LAN's DHCP server (flakeboot-lan adds a static fallback).
[Match]
Name=$FB_LAN

[Network]
DHCP=ipv4
IPv6AcceptRA=yes
LinkLocalAddressing=ipv6

[DHCPv4]
ClientIdentifier=mac
NET
if [ -n "$FB_WAN" ]; then
write /etc/systemd/network/30-wan.network 644 <<NET
# The WAN port ([wan] in flakeboot.toml): an address from the upstream's DHCP server; the DNS
# servers it gives reach resolved (and flakeboot). flakeboot's nftables table firewalls it.
[Match]
Name=$FB_WAN

[Network]
DHCP=ipv4
IPv6AcceptRA=yes
LinkLocalAddressing=ipv6

[DHCPv4]
ClientIdentifier=mac
UseDNS=yes
NET
fi
printf '' | write /etc/machine-id 444
mkdir -p "$rootdir/nix" "$rootdir/efi"
# systemd-boot's package hook has no ESP here; the root never installs a bootloader itself.
# /etc is read-only: resolv.conf points at resolved's stub file (DNS servers from the lease).
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$rootdir/etc/resolv.conf"
systemctl --root="$rootdir" enable systemd-networkd.service systemd-resolved.service flakeboot.service flakeboot-lan.service \
  flakeboot-health.service flakeboot-console.service flakeboot-data.service \
  flakeboot-update-disk.service flakeboot-slots.service >/dev/null 2>&1
systemctl --root="$rootdir" mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer >/dev/null 2>&1 || true

echo "==> data partition (/var, with /nix on it)"
mv "$rootdir/var" "$work/var"
mkdir -p "$rootdir/var" "$work/var/nix/store" "$work/var/nix/var/nix" "$work/var/lib/flakeboot"
# The kernel and initrd live in the UKIs; /boot keeps iPXE (/usr/lib/ipxe/ipxe.efi links there).
rm -f "$rootdir"/boot/vmlinuz-* "$rootdir"/boot/initrd.img-* "$rootdir"/boot/System.map-* "$rootdir"/boot/config-*

echo "==> squashfs + verity"
# SOURCE_DATE_EPOCH sets every squashfs timestamp (reproducible root hash).
mksquashfs "$rootdir" "$work/root.sqfs" -noappend -quiet -no-progress -comp zstd -Xcompression-level 3 \
  -all-root
veritysetup format "$work/root.sqfs" "$work/verity.img" --salt="$salt" --uuid="$(uuid_of verity)" \
  --root-hash-file="$work/roothash" >/dev/null
roothash="$(cat "$work/roothash")"
sqfs_mib=$(( ($(stat -c %s "$work/root.sqfs") + 1048575) / 1048576 ))
verity_mib=$(( ($(stat -c %s "$work/verity.img") + 1048575) / 1048576 ))
[ "$sqfs_mib" -le "$FB_ROOT_MIB" ] || { echo "build.sh: root is $sqfs_mib MiB, slot is $FB_ROOT_MIB MiB (board disk.root_mib)" >&2; exit 1; }
[ "$verity_mib" -le "$FB_VERITY_MIB" ] || { echo "build.sh: verity is $verity_mib MiB > disk.verity_mib" >&2; exit 1; }
echo "    root $sqfs_mib MiB, verity $verity_mib MiB, roothash $roothash"

echo "==> UKIs"
# objcopy stamps the PE header with the current time: make it SOURCE_DATE_EPOCH (and the
# checksum, which UEFI does not check, 0) so the same inputs give the same UKI bytes.
pe_fix() {
  local f=$1 off
  off=$(od -An -tu4 -j60 -N4 "$f" | tr -d ' ')
  printf "$(printf '%08x' "$SOURCE_DATE_EPOCH" | sed 's/\(..\)\(..\)\(..\)\(..\)/\\x\4\\x\3\\x\2\\x\1/')" |
    dd of="$f" bs=1 seek=$((off + 8)) conv=notrunc status=none
  printf '\0\0\0\0' | dd of="$f" bs=1 seek=$((off + 88)) conv=notrunc status=none
}
stub="$tree/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
# The new sections go after the stub's own, each aligned to its SectionAlignment (objdump's VMAs
# include the ImageBase, which systemd 257's stub puts high: fixed VMAs would fall below it).
align=$((16#$(objdump -p "$stub" | sed -n 's/^SectionAlignment[[:space:]]*//p')))
stub_end=$(objdump -h "$stub" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ {print $3, $4}' |
  while read -r size vma; do echo $((16#$vma + 16#$size)); done | sort -n | tail -1)
up() { echo $(( ($1 + align - 1) / align * align )); }
hex() { printf '0x%x' "$1"; }
# Each UKI has two profiles (systemd-stub's multi-profile UKIs; systemd-boot shows one entry for
# each, `flakeboot-<n>-<slot>.efi` and `flakeboot-<n>-<slot>.efi@dev`): profile 0 is the normal
# boot with the base sections, profile 1 (ID=dev) the development mode, whose own .cmdline adds
# `flakeboot.dev=1` (the daemon and the console banner show it), `systemd.volatile=overlay` (the
# initrd mounts a writable overlay in memory over the read-only root: image/dracut/90flakeboot-dev)
# and `systemd.debug_shell` (a root shell on tty9, for someone at the appliance's screen and
# keyboard). Nothing of it reaches the disk: the next normal boot is the read-only root again.
# Profile 1 has its own .osrel with ID=flakeboot-dev: systemd-boot sorts entries by that ID
# before versions, and does not order a UKI's profile 0 before its other profiles itself, so
# without it the default (the first entry) could be a development one. objcopy cannot add a
# section whose name is already there, so the profile sections are added under other names and
# renamed after.
for slot in a b; do
  printf 'NAME=flakeboot\nID=flakeboot\nVERSION_ID="%s"\nPRETTY_NAME="flakeboot %s (slot %s)"\n' "$version" "$version" "$slot" > "$work/osrel-$slot"
  base_cmdline="root=/dev/mapper/root rootfstype=squashfs ro roothash=$roothash systemd.verity_root_data=/dev/disk/by-partlabel/root-$slot systemd.verity_root_hash=/dev/disk/by-partlabel/verity-$slot systemd.verity_root_options=panic-on-corruption panic=5 rd.shell=0 rd.emergency=reboot flakeboot.slot=$slot $FB_CMDLINE"
  printf '%s' "$base_cmdline" > "$work/cmdline-$slot"
  printf 'ID=main\nTITLE=flakeboot %s (slot %s)\n' "$version" "$slot" > "$work/profile0-$slot"
  printf 'ID=dev\nTITLE=flakeboot %s (slot %s): development mode, writable root in memory\n' "$version" "$slot" > "$work/profile1-$slot"
  printf 'NAME=flakeboot\nID=flakeboot-dev\nVERSION_ID="%s"\nPRETTY_NAME="flakeboot %s (slot %s, development mode)"\n' "$version" "$version" "$slot" > "$work/osrel1-$slot"
  printf '%s' "$base_cmdline flakeboot.dev=1 systemd.volatile=overlay systemd.debug_shell" > "$work/cmdline1-$slot"
  osrel=$(up "$stub_end")
  cmdline=$(up $((osrel + $(size "$work/osrel-$slot"))))
  linux=$(up $((cmdline + $(size "$work/cmdline-$slot"))))
  initrd=$(up $((linux + $(size "$tree/boot/vmlinuz-$kver"))))
  profile0=$(up $((initrd + $(size "$tree/boot/initrd.img-$kver"))))
  profile1=$(up $((profile0 + $(size "$work/profile0-$slot"))))
  osrel1=$(up $((profile1 + $(size "$work/profile1-$slot"))))
  cmdline1=$(up $((osrel1 + $(size "$work/osrel1-$slot"))))
  objcopy \
    --add-section .osrel="$work/osrel-$slot" --change-section-vma .osrel="$(hex "$osrel")" \
    --add-section .cmdline="$work/cmdline-$slot" --change-section-vma .cmdline="$(hex "$cmdline")" \
    --add-section .linux="$tree/boot/vmlinuz-$kver" --change-section-vma .linux="$(hex "$linux")" \
    --add-section .initrd="$tree/boot/initrd.img-$kver" --change-section-vma .initrd="$(hex "$initrd")" \
    --add-section .fbprof0="$work/profile0-$slot" --change-section-vma .fbprof0="$(hex "$profile0")" \
    --add-section .fbprof1="$work/profile1-$slot" --change-section-vma .fbprof1="$(hex "$profile1")" \
    --add-section .fbosr1="$work/osrel1-$slot" --change-section-vma .fbosr1="$(hex "$osrel1")" \
    --add-section .fbcmd1="$work/cmdline1-$slot" --change-section-vma .fbcmd1="$(hex "$cmdline1")" \
    "$stub" "$work/uki-$slot.named.efi"
  objcopy --rename-section .fbprof0=.profile --rename-section .fbprof1=.profile \
    --rename-section .fbosr1=.osrel --rename-section .fbcmd1=.cmdline \
    "$work/uki-$slot.named.efi" "$work/uki-$slot.efi"
  rm "$work/uki-$slot.named.efi"
  last=$(objdump -h "$work/uki-$slot.efi" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ {print $2}' | tail -5 | paste -sd' ')
  [ "$last" = ".initrd .profile .profile .osrel .cmdline" ] ||
    { echo "build.sh: the UKI's last sections are $last, not the two profiles" >&2; exit 1; }
  pe_fix "$work/uki-$slot.efi"
  efi_sign "$work/uki-$slot.efi" "$work/uki-$slot.signed.efi"
  mv "$work/uki-$slot.signed.efi" "$work/uki-$slot.efi"
done

echo "==> update bundle"
bundle="$out/flakeboot-$version-$FB_BOARD.bundle.tar"
sha() { sha256sum "$1" | cut -d' ' -f1; }
cat > "$work/manifest.json" <<JSON
{
  "format": 1,
  "version": "$version",
  "board": "$FB_BOARD",
  "roothash": "$roothash",
  "files": [
    { "name": "root.sqfs", "size": $(size "$work/root.sqfs"), "sha256": "$(sha "$work/root.sqfs")" },
    { "name": "verity.img", "size": $(size "$work/verity.img"), "sha256": "$(sha "$work/verity.img")" },
    { "name": "uki-a.efi", "size": $(size "$work/uki-a.efi"), "sha256": "$(sha "$work/uki-a.efi")" },
    { "name": "uki-b.efi", "size": $(size "$work/uki-b.efi"), "sha256": "$(sha "$work/uki-b.efi")" }
  ]
}
JSON
openssl pkeyutl -sign -rawin -inkey "$signing_key" -in "$work/manifest.json" -out "$work/manifest.sig"
tar --format=gnu --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" \
  -cf "$bundle" manifest.json manifest.sig root.sqfs verity.img uki-a.efi uki-b.efi
echo "    $bundle ($(( $(size "$bundle") / 1048576 )) MiB)"

if [ -n "${FLAKEBOOT_DELTA_FROM:-}" ]; then
  # The same payloads as deltas against the full bundle an appliance runs now: root.sqfs
  # against its root, each slot's UKI against the other slot's (the one running when it is
  # installed); verity.img whole (every hash in it changes). The manifest names the base.
  echo "==> delta bundle from $FLAKEBOOT_DELTA_FROM"
  base="$work/base"
  mkdir -p "$base"
  tar -C "$base" -xf "$FLAKEBOOT_DELTA_FROM" manifest.json root.sqfs uki-a.efi uki-b.efi
  field() { sed -n "s/^  \"$1\": \"\(.*\)\",\$/\1/p" "$base/manifest.json"; }
  base_version="$(field version)"
  [ -n "$base_version" ] && [ "$(field board)" = "$FB_BOARD" ] || {
    echo "build.sh: $FLAKEBOOT_DELTA_FROM is not a $FB_BOARD bundle made by image/build.sh" >&2; exit 1; }
  entry() { echo "{ \"name\": \"$1\", \"size\": $(size "$2"), \"sha256\": \"$(sha "$2")\" }"; }
  delta_entry() { # NAME BASE-NAME
    "$root/target/release/flakeboot-board" delta "$base/$2" "$work/$1" "$work/$1.delta" | sed "s/^/    /" >&2
    local whole; whole="$(entry "$1" "$work/$1")"
    echo "${whole% \}}, \"delta\": { \"base\": \"$2\", \"size\": $(size "$work/$1.delta"), \"sha256\": \"$(sha "$work/$1.delta")\" } }"
  }
  cat > "$work/manifest.json" <<JSON
{
  "format": 2,
  "version": "$version",
  "board": "$FB_BOARD",
  "roothash": "$roothash",
  "base": {
    "version": "$base_version",
    "roothash": "$(field roothash)",
    "files": [
      $(entry root.sqfs "$base/root.sqfs"),
      $(entry uki-a.efi "$base/uki-a.efi"),
      $(entry uki-b.efi "$base/uki-b.efi")
    ]
  },
  "files": [
    $(delta_entry root.sqfs root.sqfs),
    $(entry verity.img "$work/verity.img"),
    $(delta_entry uki-a.efi uki-b.efi),
    $(delta_entry uki-b.efi uki-a.efi)
  ]
}
JSON
  openssl pkeyutl -sign -rawin -inkey "$signing_key" -in "$work/manifest.json" -out "$work/manifest.sig"
  delta_bundle="$out/flakeboot-$version-$FB_BOARD.delta-from-$base_version.bundle.tar"
  tar --format=gnu --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work" \
    -cf "$delta_bundle" manifest.json manifest.sig root.sqfs.delta verity.img uki-a.efi.delta uki-b.efi.delta
  echo "    $delta_bundle ($(size "$delta_bundle") bytes, the full bundle $(size "$bundle"))"
fi

if [ "${FLAKEBOOT_NO_IMAGE:-0}" = 1 ]; then
  rm -rf "$work"
  echo "==> done in $(( $(date +%s) - t0 ))s (bundle only)"
  exit 0
fi

echo "==> ESP (systemd-boot, slot A's UKI)"
esp="$work/esp.img"
mkfs.fat -C -F 32 -n ESP -i "$(derive esp | cut -c1-8)" "$esp" $(( FB_ESP_MIB * 1024 )) >/dev/null
mmd -i "$esp" ::EFI ::EFI/BOOT ::EFI/Linux ::loader
efi_sign "$tree/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$work/BOOTX64.EFI"
mcopy -i "$esp" "$work/BOOTX64.EFI" ::EFI/BOOT/BOOTX64.EFI
printf 'timeout 0\neditor no\n' > "$work/loader.conf"
mcopy -i "$esp" "$work/loader.conf" ::loader/loader.conf
mcopy -i "$esp" "$work/uki-a.efi" ::EFI/Linux/flakeboot-1-a.efi

echo "==> data partition"
mkfs.ext4 -q -F -L data -U "$(uuid_of data)" -E "hash_seed=$(uuid_of data-hash)" -d "$work/var" \
  "$work/data.img" "${FB_DATA_MIB}M"

echo "==> disk"
img="$out/flakeboot-$version-$FB_BOARD.img"
rm -f "$img" "$img.zst"
total_mib=$(( 1 + FB_ESP_MIB + 2 * (FB_ROOT_MIB + FB_VERITY_MIB) + FB_DATA_MIB + 1 ))
truncate -s "${total_mib}M" "$img"
linux=0FC63DAF-8483-4772-8E79-3D69D8477DE4
sfdisk -q "$img" <<GPT
label: gpt
label-id: $(uuid_of disk)
first-lba: 2048
size=${FB_ESP_MIB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp, uuid=$(uuid_of p-esp)
size=${FB_ROOT_MIB}MiB, type=$linux, name=root-a, uuid=$(uuid_of p-root-a)
size=${FB_VERITY_MIB}MiB, type=$linux, name=verity-a, uuid=$(uuid_of p-verity-a)
size=${FB_ROOT_MIB}MiB, type=$linux, name=root-b, uuid=$(uuid_of p-root-b)
size=${FB_VERITY_MIB}MiB, type=$linux, name=verity-b, uuid=$(uuid_of p-verity-b)
size=${FB_DATA_MIB}MiB, type=$linux, name=data, uuid=$(uuid_of p-data)
GPT
mib=1048576
off=1
place() { dd if="$1" of="$img" bs=1M seek="$2" conv=notrunc,sparse status=none; }
place "$esp" $off;                      off=$(( off + FB_ESP_MIB ))
place "$work/root.sqfs" $off;           off=$(( off + FB_ROOT_MIB ))
place "$work/verity.img" $off;          off=$(( off + FB_VERITY_MIB ))
# Slot B (root-b, verity-b) stays empty until the first update.
off=$(( off + FB_ROOT_MIB + FB_VERITY_MIB ))
place "$work/data.img" $off
[ "${FLAKEBOOT_NO_ZST:-0}" = 1 ] || zstd -q -T2 -f "$img" -o "$img.zst"
echo "$roothash" > "$out/flakeboot-$version-$FB_BOARD.roothash"
rm -rf "$work"
zst="no .zst"
[ -f "$img.zst" ] && zst="$(( $(size "$img.zst") / mib )) MiB zst"
echo "==> $img ($(( $(size "$img") / mib )) MiB raw, $zst), roothash $roothash, $(( $(date +%s) - t0 ))s"
