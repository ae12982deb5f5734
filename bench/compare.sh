#!/usr/bin/env bash
# Criterion / allocation / distillation comparison at one fixed compression (issue 3).
# A width-16 U-Net (1.94M parameters) trained on synthetic echo is pruned to 300× fewer parameters in
# steps of at most 1.6× (13 steps, 16 fine-tune samples each at the dense model's cost, 2 final epochs),
# once per configuration; every final model is evaluated on the test split. The collapse guard is off
# (--collapse-drop 1) so that every configuration ends at the same compression: with it on, L1 and Taylor
# stopped at 6.7× and 158× on this small fine-tune budget (runs/compare3-guard).
# Usage: bench/compare.sh [OUT_DIR]      (about 60 min with THREADS=1 on a 2-core machine shared with one other job)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/compare}"
data="${DATA:-$out/echo600}"
mkdir -p "$out"
s="${SCULPT:-./sculpt}"   # SCULPT: a fixed build to use while the sources change
th=(--threads "${THREADS:-0}")   # libtorch threads for train/prune (0: all cores)
[[ -d "$data" ]] || $s synth --out "$data" --count 600 --seed 0
[[ -f "$out/unet16.sculpt" ]] || $s train --data "$data" --arch unet --epochs 4 --seed 0 "${th[@]}" --out "$out/unet16.sculpt"
common=(--model "$out/unet16.sculpt" --data "$data" --compression 300 --max-step-ratio 1.6 --epochs 1 --ft-samples 16 --final-epochs 2 --collapse-drop 1 --seed 0 --json)
run() { # name, extra options…
  local name="$1"; shift
  [[ -f "$out/$name.json" ]] || $s prune "${common[@]}" "${th[@]}" "$@" --out "$out/$name.sculpt" --run "$out/$name.run" > "$out/$name.json"
  echo "$name $($s eval --model "$out/$name.sculpt" --data "$data" --split test --json | tr -d '\n ')"
}
{
  echo "dense $($s eval --model "$out/unet16.sculpt" --data "$data" --split test --json | tr -d '\n ')"
  run taylor --criterion taylor
  run l1 --criterion l1
  run l2 --criterion l2
  run bn-scale --criterion bn-scale
  run fpgm --criterion fpgm
  run random --criterion random
  run l1-uniform --criterion l1 --allocation uniform
  run l1-distill --criterion l1 --distill
} > "$out/compare-evals.txt"
echo "done: $out/compare-evals.txt"
