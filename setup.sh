#!/usr/bin/env bash
# Sets up latent-distill on a fresh Debian/Ubuntu machine: the offline Fashion-MNIST files (apt),
# a virtual environment in .venv with the CPU build of torch and the package with its test extras.
# Users with GPUs: install your own torch into .venv first; it is kept (TORCH_SPEC= skips it).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist python3-venv >/dev/null
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
TORCH_SPEC="${TORCH_SPEC-torch==2.13.0}"
if [ -n "$TORCH_SPEC" ] && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/pip install -q "$TORCH_SPEC"
fi
.venv/bin/pip install -q -e ".[test]"
echo "latent-distill is set up in .venv"
