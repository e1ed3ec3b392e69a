#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine, as root:   ./test.sh
# Installs what it needs, then: rustfmt, clippy -D warnings, every unit, black-box and
# hardware-in-the-loop test (real QEMU firmware, real DHCP/TFTP/HTTP clients, real nix).
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "test.sh creates network namespaces and installs packages: run it as root (sudo ./test.sh)" >&2
  exit 1
fi

./scripts/install-deps.sh

# A fresh clone (CI) gains nothing from incremental compilation, and its test binaries need
# line numbers for backtraces, not full debug info: together about 10 GiB less in target/.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only
fi
mkdir -p "${CARGO_TARGET_DIR:-target}"
disk() { df -BG --output=avail "${CARGO_TARGET_DIR:-target}" | tail -1 | tr -dc 0-9; }
# Each stage's line says when it began (minutes into the run): CI has a time budget.
stage() { printf '==> %s  [%dm%02ds]\n' "$1" $((SECONDS / 60)) $((SECONDS % 60)); }
echo "==> disk: $(disk) GiB free where target/ is"
if [ "$(disk)" -lt 20 ]; then
  echo "warning: a whole run needs about 20 GiB free there (the build, the appliance's test images," >&2
  echo "the tests' VM disks); with less it may stop with 'No space left on device'" >&2
fi

stage "rustfmt"
cargo fmt --all -- --check
stage "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
stage "build"
cargo build --workspace --all-targets --locked
stage "the application layer's tests as an unprivileged user (no root, no namespaces)"
unpriv=$(mktemp -d)
chmod 755 "$unpriv"
cargo test -p flakeboot-appliance --locked --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])' |
  while read -r bin; do
    cp "$bin" "$unpriv/"
    setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp TMPDIR=/tmp \
      "$unpriv/$(basename "$bin")" -q
  done
rm -rf "$unpriv"
stage "nixos/: every .nix file parses, the NixOS module's boot-time scripts"
./nixos/check.sh
stage "fuzz smoke (every cargo-fuzz target over its corpus; long runs: docs/security.md)"
./fuzz/smoke.sh
stage "the appliance's test images (built here, not inside the first image test's time limit)"
./image/test-artifacts.sh "${CARGO_TARGET_DIR:-target}/image-tests"
stage "tests"
cargo test --workspace --doc --locked -q
status=0
cargo nextest run --workspace --locked --no-fail-fast --profile ci || status=$?
stage "end: $(disk) GiB free where target/ is, after the tests"
exit "$status"
