#!/usr/bin/env bash
# Issue 14's acceptance run on EchoNet-format data: 200 synthetic cine loops written as EchoNet-Dynamic's release
# (ffmpeg Motion-JPEG AVIs, FileList.csv, VolumeTracings.csv with a long axis and 20 chords per traced frame;
# bench/echonet-data.py), 240 / 80 / 80 traced frames. For every seed: a dense width-16 U-Net trained 10 epochs
# (`sculpt train`), pruned to 1148x with `sculpt prune`'s defaults (controls included), and every model — dense,
# prune's output, the other of pruned weights / retrained architecture, the uniform-width control — scored by
# `sculpt eval` on the test split with 95% bootstrap CIs. Seeds run two at a time, one libtorch thread each.
# usage: SCULPT=path/to/frozen/Sculpt.Cli bench/echonet-prune.sh OUT "0 1" [extra prune options]
# needs: apt-get install ffmpeg python3-numpy python3-pil
set -euo pipefail
out="$1"; seeds="$2"; shift 2
here="$(cd "$(dirname "$0")" && pwd)"
sculpt="${SCULPT:?set SCULPT to a frozen build of src/Sculpt.Cli (a build in the work tree may change under a long run)}"
mkdir -p "$out"
[ -f "$out/synth/manifest.json" ] || "$sculpt" synth --out "$out/synth" --count 3 --videos 200 --frames 30 --seed 11 > /dev/null
[ -f "$out/echonet/VolumeTracings.csv" ] || /usr/bin/python3 "$here/echonet-data.py" "$out/synth" "$out/echonet"
data="$out/echonet"
one_seed() {
  local s="$1"; shift
  local start; start=$(date +%s)
  [ -f "$out/dense-$s.sculpt" ] || "$sculpt" train --data "$data" --arch unet --epochs 10 --seed "$s" --threads 1 \
    --out "$out/dense-$s.sculpt" > "$out/train-$s.log" 2>&1
  [ -f "$out/prune-$s.json" ] || { "$sculpt" prune --model "$out/dense-$s.sculpt" --data "$data" --compression 1148 \
    --out "$out/pruned-$s.sculpt" --run "$out/run-$s" --seed "$s" --threads 1 --json "$@" > "$out/prune-$s.json.tmp" \
    2> "$out/prune-$s.log" && mv "$out/prune-$s.json.tmp" "$out/prune-$s.json"; }
  echo "seed $s: $(( $(date +%s) - start )) s" >> "$out/times.txt"
  for m in "$out/dense-$s.sculpt" "$out/pruned-$s.sculpt" "$out/run-$s/pruned-weights.sculpt" \
           "$out/run-$s/control-scratch.sculpt" "$out/run-$s/control-uniform.sculpt"; do
    [ -f "$m" ] && [ ! -f "$m.test.json" ] && "$sculpt" eval --model "$m" --data "$data" --json > "$m.test.json.tmp" \
      && mv "$m.test.json.tmp" "$m.test.json"
  done
}
for s in $seeds; do one_seed "$s" "$@" & done
wait
/usr/bin/python3 "$here/echonet-table.py" "$out" --seeds "$seeds"
