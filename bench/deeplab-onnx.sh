#!/usr/bin/env bash
# Issue 12: torchvision's full-size DeepLabV3-ResNet50 as a clinical group brings it — trained in PyTorch
# (bench/train-torchvision.py: 1 epoch on synthetic echo, grey frames in all three channels) and exported with
# torch.onnx defaults (batch norm folded) — imported, checked against PyTorch's Dice, and pruned ≥ 1000×; beside
# the same network from Sculpt's native builder trained by `sculpt train` under the same budget. Every stage is
# timed. The two pipelines run at once, one thread each, so their times compare.
# Usage: bench/deeplab-onnx.sh [OUT_DIR] [imported|native|both]   (needs Debian's python3-torch, -torchvision, -skimage)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/deeplab-onnx}"
data="${DATA:-$out/echo600}"
mkdir -p "$out"
s="${SCULPT:-./sculpt}"
epochs="${EPOCHS:-1}"
[[ -d "$data" ]] || $s synth --out "$data" --count 600 --seed 0
stamp() { date +%s; }
run() { # name, then the command; its wall time goes to $out/times.txt
  local name="$1"; shift
  local t0; t0=$(stamp)
  "$@"
  echo "$name $(( $(stamp) - t0 )) s" >> "$out/times.txt"
}
which="${2:-both}"
pipeline() { # prefix
  local p="$1"
  if [[ $p == imported ]]; then
    [[ -f "$out/torch.onnx" ]] || run torch-train-and-export /usr/bin/python3 bench/train-torchvision.py "$data" "$out/torch.onnx" --epochs "$epochs" --threads 1
    local mean std
    mean=$(python3 -c "import json; print(json.load(open('$out/torch.onnx.json'))['mean'])")
    std=$(python3 -c "import json; print(json.load(open('$out/torch.onnx.json'))['std'])")
    [[ -f "$out/$p-dense.sculpt" ]] || run import $s import --onnx "$out/torch.onnx" --mean "$mean" --std "$std" --out "$out/$p-dense.sculpt"
  else
    [[ -f "$out/$p-dense.sculpt" ]] || run "$p-train" $s train --data "$data" --arch deeplabv3_resnet50 --epochs "$epochs" --seed 0 --threads 1 --out "$out/$p-dense.sculpt"
  fi
  [[ -f "$out/$p-1000x.json" ]] || run "$p-prune" $s prune --model "$out/$p-dense.sculpt" --data "$data" --compression 1000 --criterion l1 \
    --head-input ranked --max-step-ratio 1.5 --epochs 1 --ft-samples 16 --final-epochs 20 --seed 0 --threads 1 \
    --out "$out/$p-1000x.sculpt" --run "$out/$p-prune" --json > "$out/$p-1000x.json"
  for m in dense 1000x; do
    $s eval --model "$out/$p-$m.sculpt" --data "$data" --split test --json > "$out/$p-$m.eval.json"
  done
}
[[ $which == native ]] || pipeline imported > "$out/imported.log" 2>&1 &
[[ $which == imported ]] || pipeline native > "$out/native.log" 2>&1 &
wait
cat "$out/times.txt"
