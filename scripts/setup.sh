#!/usr/bin/env bash
# Set up a fresh Debian machine for mcuflow: the Cortex-M cross toolchain, QEMU,
# host compilers, and a virtualenv (.venv) with torch 2.13.0 and mcuflow itself.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

# libclang-rt-dev: the sanitizer and libFuzzer runtimes, only a Recommends of clang.
APT_PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm gcc clang libclang-rt-dev make cmake python3-venv)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating virtualenv .venv"
  "$PYTHON" -m venv .venv
fi
# torch first and pinned: an unpinned torch would pull the CUDA build.
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU)"
  .venv/bin/pip install -q torch==2.13.0
fi
echo "setup: installing mcuflow and its test extras"
.venv/bin/pip install -q -e ".[test]"
echo "setup: done (activate with: source .venv/bin/activate)"
