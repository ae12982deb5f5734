#!/usr/bin/env bash
# Headline benchmark (issue 3): unet-classic (~31M parameters) trained on synthetic echo, then pruned
# iteratively to ≥ 1148× fewer parameters and beyond; every point evaluated on the held-out test split.
# Usage: THREADS=2 bench/headline.sh [OUT_DIR]   (training about 60 min, pruning about 45 min on 2 cores)
# Then bench/full-run.sh OUT_DIR runs/full measures every step model and writes the report, and
# sculpt bench --model OUT_DIR/classic.sculpt --compare OUT_DIR/classic-5m.sculpt --threads 1,2 --batches 1,16 --streams 2
# gives issue 4's numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/headline}"
mkdir -p "$out"
s="${SCULPT:-./sculpt}"   # SCULPT: a fixed build to use while the sources change
th=(--threads "${THREADS:-0}")   # libtorch threads for train/prune (0: all cores)
[[ -d "$out/echo600" ]] || $s synth --out "$out/echo600" --count 600 --seed 0
[[ -f "$out/classic.sculpt" ]] || $s train --data "$out/echo600" --arch unet-classic --epochs 5 --lr 1e-3 --batch 8 --seed 0 "${th[@]}" --out "$out/classic.sculpt"
$s prune --model "$out/classic.sculpt" --data "$out/echo600" --compression 1148 --criterion l1 --max-step-ratio 1.5 --epochs 1 --ft-samples 64 --lr 1e-3 --final-epochs 40 \
  --min-channels 2 --seed 0 "${th[@]}" --out "$out/classic-1148x.sculpt" --run "$out/prune-1148x" --json > "$out/prune-1148x.json"
# beyond the paper's point: continue from the 1148× model to 10,000× of the dense size
$s prune --model "$out/classic-1148x.sculpt" --data "$out/echo600" --compression 8.711 --criterion l1 --max-step-ratio 1.5 --epochs 1 --ft-samples 0 --lr 1e-3 --final-epochs 40 \
  --seed 0 "${th[@]}" --out "$out/classic-10000x.sculpt" --run "$out/prune-10000x" --json > "$out/prune-10000x.json"
# deployment targets (issue 4): from the 1148× model to 20 M MACs, then to 5 M MACs
$s prune --model "$out/classic-1148x.sculpt" --data "$out/echo600" --max-macs 20000000 --criterion l1 --max-step-ratio 1.5 --epochs 1 --ft-samples 0 --lr 1e-3 --final-epochs 40 \
  --seed 0 "${th[@]}" --out "$out/classic-20m.sculpt" --run "$out/prune-20m" --json > "$out/prune-20m.json"
$s prune --model "$out/classic-20m.sculpt" --data "$out/echo600" --max-macs 5000000 --criterion l1 --max-step-ratio 1.5 --epochs 1 --ft-samples 0 --lr 1e-3 --final-epochs 40 \
  --seed 0 "${th[@]}" --out "$out/classic-5m.sculpt" --run "$out/prune-5m" --json > "$out/prune-5m.json"
# test-split evaluation of the dense model, every step model and the final models
for m in "$out/classic.sculpt" "$out"/prune-1148x/step_*.sculpt "$out/classic-1148x.sculpt" "$out"/prune-10000x/step_*.sculpt "$out/classic-10000x.sculpt" \
  "$out/classic-20m.sculpt" "$out/classic-5m.sculpt"; do
  echo "$m $($s eval --model "$m" --data "$out/echo600" --split test --json | tr -d '\n ')"
done > "$out/test-evals.txt"
echo "done: $out/test-evals.txt"
