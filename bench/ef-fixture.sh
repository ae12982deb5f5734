#!/usr/bin/env bash
# The small LV model the ejection-fraction test uses (tests/Sculpt.Tests/Fixtures/lv-unet.sculpt): a width-16
# U-Net trained on 2000 synthetic frames (generator version 2), pruned with L1 to 30× fewer parameters and
# fine-tuned, so the test segments real cine loops with a trained model without training one per test run.
# Usage: bench/ef-fixture.sh [OUT_DIR]   (about 40 min with THREADS=1 on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/ef-fixture}"
mkdir -p "$out"
s="${SCULPT:-./sculpt}"
th=(--threads "${THREADS:-0}")
[[ -d "$out/echo2000" ]] || $s synth --out "$out/echo2000" --count 2000 --seed 11
[[ -f "$out/unet16.sculpt" ]] || $s train --data "$out/echo2000" --arch unet --epochs 10 --seed 0 "${th[@]}" --out "$out/unet16.sculpt"
[[ -f "$out/lv-unet.sculpt" ]] || $s prune --model "$out/unet16.sculpt" --data "$out/echo2000" --compression 30 --criterion l1 --head-input ranked \
  --max-step-ratio 1.5 --epochs 1 --ft-samples 128 --final-epochs 6 --seed 0 "${th[@]}" --out "$out/lv-unet.sculpt" --run "$out/prune-30x" --json > "$out/prune-30x.json"
echo "fixture: $out/lv-unet.sculpt (copy to tests/Sculpt.Tests/Fixtures/ after checking it)"
