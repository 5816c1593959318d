#!/usr/bin/env bash
# Device check of the CUDA path on a lent GPU machine (Python 3.12 with torch, no nerfstudio, no network).
# Before it, on this machine: put Python 3.12 wheels of nerfstudio 1.1.5 and the packages it imports that the GPU
# image lacks into .whl/ (appdirs defusedxml dill docstring_parser gsplat msgspec nerfacc nerfstudio pyquaternion
# pytorch-msssim rawpy PySocks splines tensorly tyro typeguard viser websockets, versions as in .venv), e.g.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl nerfstudio==1.1.5
# and `pip wheel --no-deps -w .whl .` for this package's entry points; then run this with .whl carried.
# SKIP_DEMO=1 skips the demo; FULL_STEPS="TOTAL RECONSTRUCT MASK" sets the full-config schedule.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site PATH=/tmp/site/bin:$PATH SPIN_NERF_NO_DOWNLOAD=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import torch, nerfstudio, spin_nerfstudio.pipeline, tyro; print('torch', torch.__version__, 'cuda', torch.cuda.is_available()); import importlib.util as u; print('tinycudann', u.find_spec('tinycudann') is not None)" 2>&1 | tee -a $OUT/gpu.txt
if [ -z "${SKIP_DEMO:-}" ]; then
# 1. the demo on CUDA (same scene, prompts and schedule as the CPU demo)
/usr/bin/time -v python3 -m spin_nerfstudio.cli demo --device cuda --output /tmp/demo > /tmp/demo.log 2>&1; echo "demo rc $?" | tee -a $OUT/gpu.txt
grep -v "^[0-9]* (" /tmp/demo.log | tail -40 > $OUT/demo_tail.log
cp /tmp/demo/metrics.json $OUT/demo_metrics.json; cp /tmp/demo/contact_sheet.png $OUT/demo_sheet.png
fi
# 2. the full spin-inpaint config (4096 rays, mixed precision), shortened, hash-grid encoding, torch implementation
python3 scripts/gpu_full.py /tmp/full --steps ${FULL_STEPS:-1500 600 200} > /tmp/full.log 2>&1; echo "full rc $?" | tee -a $OUT/gpu.txt
grep -v "^[0-9]* (" /tmp/full.log | tail -60 > $OUT/full_tail.log; grep "^[0-9]* (" /tmp/full.log | tail -3 >> $OUT/full_tail.log
cp /tmp/full/full_metrics.json $OUT/ 2>/dev/null; for f in /tmp/full/runs/full/spin-inpaint/run/*.png; do cp "$f" $OUT/full_$(basename "$f"); done
cat $OUT/gpu.txt
