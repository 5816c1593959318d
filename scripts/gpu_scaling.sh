#!/usr/bin/env bash
# Device check: `spin-nerf dev scaling --device cuda` on a lent GPU machine (Python 3.12 with torch, no nerfstudio,
# no network). Before it, on this machine, put Python 3.12 wheels of nerfstudio 1.1.5 and the packages it imports
# that the GPU image lacks into .whl/ (the list and the download command are in scripts/gpu_check.sh; add lpips),
# then run this with .whl carried, e.g.
#   SIZES="24x120x90 48x240x180 100x480x270" bash scripts/gpu_scaling.sh
#   SIZES=100x1008x567 CONFIG=full STEPS="300 150 600" LIMIT=420 bash scripts/gpu_scaling.sh
# Everything it keeps goes to $OUT: gpu.txt, scaling.md / scaling.json (when every size finished), and per size the
# stage lines of its log and its stages.json (also when the limit stopped it).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=$PWD:/tmp/site PATH=/tmp/site/bin:$PATH SPIN_NERF_NO_DOWNLOAD=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SIZES=${SIZES:-"24x120x90 48x240x180 100x480x270"}; CONFIG=${CONFIG:-small}; STEPS=${STEPS:-"200 150 400"}
TAG=${TAG:-$CONFIG}; WORK=/tmp/scaling_$TAG
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } >> "$OUT/gpu.txt" 2>&1
start=$(date +%s)
# shellcheck disable=SC2086
timeout "${LIMIT:-300}" python3 -m spin_nerfstudio.cli dev scaling $SIZES --device cuda --config "$CONFIG" \
  --steps $STEPS --output "$WORK" > "$WORK.log" 2>&1
echo "$TAG: sizes $SIZES config $CONFIG steps $STEPS rc $? in $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
cp "$WORK/scaling.md" "$OUT/scaling_$TAG.md" 2>/dev/null; cp "$WORK/scaling.json" "$OUT/scaling_$TAG.json" 2>/dev/null
for size in $SIZES; do  # what each size got through, also when the limit stopped it
  { echo "== $size"; grep -E "stage '|took|error|Error|rays|step" "$WORK/$size.log" | grep -v "^[0-9]* (" | tail -40
    grep -E "^[0-9]+ \(" "$WORK/$size.log" | tail -3
    find "$WORK/$size" -name stages.json -exec cat {} \; ; } >> "$OUT/stages_$TAG.txt" 2>/dev/null
done
tail -30 "$WORK.log"
