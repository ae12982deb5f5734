#!/usr/bin/env bash
# Issue 14, item 4 with unet-classic as the base: which criterion ranks the channels of a converged 31 M-parameter
# U-Net well enough to remove them? A whole prune run to 1148x costs about 45 min per criterion and seed on 2 cores,
# so this measures the ranking alone, where it decides: the first steps from the dense model, with nothing that could
# repair a bad choice — no fine-tune (--epochs 0 --final-epochs 0), no back-off (--collapse-drop 1), no controls;
# batch-norm statistics are re-estimated after each slice as in every prune run. --steps 1 under prune's step limit
# of 1.5x: one step to 1.5x, three to 3x. Every pruned model is scored by `sculpt eval` on the test split. One run
# at a time with THREADS libtorch threads (default 2).
# usage: SCULPT=path/to/frozen/Sculpt.Cli [CRITERIA="taylor l1 bn-scale"] [SEEDS="0 1 2"] [RATIOS="1.5 3"] \
#          bench/classic-criteria.sh DENSE.sculpt DATA OUT [more prune options, e.g. --allocation global]
# then:  bench/classic-criteria.py OUT
set -euo pipefail
dense="$1"; data="$2"; out="$3"; shift 3
sculpt="${SCULPT:?set SCULPT to a frozen build of src/Sculpt.Cli}"
mkdir -p "$out"
[ -f "$out/dense.test.json" ] || "$sculpt" eval --model "$dense" --data "$data" --json > "$out/dense.test.json"
for ratio in ${RATIOS:-1.5 3}; do
  for criterion in ${CRITERIA:-taylor l1 bn-scale}; do
    for seed in ${SEEDS:-0 1 2}; do
      name="$out/$criterion-$ratio-$seed"
      if [ ! -f "$name.json" ]; then
        start=$(date +%s)
        "$sculpt" prune --model "$dense" --data "$data" --compression "$ratio" --steps 1 --epochs 0 --final-epochs 0 \
          --collapse-drop 1 --no-control --criterion "$criterion" --seed "$seed" --threads "${THREADS:-2}" \
          --out "$name.sculpt" --run "$name.run" --json "$@" > "$name.json.tmp" 2> "$name.log"
        echo $(( $(date +%s) - start )) > "$name.seconds"
        mv "$name.json.tmp" "$name.json"
      fi
      [ -f "$name.test.json" ] || "$sculpt" eval --model "$name.sculpt" --data "$data" --json > "$name.test.json"
      echo "$criterion $ratio seed $seed: $(cat "$name.seconds") s"
    done
  done
done
