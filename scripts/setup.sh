#!/usr/bin/env bash
# Set up a fresh machine: a .venv with the pinned stack (torch 2.14.1 / torchvision 0.29.1, nerfstudio 1.1.5 and
# the exact versions in scripts/constraints.txt) and spin-nerfstudio installed editable. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import nerfstudio, torch, lpips, stlpips_pytorch, segment_anything, mobile_sam, simple_lama_inpainting, spin_nerfstudio" 2>/dev/null; then
  echo "setup: installing torch 2.14.1, torchvision 0.29.1, nerfstudio 1.1.5 and spin-nerfstudio (a few minutes)"
  .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
  .venv/bin/pip install -q -c scripts/constraints.txt -e ".[dev]"
else
  .venv/bin/pip install -q --no-deps -e . >/dev/null
fi
# The viewer's browser test drives Debian's Chromium through Playwright (no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing Debian's chromium for the browser test"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null || echo "setup: could not install chromium"
  else
    echo "setup: run as root or 'sudo apt-get install -y chromium' for the browser test"
  fi
fi
.venv/bin/python -c "import playwright" 2>/dev/null || .venv/bin/pip install -q "playwright==1.65.2"
echo "setup: ready ($(.venv/bin/python -c 'import torch, nerfstudio; print("torch", torch.__version__)'))"
