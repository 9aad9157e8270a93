#!/usr/bin/env bash
# Runs every check and test of Brook, installing what they need first: libclang (RocksDB's
# bindings are generated with it), OpenSSL, curl and the test broker (noida-db, a Kafka-compatible broker
# from PyPI). Integration tests start the broker themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-deps.sh

# The HTTP/2 and HTTPS tests speak to the server with curl; openssl makes their certificate.
if ! command -v curl >/dev/null || ! command -v openssl >/dev/null; then
  echo "Installing curl and openssl (for the HTTP/2 and HTTPS tests)"
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq curl openssl >/dev/null
fi

NOIDA_VERSION=0.2.3
if [ "$(python3 -c 'import importlib.metadata as m; print(m.version("noida-db"))' 2>/dev/null)" != "$NOIDA_VERSION" ]; then
  echo "Installing the test broker (noida-db==$NOIDA_VERSION)"
  python3 -m pip install --quiet --disable-pip-version-check "noida-db==$NOIDA_VERSION"
fi
# The binary inside the package: the `noida-db` on PATH is a wrapper whose child outlives it.
NOIDA_DB_BIN="$(python3 -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')"
export NOIDA_DB_BIN

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Integration tests run the brook binary, which `cargo test` of the tests crate does not build.
cargo build --workspace --bins
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
