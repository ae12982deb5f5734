#!/usr/bin/env bash
# The pruned architecture of finished `sculpt prune` runs (bench/echonet-prune.sh's run-<seed> folders) trained again
# with another recipe and the control's own epochs, then scored on the test split: how much of the gap between the
# 1148x output and the dense model a training recipe closes. ARGS is passed to `sculpt train`; in it RUN stands for
# the run folder, DENSE for the dense model of that seed, SEED for prune's control seed (seed + 515, which with the
# control's recipe reproduces the control exactly). Two runs at a time, one libtorch thread each.
# SEEDS="control 1 2" trains every architecture once per listed seed ("control": prune's control seed, the default;
# a number: that seed, the model named TAG-S-seedN.sculpt), for the spread over initialisations.
# usage: SCULPT=path/to/frozen/Sculpt.Cli [SEEDS=...] bench/retrain-recipes.sh OUT TAG "ARGS" ECHO_DIR:SEED...
# e.g.   bench/retrain-recipes.sh out kd "--init RUN/control-scratch.sculpt --reinit --lr 1e-2 --seed SEED --teacher DENSE" \
#          /work/runs/echo14b:0 /work/runs/echo14b:1
set -euo pipefail
out="$1"; tag="$2"; args="$3"; shift 3
sculpt="${SCULPT:?set SCULPT to a frozen build of src/Sculpt.Cli}"
mkdir -p "$out"
one() {
  local base="${1%:*}" s="${1#*:}" seed="$2"
  local m="$out/$tag-$s.sculpt" n=$((515 + s))
  [ "$seed" = control ] || { m="$out/$tag-$s-seed$seed.sculpt"; n="$seed"; }
  local epochs; epochs=$(/usr/bin/python3 -c "import json,sys; c=json.load(open(sys.argv[1]))
print(next(x['epochs'] for x in c['results'] if x['kind']=='scratch'))" "$base/run-$s/controls.json")
  local a="${args//RUN/$base/run-$s}"; a="${a//DENSE/$base/dense-$s.sculpt}"; a="${a//SEED/$n}"
  # shellcheck disable=SC2086  # ARGS is a list of options
  [ -f "$m" ] || "$sculpt" train --data "$base/echonet" --epochs "$epochs" --threads 1 --out "$m" $a > "$m.log" 2>&1
  [ -f "$m.test.json" ] || "$sculpt" eval --model "$m" --data "$base/echonet" --json > "$m.test.json"
  local dice; dice=$(/usr/bin/python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['dice'], 4))" "$m.test.json")
  echo "$tag architecture $s, seed $n: test Dice $dice"
}
runs=()
for spec in "$@"; do for seed in ${SEEDS:-control}; do runs+=("$spec $seed"); done; done
for ((i = 0; i < ${#runs[@]}; i += 2)); do
  # shellcheck disable=SC2086  # "ECHO_DIR:S SEED" splits into one()'s two arguments
  one ${runs[i]} &
  if (( i + 1 < ${#runs[@]} )); then one ${runs[i + 1]} & fi
  wait
done
