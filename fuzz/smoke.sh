#!/usr/bin/env bash
# CI smoke run of every cargo-fuzz target (the long runs are fuzz/run.sh, recorded in
# docs/security.md): build them, replay each target's committed corpus (fuzz/corpus/<target>/),
# then a few thousand new executions each. Fails on any crash or failed assertion.
#
#   fuzz/smoke.sh              # SMOKE_RUNS=N new executions per target (default 4000)
#
# Toolchain: the stable one, with no sanitizer (`--sanitizer none`). cargo-fuzz only needs
# nightly for the sanitizers (-Zsanitizer); the coverage instrumentation it uses
# (-Cpasses=sancov-module and -Cllvm-args) is stable. flakeboot denies unsafe code, so what a
# fuzzer finds here is a panic or a failed assertion, which needs no sanitizer. For an ASan run
# on a nightly toolchain: `cargo +nightly fuzz run -O <target>` (the default sanitizer).
#
# `-O` matters: without it cargo-fuzz turns debug assertions on in every crate through
# RUSTFLAGS, and dhcproto's decoders debug_assert! option lengths (see fuzz/Cargo.toml).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_INCREMENTAL=0
SMOKE_RUNS=${SMOKE_RUNS:-4000}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
if ! command -v c++ >/dev/null 2>&1; then
  # libfuzzer-sys compiles libFuzzer (C++).
  apt-get update && apt-get install -y --no-install-recommends g++
fi

echo "==> fuzz smoke: build"
cargo fuzz build -O --sanitizer none

passed=0
failed=0
failures=()
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in $(cargo fuzz list); do
  # New inputs go to a scratch directory, never into the committed corpus.
  mkdir -p "$scratch/$t" "corpus/$t"
  files=$(find "corpus/$t" -type f | wc -l)
  log="$scratch/$t.log"
  start=$(date +%s%N)
  if cargo fuzz run -O --sanitizer none "$t" "$scratch/$t" "corpus/$t" -- \
    -runs=$((files + SMOKE_RUNS)) -max_total_time=60 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1; then
    passed=$((passed + 1))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    ms=$((($(date +%s%N) - start) / 1000000))
    printf '    %-14s ok: %s corpus inputs replayed, %s executions, %d.%03ds\n' \
      "$t" "$files" "$execs" $((ms / 1000)) $((ms % 1000))
  else
    failed=$((failed + 1))
    failures+=("$t")
    echo "    $t FAILED:"
    grep -E -A8 'panicked|^==[0-9]+==|SUMMARY' "$log" | head -40
    echo "    (crash input in fuzz/artifacts/$t/)"
  fi
done
[ "$failed" -eq 0 ] || echo "fuzz smoke: failing targets: ${failures[*]}"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
