#!/usr/bin/env bash
# `make bench`: run every benchmarks/bench_*.py, one after the other (they time things), and print their tables.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/setup.sh dev
failed=()
for bench in benchmarks/bench_*.py; do
  say "$bench"
  .venv/bin/python "$bench" || failed+=("$bench")
  echo
done
[ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]}"
