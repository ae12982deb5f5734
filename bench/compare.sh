#!/usr/bin/env bash
# Criterion / allocation / distillation comparison at one fixed compression (issue 3).
# A width-16 U-Net (1.94M parameters) trained on synthetic echo is pruned to 300× fewer parameters in
# steps of at most 1.6× (13 steps, 16 fine-tune samples each at the dense model's cost, 2 final epochs),
# once per configuration; every final model is evaluated on the test split. The collapse guard is off
# (--collapse-drop 1) so that every configuration ends at the same compression: with it on, L1 and Taylor
# stopped at 6.7× and 158× on this small fine-tune budget (runs/compare3-guard).
# Usage: bench/compare.sh [OUT_DIR]      (about 60 min with THREADS=1 on a 2-core machine shared with one other job)
#        ONLY="fpgm random" bench/compare.sh OUT_DIR   prunes just those (run two such in parallel on 2 cores),
#        then bench/compare.sh OUT_DIR evaluates everything.
# A run that dies (libtorch aborted once in stop 10, in the augmentation's tensor add) is resumed from its last step.
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
declare -A extra=(
  [taylor]="--criterion taylor" [l1]="--criterion l1" [l2]="--criterion l2" [bn-scale]="--criterion bn-scale"
  [fpgm]="--criterion fpgm" [random]="--criterion random"
  [l1-uniform]="--criterion l1 --allocation uniform" [l1-distill]="--criterion l1 --distill")
names=(taylor l1 l2 bn-scale fpgm random l1-uniform l1-distill)
prune() { # name: prune once (resuming a run that died), JSON written only when it succeeds
  local name="$1" args
  read -ra args <<< "${extra[$name]}"
  [[ -f "$out/$name.json" ]] && return 0
  local resume=()
  [[ -f "$out/$name.run/state.json" ]] && resume=(--resume)
  $s prune "${common[@]}" "${th[@]}" "${args[@]}" "${resume[@]}" --out "$out/$name.sculpt" --run "$out/$name.run" > "$out/$name.json.tmp" \
    || $s prune "${common[@]}" "${th[@]}" "${args[@]}" --resume --out "$out/$name.sculpt" --run "$out/$name.run" > "$out/$name.json.tmp"
  mv "$out/$name.json.tmp" "$out/$name.json"
}
if [[ -n "${ONLY:-}" ]]; then
  for name in $ONLY; do prune "$name"; done
  exit 0
fi
for name in "${names[@]}"; do prune "$name"; done
{
  echo "dense $($s eval --model "$out/unet16.sculpt" --data "$data" --split test --json | tr -d '\n ')"
  for name in "${names[@]}"; do echo "$name $($s eval --model "$out/$name.sculpt" --data "$data" --split test --json | tr -d '\n ')"; done
} > "$out/compare-evals.txt"
echo "done: $out/compare-evals.txt"
