#!/usr/bin/env bash
# The pruned architecture of a finished `sculpt prune` run trained again from scratch at other learning rates, with
# the control's own budget (the epochs in the run's controls.json), one seed per run, then scored on the test split:
# the measurement behind prune's --scratch-lr default. Runs two at a time, one libtorch thread each.
# usage: SCULPT=path/to/frozen/Sculpt.Cli bench/scratch-lr.sh RUN_DIR DATA_DIR OUT_DIR "1e-2 2e-2" "0 1 2"
set -euo pipefail
run="$1"; data="$2"; out="$3"; lrs="$4"; seeds="$5"
sculpt="${SCULPT:?set SCULPT to a frozen build of src/Sculpt.Cli}"
mkdir -p "$out"
epochs=$(/usr/bin/python3 -c "import json,sys; c=json.load(open(sys.argv[1]))
print(next(x['epochs'] for x in c['results'] if x['kind']=='scratch'))" "$run/controls.json")
one() {
  local lr="$1" s="$2" m="$out/scratch-lr$1-seed$2.sculpt"
  [ -f "$m" ] || "$sculpt" train --init "$run/control-scratch.sculpt" --reinit --data "$data" --epochs "$epochs" --lr "$lr" --seed "$s" \
    --threads 1 --out "$m" > "$m.log" 2>&1
  [ -f "$m.test.json" ] || "$sculpt" eval --model "$m" --data "$data" --json > "$m.test.json"
}
jobs=()
for lr in $lrs; do for s in $seeds; do jobs+=("$lr $s"); done; done
for ((i = 0; i < ${#jobs[@]}; i += 2)); do
  one ${jobs[i]} &
  if (( i + 1 < ${#jobs[@]} )); then one ${jobs[i+1]} & fi
  wait
done
echo "| learning rate | seed | test Dice [95% CI] |"
echo "| --- | --- | --- |"
for lr in $lrs; do for s in $seeds; do
  /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); l=d['labels'][0]
print(f'| {sys.argv[2]} | {sys.argv[3]} | {d[\"dice\"]:.4f} [{l[\"dice_lo\"]:.4f}, {l[\"dice_hi\"]:.4f}] |')" \
    "$out/scratch-lr$lr-seed$s.sculpt.test.json" "$lr" "$s"
done; done
