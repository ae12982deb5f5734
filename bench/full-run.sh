#!/usr/bin/env bash
# Full-scale run (issue 6): unet-classic → 1148× as a run folder that `sculpt report` reads, from the pieces
# bench/headline.sh makes (dense model, data, prune run, pruned model). Measures the curve (test Dice with CI,
# ORT latency and throughput of every step model), exports ONNX and writes report.html via `demo --resume`.
# Usage: bench/full-run.sh HEADLINE_DIR RUN_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-runs/headline}"; run="${2:-runs/full}"
s="${SCULPT:-./sculpt}"
mkdir -p "$run/models"
ln -sfn "$(realpath "$src/echo600")" "$run/data"
ln -sfn "$(realpath "$src/prune-1148x")" "$run/prune.run"
cp -n "$src/classic.sculpt" "$run/models/dense.sculpt"
cp -n "$src/classic-1148x.sculpt" "$run/models/pruned.sculpt"
[[ -f "$run/run.json" ]] || cat > "$run/run.json" <<JSON
{
  "format": "sculpt-run", "version": 1, "seed": 0, "arch": "unet-classic", "frames": 600, "epochs": 5,
  "compression": 1148, "fine_tune_samples": 64, "max_step_ratio": 1.5, "min_channels": 2, "criterion": "l1", "final_epochs": 40, "distill": false,
  "commands": [
    "sculpt synth --out $src/echo600 --count 600 --seed 0",
    "sculpt train --data $src/echo600 --arch unet-classic --epochs 5 --lr 1e-3 --batch 8 --seed 0 --out $src/classic.sculpt",
    "sculpt prune --model $src/classic.sculpt --data $src/echo600 --compression 1148 --criterion l1 --max-step-ratio 1.5 --epochs 1 --ft-samples 64 --lr 1e-3 --final-epochs 40 --min-channels 2 --seed 0 --out $src/classic-1148x.sculpt --run $src/prune-1148x",
    "bench/full-run.sh $src $run"
  ],
  "note": "${NOTE:-}"
}
JSON
$s demo --out "$run" --resume
