#!/usr/bin/env bash
# Benchmarks of flakeboot against dnsmasq, Kea, tftp-hpa and nginx: one command for every
# comparison, each in its own network namespaces, with real load generators (perfdhcp, curl,
# wrk, the tftpd crate's client, QEMU). Results: a table on stdout and JSON in bench-results.json.
#
#   sudo ./bench.sh [dhcp|proxy|tftp|http|boot|storm|memory|all] [--smoke] [flakeboot-bench options]
#
# Measures a release build of the daemon. See docs/benchmarks.md for the figures and what they mean.
set -euo pipefail
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
  echo "bench.sh creates network namespaces and installs packages: run it as root (sudo ./bench.sh)" >&2
  exit 1
fi

./scripts/install-deps.sh

echo "==> building flakeboot and flakeboot-bench (release)"
# The daemon as the image builds it: built together with the bench, its dependencies' features
# would differ, and so would the symbol names crates/daemon/startup-order.txt places.
cargo build --release --locked -p flakeboot -p flakeboot-board
cargo build --release --locked -p flakeboot-bench
./scripts/startup-order.sh check ./target/release/flakeboot

exec ./target/release/flakeboot-bench --flakeboot ./target/release/flakeboot "${@:-all}"
