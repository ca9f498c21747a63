#!/usr/bin/env bash
# Sets up latent-distill on a fresh Debian/Ubuntu machine: the offline Fashion-MNIST files and a C++
# compiler (apt), a virtual environment in .venv with the CPU build of torch and the package with its
# test extras.
# Users with GPUs: install your own torch into .venv first; it is kept (TORCH_SPEC= skips it).
set -euo pipefail
cd "$(dirname "$0")"

# apt: the offline Fashion-MNIST files, venv support, and a C++ compiler (torch.compile builds its CPU
# kernels with it; without one, compiled evaluation falls back to eager mode with a warning).
APT_PACKAGES=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || APT_PACKAGES+=(dataset-fashion-mnist)
command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 || APT_PACKAGES+=(g++)
if [ ! -x .venv/bin/python ] && command -v dpkg >/dev/null 2>&1 && ! dpkg -s python3-venv >/dev/null 2>&1; then
  APT_PACKAGES+=(python3-venv)
fi
if [ "${#APT_PACKAGES[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
TORCH_SPEC="${TORCH_SPEC-torch==2.13.0}"
if [ -n "$TORCH_SPEC" ] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "$TORCH_SPEC"
fi
.venv/bin/pip install -q -e ".[test]"
echo "latent-distill is set up in .venv"
