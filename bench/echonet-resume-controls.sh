#!/usr/bin/env bash
# Re-runs the final stages (final fine-tune, both from-scratch controls, the choice of output) of finished
# bench/echonet-prune.sh runs with another build, on copies of their pruning steps (pruning is deterministic, so the
# steps are the runs' own), two seeds side by side, and scores every network on the test split.
# usage: SCULPT=path/to/frozen/Sculpt.Cli bench/echonet-resume-controls.sh FROM OUT ["0 1 2 3"] [extra prune options]
#   FROM: the OUT folder of bench/echonet-prune.sh (dense-S.sculpt, run-S/, echonet/)
set -euo pipefail
sculpt="${SCULPT:?set SCULPT to a frozen build of src/Sculpt.Cli}"
from="${1:?FROM}"; out="${2:?OUT}"; seeds="${3:-0 1 2 3}"; shift $(( $# < 3 ? $# : 3 ))
mkdir -p "$out"
one() {
  local s=$1; shift
  mkdir -p "$out/run-$s"
  cp "$from"/run-"$s"/step_*.sculpt "$from/run-$s/steps.jsonl" "$from/run-$s/state.json" "$out/run-$s/"
  [ -f "$out/u-$s.json" ] || { "$sculpt" prune --model "$from/dense-$s.sculpt" --data "$from/echonet" --compression 1148 \
    --out "$out/u-pruned-$s.sculpt" --run "$out/run-$s" --seed "$s" --threads 1 --json --resume "$@" \
    > "$out/u-$s.json.tmp" 2> "$out/u-$s.log" && mv "$out/u-$s.json.tmp" "$out/u-$s.json"; }
  for m in "$out/u-pruned-$s.sculpt" "$out/run-$s/control-scratch.sculpt" "$out/run-$s/control-uniform.sculpt" \
           "$out/run-$s/pruned-weights.sculpt"; do
    "$sculpt" eval --model "$m" --data "$from/echonet" --json > "$m.test.json"
  done
}
set -- $seeds -- "$@"
list=(); while [ "$1" != "--" ]; do list+=("$1"); shift; done; shift
for ((i = 0; i < ${#list[@]}; i += 2)); do
  for s in "${list[@]:i:2}"; do one "$s" "$@" & done
  wait
done
echo "done: $out"
