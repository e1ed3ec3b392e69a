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

echo "==> rustfmt"
cargo fmt --all -- --check
echo "==> clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> build"
cargo build --workspace --all-targets --locked
echo "==> tests"
cargo test --workspace --doc --locked -q
cargo nextest run --workspace --locked --no-fail-fast --profile ci
