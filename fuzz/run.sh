#!/usr/bin/env bash
# The long fuzz runs recorded in docs/security.md (not CI): each target in turn, one process (one
# core), until RUNS executions or MAX_SECONDS, whichever comes first; then the target's corpus is
# minimized (`cargo fuzz cmin`) into fuzz/corpus/<target>/, which is committed.
#
#   fuzz/run.sh                       # every target
#   RUNS=1000000 fuzz/run.sh tftp_packet http_range
#   FORK=2 fuzz/run.sh tftp_session   # libFuzzer's fork mode: 2 worker processes, one corpus
#
# Working corpora and logs stay in fuzz/work/ (not committed). Crashes land in
# fuzz/artifacts/<target>/; reproduce one with
#   cargo fuzz run -O --sanitizer none <target> fuzz/artifacts/<target>/crash-...
# Needs cargo-fuzz and a C++ compiler (libfuzzer-sys builds libFuzzer); see fuzz/smoke.sh for
# the flags and why these runs use the stable toolchain without a sanitizer.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_INCREMENTAL=0
RUNS=${RUNS:-10000000}
MAX_SECONDS=${MAX_SECONDS:-600}
FORK=${FORK:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
[ -f work/dhcp_packet/seed-ipxe_bios_discover ] || python3 seeds.py
mkdir -p work/logs
cargo fuzz build -O --sanitizer none
for t in "${targets[@]}"; do
  mkdir -p "work/$t" "corpus/$t"
  dict=()
  case $t in
    tftp_*) dict=(-dict=dict/tftp.dict) ;;
    http_path | http_range | http_head | ipxe_script) dict=(-dict="dict/$t.dict") ;;
  esac
  # tftp_session's inputs are whole conversations (windows of thousands of blocks): tracing
  # every comparison took 58 % of its time (perf, 2026-12-05), and the comparisons it guides
  # are block numbers the target derives from the session's own output. Without it the target
  # runs 2.8x faster; the edge coverage still guides it.
  build=()
  case $t in
    tftp_session) build=(--no-trace-compares) ;;
  esac
  # Fork mode: the parent runs FORK workers on slices of the corpus and merges what they find
  # into the first corpus directory; it counts the executions of all of them against RUNS.
  fork=()
  [ "$FORK" -gt 1 ] && fork=(-fork="$FORK")
  echo "==> $t: up to $RUNS executions or ${MAX_SECONDS}s, $FORK process(es) ($(date -u +%FT%TZ))"
  start=$(date +%s)
  status=0
  cargo fuzz run -O --sanitizer none "${build[@]}" "$t" "work/$t" "corpus/$t" -- \
    -runs="$RUNS" -max_total_time="$MAX_SECONDS" "${fork[@]}" "${dict[@]}" -print_final_stats=1 \
    >"work/logs/$t.log" 2>&1 || status=$?
  if [ "$FORK" -gt 1 ]; then
    # The parent's status lines: "#<executions>: cov: ...".
    execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "work/logs/$t.log" | tail -1)
  else
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "work/logs/$t.log" | tail -1)
  fi
  echo "    exit $status, ${execs:-?} executions in $(($(date +%s) - start))s"
  grep -E '^(==|SUMMARY|thread .* panicked)' "work/logs/$t.log" | head -5 || true
  # Keep the committed corpus small: only inputs that add edge coverage (hit counts ignored).
  rm -rf "work/$t.min"
  cp -r "work/$t" "work/$t.min"
  cp corpus/"$t"/* "work/$t.min"/ 2>/dev/null || true
  cargo fuzz cmin -O --sanitizer none "${build[@]}" "$t" "work/$t.min" -- -use_counters=0 >"work/logs/$t.cmin.log" 2>&1
  rm -rf "corpus/$t"
  mv "work/$t.min" "corpus/$t"
  echo "    corpus: $(find "corpus/$t" -type f | wc -l) files, $(du -sh "corpus/$t" | cut -f1)"
done
