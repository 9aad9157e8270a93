#!/usr/bin/env bash
# Installs what building Brook needs beyond Rust: a C++ compiler and libclang, with which
# the RocksDB crate compiles RocksDB and generates its bindings, and OpenSSL's headers with
# pkg-config, for TLS (the HTTPS listener, and SSL/SASL to Kafka in librdkafka).
set -euo pipefail
have_clang() { ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so' && command -v c++ >/dev/null; }
have_openssl() { command -v pkg-config >/dev/null && pkg-config --exists openssl; }
if have_clang && have_openssl; then
  exit 0
fi
echo "Installing libclang, a C++ compiler and OpenSSL's headers"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq libclang-dev clang libssl-dev pkg-config >/dev/null
