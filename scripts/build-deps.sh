#!/usr/bin/env bash
# Installs what building Brook needs beyond Rust: a C++ compiler and libclang, with which
# the RocksDB crate compiles RocksDB and generates its bindings.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so' && command -v c++ >/dev/null; then
  exit 0
fi
echo "Installing libclang and a C++ compiler (for RocksDB)"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq libclang-dev clang >/dev/null
