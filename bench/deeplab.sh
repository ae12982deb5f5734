#!/usr/bin/env bash
# Issue 5: DeepLabV3-ResNet50 (torchvision's structure, 1 input channel, 1 class, 112×112; no pretrained
# weights exist offline) trained briefly on synthetic echo, then pruned iteratively to ≥ 1000× fewer
# parameters with L1 ranking (head input by least-squares reconstruction) and fine-tuned; both evaluated on test.
# Usage: bench/deeplab.sh [OUT_DIR]   (about 1 h with THREADS=1 on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/deeplab}"
data="${DATA:-$out/echo600}"
mkdir -p "$out"
s="${SCULPT:-./sculpt}"   # SCULPT: a fixed build to use while the sources change
th=(--threads "${THREADS:-0}")
[[ -d "$data" ]] || $s synth --out "$data" --count 600 --seed 0
[[ -f "$out/deeplab.sculpt" ]] || $s train --data "$data" --arch deeplabv3_resnet50 --epochs "${EPOCHS:-4}" --seed 0 "${th[@]}" --out "$out/deeplab.sculpt"
[[ -f "$out/deeplab-1000x.json" ]] || $s prune --model "$out/deeplab.sculpt" --data "$data" --compression 1000 --criterion l1 --head-input ranked \
  --max-step-ratio 1.5 --epochs 1 --ft-samples 16 --final-epochs 20 --seed 0 "${th[@]}" \
  --out "$out/deeplab-1000x.sculpt" --run "$out/prune-1000x" --json > "$out/deeplab-1000x.json"
{
  echo "dense $($s eval --model "$out/deeplab.sculpt" --data "$data" --split test --json | tr -d '\n ')"
  echo "1000x $($s eval --model "$out/deeplab-1000x.sculpt" --data "$data" --split test --json | tr -d '\n ')"
} > "$out/test-evals.txt"
echo "done: $out/test-evals.txt"
