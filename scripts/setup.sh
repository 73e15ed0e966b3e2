#!/usr/bin/env bash
# Installs what building Pedigree needs beyond a Rust toolchain on Debian 12:
# clang and libclang-dev, which RocksDB's bindgen step needs, and curl for
# scripts/stack.sh. Idempotent and quiet
# when everything is already there.
set -euo pipefail

need=()
command -v clang >/dev/null 2>&1 || need+=(clang)
# curl: scripts/stack.sh's health checks (and the stack's end-to-end test).
command -v curl >/dev/null 2>&1 || need+=(curl)
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
  need+=(libclang-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The OpenSSF model-signing reference tool, for the OMS interop tests in cli/tests:
# a virtualenv at .venv-oms with model-signing 1.1.1 (its key method also needs
# pyopenssl). Tests look for .venv-oms/bin/model_signing or $PEDIGREE_MODEL_SIGNING.
venv="$(cd "$(dirname "$0")/.." && pwd)/.venv-oms"
if [ ! -x "$venv/bin/model_signing" ] || ! "$venv/bin/python" -c 'import OpenSSL, model_signing' >/dev/null 2>&1; then
  echo "setup: installing model-signing 1.1.1 into $venv" >&2
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv" >/dev/null
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check model-signing==1.1.1 pyopenssl
fi
