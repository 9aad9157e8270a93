#!/usr/bin/env bash
# The soak run (not part of CI): brook server on a test broker of its own for SOAK_SECONDS
# (default 600) at SOAK_RATE records/s (default 300), with 1% malformed records, 20 clients
# running push and pull queries and dropping their connections, one SIGKILL and restart of
# the server and one broker restart; it then checks that nothing is missing, that every
# malformed record was logged, that no query is in ERROR and that memory and descriptors
# stayed bounded, and prints those figures (tests/src/bin/soak.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}"
if [ -z "${NOIDA_DB_BIN:-}" ]; then
  NOIDA_DB_BIN="$(python3 -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')" \
    || { echo "the test broker is not installed: run scripts/test.sh once" >&2; exit 1; }
  export NOIDA_DB_BIN
fi
cargo build --bins
exec "$CARGO_TARGET_DIR/debug/soak" "${SOAK_SECONDS:-600}" "${SOAK_RATE:-300}"
