#!/usr/bin/env bash
# Issue 12: torchvision's full-size DeepLabV3-ResNet50 exported with torch.onnx defaults (batch norm folded),
# imported, trained briefly on synthetic echo (grey frames fed to its three channels) and pruned ≥ 1000×, beside
# the same network from Sculpt's native builder under the same settings; each stage timed. Both run at once,
# one libtorch thread each, so their times compare.
# Usage: bench/deeplab-onnx.sh [OUT_DIR]     (needs Debian's python3-torch and python3-torchvision for the export)
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
[[ -f "$out/deeplab.onnx" ]] || run export /usr/bin/python3 bench/export-torchvision.py deeplabv3_resnet50 "$out/deeplab.onnx" 112
[[ -f "$out/imported.sculpt" ]] || run import $s import --onnx "$out/deeplab.onnx" --out "$out/imported.sculpt"
pipeline() { # prefix, starting model (or empty for the native builder)
  local p="$1" start="$2" train=(--arch deeplabv3_resnet50)
  [[ -n "$start" ]] && train=(--init "$start")
  [[ -f "$out/$p-dense.sculpt" ]] || run "$p-train" $s train --data "$data" "${train[@]}" --epochs "$epochs" --seed 0 --threads 1 --out "$out/$p-dense.sculpt"
  [[ -f "$out/$p-1000x.json" ]] || run "$p-prune" $s prune --model "$out/$p-dense.sculpt" --data "$data" --compression 1000 --criterion l1 \
    --head-input ranked --max-step-ratio 1.5 --epochs 1 --ft-samples 16 --final-epochs 20 --seed 0 --threads 1 \
    --out "$out/$p-1000x.sculpt" --run "$out/$p-prune" --json > "$out/$p-1000x.json"
  for m in dense 1000x; do
    $s eval --model "$out/$p-$m.sculpt" --data "$data" --split test --json > "$out/$p-$m.eval.json"
  done
}
pipeline imported "$out/imported.sculpt" > "$out/imported.log" 2>&1 &
pipeline native "" > "$out/native.log" 2>&1 &
wait
cat "$out/times.txt"
