#!/usr/bin/env bash
# Builds the release binary and packages it the way a platform pulls it on every cold
# start: dist/brook with its debug info split off into dist/brook.debug (linked back with
# .gnu_debuglink, so gdb and perf find it next to the binary). Prints both sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}"
scripts/build-deps.sh
cargo build --release -p brook
mkdir -p dist
cp "$CARGO_TARGET_DIR/release/brook" dist/brook.full
objcopy --only-keep-debug dist/brook.full dist/brook.debug
# Symbols stay (backtraces name functions); line tables and the rest go to brook.debug.
objcopy --strip-debug --add-gnu-debuglink=dist/brook.debug dist/brook.full dist/brook
rm dist/brook.full
ls -l dist/brook dist/brook.debug | awk '{printf "%-18s %6.1f MB\n", $NF, $5 / 1048576}'
