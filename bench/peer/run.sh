#!/usr/bin/env bash
# Sculpt and the peer, Torch-Pruning 1.6.0, side by side on one dense model and one data set (issue 14, item 5):
# the demo's synthetic echo set; this repo's U-Net (width 16) trained in PyTorch (bench/peer/peer.py train),
# handed to Sculpt through `sculpt import --onnx` (batch norm kept); pruned to 10x, 100x, 300x and 1148x fewer
# parameters by Torch-Pruning (RECIPES of bench/peer/peer.py prune; "taylor" also exists, but needs over half an hour
# per target here and collapsed like the others) and by `sculpt prune` with its
# defaults twice: as `prune` runs by default (output: the better on validation of the fine-tuned pruned weights and
# the pruned architecture retrained from scratch with pruning's sample budget) and with the pruned weights only
# (--no-control --keep-pruned-weights: the budget is pruning's alone); every model scored by `sculpt eval` on the
# same test split. One libtorch thread per process, two processes at a time.
# usage: SCULPT=path/to/frozen/Sculpt.Cli [RECIPES="default local bn local-recal-slow default-recal-slow"] bench/peer/run.sh OUT [seed]
# needs: apt-get install python3-torch python3-skimage python3-onnx; torch_pruning from the fetched VainF/Torch-Pruning
#        (TP=folder holding torch_pruning/, e.g. git -C <mirror> archive v1.6.0 torch_pruning | tar -x -C "$TP")
set -euo pipefail
out="$1"; seed="${2:-0}"
here="$(cd "$(dirname "$0")" && pwd)"
sculpt="${SCULPT:?set SCULPT to a frozen build of src/Sculpt.Cli}"
export PYTHONPATH="${TP:?set TP to the folder holding Torch-Pruning 1.6.0s torch_pruning package}"
py=/usr/bin/python3
mkdir -p "$out"
[ -d "$out/data" ] || "$sculpt" synth --out "$out/data" --count 400 --size 112 --seed "$seed" > /dev/null
[ -f "$out/peer/dense.json" ] || $py "$here/peer.py" train "$out/data" "$out/peer" --epochs 5 --seed "$seed" --threads 2
read -r mean std < <($py -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['mean']*255, d['std']*255)" "$out/peer/dense.json")
[ -f "$out/dense.sculpt" ] || "$sculpt" import --onnx "$out/peer/dense.onnx" --out "$out/dense.sculpt" --mean "$mean" --std "$std" > /dev/null
recipes="${RECIPES:-default local bn local-recal-slow default-recal-slow}"
two_at_a_time() {  # runs "$1 <item>" for every further argument, two at a time
  local fn="$1"; shift
  while (( $# > 0 )); do
    "$fn" "$1" &
    if (( $# > 1 )); then "$fn" "$2" & shift; fi
    shift; wait
  done
}
peer_recipe() {
  local recipe="$1" start; start=$(date +%s)
  [ -f "$out/peer/$recipe.done" ] && return 0
  $py "$here/peer.py" prune "$out/data" "$out/peer" --recipe "$recipe" --seed "$seed" --threads 1 > "$out/peer/$recipe.log" 2>&1 \
    && touch "$out/peer/$recipe.done" && echo "Torch-Pruning $recipe: $(( $(date +%s) - start )) s" >> "$out/times.txt"
}
# mode "pruned": the pruned weights alone; mode "output": prune's default output, controls included
sculpt_run() {
  local t="${1% *}" mode="${1#* }" start; start=$(date +%s)
  local name="sculpt-$mode-$t"
  local only=(); [ "$mode" = pruned ] && only=(--no-control --keep-pruned-weights)
  [ -f "$out/$name.json" ] && return 0
  "$sculpt" prune --model "$out/dense.sculpt" --data "$out/data" --compression "$t" --out "$out/$name.sculpt" --run "$out/run-$name" \
    "${only[@]}" --seed "$seed" --threads 1 --json > "$out/$name.json.tmp" 2> "$out/$name.log" \
    && mv "$out/$name.json.tmp" "$out/$name.json" && echo "Sculpt $mode $t: $(( $(date +%s) - start )) s" >> "$out/times.txt"
}
two_at_a_time peer_recipe $recipes
two_at_a_time sculpt_run "10 pruned" "100 pruned" "300 pruned" "1148 pruned" "10 output" "100 output" "300 output" "1148 output"
# the same evaluator for every model: sculpt eval on the test split
"$sculpt" eval --model "$out/dense.sculpt" --data "$out/data" --json > "$out/eval-dense.json"
for t in 10 100 300 1148; do
  for mode in pruned output; do
    "$sculpt" eval --model "$out/sculpt-$mode-$t.sculpt" --data "$out/data" --json > "$out/eval-sculpt-$mode-$t.json"
  done
  for recipe in $recipes; do
    "$sculpt" import --onnx "$out/peer/$recipe-${t}x.onnx" --out "$out/peer/$recipe-${t}x.sculpt" --mean "$mean" --std "$std" > /dev/null
    "$sculpt" eval --model "$out/peer/$recipe-${t}x.sculpt" --data "$out/data" --json > "$out/eval-$recipe-$t.json"
  done
done
$py "$here/table.py" "$out" $recipes
