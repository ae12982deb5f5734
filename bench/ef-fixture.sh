#!/usr/bin/env bash
# The small LV model the ejection-fraction test uses (tests/Sculpt.Tests/Fixtures/lv-unet.sculpt): the demo's
# dense width-16 U-Net (DENSE, default runs/demo/models/dense.sculpt: 5 epochs on 280 frames) pruned with L1
# to 30× fewer parameters while fine-tuning on 2000 other synthetic frames (generator version 2, seed 11),
# then 15 final epochs on them and 30 more at a lower learning rate (`--compression 1`: no step, only the
# final fine-tune) — training at the pruned size is where the data is cheap.
# Usage: [DENSE=M.sculpt] bench/ef-fixture.sh [OUT_DIR]   (about 30 min with THREADS=1 on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/ef-fixture}"
dense="${DENSE:-runs/demo/models/dense.sculpt}"
mkdir -p "$out"
s="${SCULPT:-./sculpt}"
th=(--threads "${THREADS:-0}")
[[ -f "$dense" ]] || $s demo --out runs/demo
[[ -d "$out/echo2000" ]] || $s synth --out "$out/echo2000" --count 2000 --seed 11
[[ -f "$out/lv-unet.sculpt" ]] || $s prune --model "$dense" --data "$out/echo2000" --compression 30 --criterion l1 \
  --max-step-ratio 1.5 --epochs 1 --ft-samples 128 --final-epochs 15 --seed 0 "${th[@]}" --out "$out/lv-unet.sculpt" --run "$out/prune-30x" --json > "$out/prune-30x.json"
[[ -f "$out/lv-unet-ft.sculpt" ]] || $s prune --model "$out/lv-unet.sculpt" --data "$out/echo2000" --compression 1 --final-epochs 30 --lr 5e-4 --seed 1 "${th[@]}" \
  --out "$out/lv-unet-ft.sculpt" --run "$out/ft30" --json > "$out/ft30.json"
$s eval --model "$out/lv-unet-ft.sculpt" --data "$out/echo2000" --split test --json > "$out/test-eval.json"
echo "fixture: $out/lv-unet-ft.sculpt (copy to tests/Sculpt.Tests/Fixtures/lv-unet.sculpt after checking it)"
